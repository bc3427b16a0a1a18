"""Options flow of a hub entry: add plugs to the hub or remove them (the hub stores them)."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT

from .const import CONF_DEVICE_ID, CONF_LOCAL_KEY, CONF_PLUGS, CONF_PROTOCOL_VERSION, DEFAULT_NAME
from .flow_probes import local_key_error
from .flow_schemas import add_hub_plug_schema, remove_hub_plug_schema, version_from_option
from .source import NewPlug, PlugManagementError, PlugSource


class HubOptionsFlow(OptionsFlow):
    """Add plugs to the hub or remove them; the hub stores them on its flash."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose what to do."""
        return self.async_show_menu(step_id="init", menu_options=["add_plug", "remove_plug"])

    def _source(self) -> PlugSource:
        """The running entry's plug source.

        Raises:
            PlugManagementError: the entry is not loaded.

        """
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            raise PlugManagementError("cannot_connect", "the hub entry is not loaded")
        source: PlugSource = entry.runtime_data.source
        return source

    async def async_step_add_plug(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Give the hub a plug: device id, local key, address, protocol version, name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key = str(user_input[CONF_LOCAL_KEY]).strip()
            if error := local_key_error(key):
                errors[CONF_LOCAL_KEY] = error
            else:
                plug = NewPlug(
                    device_id=str(user_input[CONF_DEVICE_ID]).strip(),
                    local_key=key,
                    host=str(user_input[CONF_HOST]).strip(),
                    version=version_from_option(user_input[CONF_PROTOCOL_VERSION]),
                    name=user_input.get(CONF_NAME) or DEFAULT_NAME,
                    port=int(user_input[CONF_PORT]),
                )
                try:
                    await self._source().async_add_plug(plug)
                except PlugManagementError as err:
                    errors["base"] = err.reason
                else:
                    return self.async_create_entry(data={})
        defaults = user_input or {}
        return self.async_show_form(
            step_id="add_plug",
            data_schema=self.add_suggested_values_to_schema(
                add_hub_plug_schema(),
                {k: v for k, v in defaults.items() if k != CONF_LOCAL_KEY},
            ),
            errors=errors,
        )

    async def async_step_remove_plug(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Remove a plug from the hub."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                await self._source().async_remove_plug(user_input[CONF_DEVICE_ID])
            except PlugManagementError as err:
                errors["base"] = err.reason
            else:
                return self.async_create_entry(data={})
        plugs = self.config_entry.data.get(CONF_PLUGS, [])
        if not plugs:
            return self.async_abort(reason="no_plugs")
        return self.async_show_form(
            step_id="remove_plug", data_schema=remove_hub_plug_schema(plugs), errors=errors
        )

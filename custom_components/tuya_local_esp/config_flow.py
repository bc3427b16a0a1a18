"""Config flow: add a Tuya plug by host, device id and local key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import ConfigEntryState, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .const import (
    AUTO_VERSION,
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROTOCOL_VERSION,
    CONF_TRANSPORT,
    DEFAULT_NAME,
    DEFAULT_PORT,
    DEFAULT_VERSION,
    DOMAIN,
    LOGGER,
    PROTOCOL_VERSIONS,
    REQUEST_TIMEOUT,
    TRANSPORT_DIRECT,
)
from .coordinator import DirectPlugCoordinator
from .tuya import TuyaDevice, TuyaError, TuyaKeyError


def _plug_schema(defaults: Mapping[str, Any], *, with_device_id: bool) -> vol.Schema:
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): TextSelector(),
    }
    if with_device_id:
        fields[
            vol.Required(CONF_DEVICE_ID, default=defaults.get(CONF_DEVICE_ID, vol.UNDEFINED))
        ] = TextSelector()
    fields[vol.Required(CONF_LOCAL_KEY)] = TextSelector(
        TextSelectorConfig(type=TextSelectorType.PASSWORD)
    )
    fields[
        vol.Required(
            CONF_PROTOCOL_VERSION, default=defaults.get(CONF_PROTOCOL_VERSION, DEFAULT_VERSION)
        )
    ] = SelectSelector(
        SelectSelectorConfig(
            options=PROTOCOL_VERSIONS,
            mode=SelectSelectorMode.DROPDOWN,
            translation_key=CONF_PROTOCOL_VERSION,
        )
    )
    fields[vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT))] = NumberSelector(
        NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
    )
    if with_device_id:
        fields[vol.Optional(CONF_NAME, default=defaults.get(CONF_NAME, DEFAULT_NAME))] = (
            TextSelector()
        )
    return vol.Schema(fields)


async def _probe(data: Mapping[str, Any]) -> tuple[list[str], str]:
    """Connect once and read the DPS; return the DP ids the plug reported and its version.

    Raises:
        TuyaKeyError: the plug did not accept the local key or protocol version.
        TuyaError: the plug could not be reached or answered nonsense.

    """
    device = TuyaDevice(
        data[CONF_HOST],
        data[CONF_DEVICE_ID],
        data[CONF_LOCAL_KEY],
        version=data[CONF_PROTOCOL_VERSION],
        version_hint=data.get(CONF_DETECTED_VERSION),
        port=int(data[CONF_PORT]),
        timeout=REQUEST_TIMEOUT,
        auto_reconnect=False,
    )
    async with device:
        return sorted(device.dps), device.version


class TuyaLocalConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a plug: the flow connects and reads its DPS before creating the entry."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovered: dict[str, Any] = {}

    async def _validate(self, user_input: dict[str, Any]) -> dict[str, str]:
        """Normalise ``user_input`` in place and probe the plug; return the errors.

        On success ``user_input`` also gets the DP ids the plug reported and its version.
        """
        errors: dict[str, str] = {}
        for field in (CONF_HOST, CONF_DEVICE_ID, CONF_LOCAL_KEY):
            if field in user_input:
                user_input[field] = str(user_input[field]).strip()
        user_input[CONF_PORT] = int(user_input[CONF_PORT])
        if len(user_input[CONF_LOCAL_KEY]) != 16 or not user_input[CONF_LOCAL_KEY].isascii():
            errors[CONF_LOCAL_KEY] = "invalid_local_key"
            return errors
        try:
            dp_ids, version = await _probe(user_input)
        except TuyaKeyError:
            errors["base"] = "invalid_auth"
        except TuyaError as err:
            LOGGER.debug("Probe of %s failed: %s", user_input[CONF_HOST], err)
            errors["base"] = "cannot_connect"
        except Exception:
            LOGGER.exception("Unexpected error while probing %s", user_input[CONF_HOST])
            errors["base"] = "unknown"
        else:
            user_input[CONF_DP_IDS] = dp_ids
            user_input[CONF_DETECTED_VERSION] = version
        return errors

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for host, device id, local key and protocol version."""
        errors: dict[str, str] = {}
        if user_input is not None:
            await self.async_set_unique_id(str(user_input[CONF_DEVICE_ID]).strip())
            self._abort_if_unique_id_configured()
            errors = await self._validate(user_input)
            if not errors:
                name = user_input.get(CONF_NAME) or DEFAULT_NAME
                return self.async_create_entry(
                    title=name,
                    data={**user_input, CONF_NAME: name, CONF_TRANSPORT: TRANSPORT_DIRECT},
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _plug_schema(user_input or {}, with_device_id=True), user_input
            ),
            errors=errors,
        )

    async def async_step_integration_discovery(
        self, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        """A plug announced itself on the LAN (see ``discovery.py``)."""
        await self.async_set_unique_id(discovery_info[CONF_DEVICE_ID])
        self._abort_if_unique_id_configured(updates={CONF_HOST: discovery_info[CONF_HOST]})
        self._discovered = discovery_info
        self.context["title_placeholders"] = {
            "device_id": discovery_info[CONF_DEVICE_ID],
            "host": discovery_info[CONF_HOST],
        }
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask only for the local key (and a name) of a discovered plug."""
        found = self._discovered
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_HOST: found[CONF_HOST],
                CONF_PORT: DEFAULT_PORT,
                CONF_DEVICE_ID: found[CONF_DEVICE_ID],
                CONF_LOCAL_KEY: user_input[CONF_LOCAL_KEY],
                CONF_PROTOCOL_VERSION: AUTO_VERSION,
                CONF_DETECTED_VERSION: found.get("version"),
            }
            errors = await self._validate(data)
            if not errors:
                name = user_input.get(CONF_NAME) or DEFAULT_NAME
                return self.async_create_entry(
                    title=name, data={**data, CONF_NAME: name, CONF_TRANSPORT: TRANSPORT_DIRECT}
                )
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_LOCAL_KEY): TextSelector(
                        TextSelectorConfig(type=TextSelectorType.PASSWORD)
                    ),
                    vol.Optional(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
                }
            ),
            description_placeholders={
                "device_id": found[CONF_DEVICE_ID],
                "host": found[CONF_HOST],
                "version": str(found.get("version")),
            },
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change host, local key, protocol version or port of a configured plug."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input = {**user_input, CONF_DEVICE_ID: entry.data[CONF_DEVICE_ID]}
            # A plug accepts one connection: the running entry lets go while we probe.
            running = entry.runtime_data if entry.state is ConfigEntryState.LOADED else None
            if isinstance(running, DirectPlugCoordinator):
                await running.async_suspend()
            errors = await self._validate(user_input)
            if errors and isinstance(running, DirectPlugCoordinator):
                await running.async_start()
            if not errors:
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_plug_schema(user_input or entry.data, with_device_id=False),
            errors=errors,
        )

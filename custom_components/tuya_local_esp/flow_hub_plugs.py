"""Config subentry flow of a hub entry: one subentry per plug behind the hub.

"Add plug" on the hub entry's page gives the hub a plug (the hub stores it on its flash, with
its local key; Home Assistant keeps only the device id and protocol version); each plug's
subentry can be reconfigured (name, address, local key, protocol version). Deleting a subentry
removes the plug from the hub (``__init__._async_hub_entry_changed``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import callback

from .const import CONF_DEVICE_ID, CONF_LOCAL_KEY, CONF_PROTOCOL_VERSION, DEFAULT_NAME
from .flow_probes import local_key_error
from .flow_schemas import (
    add_hub_plug_schema,
    reconfigure_hub_plug_schema,
    version_from_option,
    with_option_version,
)
from .hub import HubError
from .hub_coordinator import HubCoordinator
from .source import NewPlug, PlugManagementError

#: Seconds a plug form waits for the hub entry to load and the hub to connect.
HUB_WAIT_S = 10.0


class HubPlugSubentryFlow(ConfigSubentryFlow):
    """Add a plug to the hub, or change one the hub has."""

    async def _hub(self) -> HubCoordinator:
        """The running hub entry's coordinator, once loaded and connected.

        Right after a plug was added, changed or deleted the entry reloads and the hub
        reconnects: this waits up to :data:`HUB_WAIT_S` for both, so that the next plug can be
        added at once.

        Raises:
            PlugManagementError: ``cannot_connect``, the entry did not load in time (e.g. it
                is disabled). A hub that did not connect in time is reported by the request.

        """
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            loaded = asyncio.Event()

            @callback
            def _state_changed() -> None:
                if entry.state is ConfigEntryState.LOADED:
                    loaded.set()

            unsubscribe = entry.async_on_state_change(_state_changed)
            try:
                async with asyncio.timeout(HUB_WAIT_S):
                    await loaded.wait()
            except TimeoutError as err:
                raise PlugManagementError("cannot_connect", "the hub entry is not loaded") from err
            finally:
                unsubscribe()
        hub: HubCoordinator = entry.runtime_data.hub
        if not hub.client.connected:
            with contextlib.suppress(HubError):
                await hub.client.wait_connected(within=HUB_WAIT_S)
        return hub

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Give the hub a plug: device id, local key, address, protocol version, name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key = str(user_input[CONF_LOCAL_KEY]).strip()
            device_id = str(user_input[CONF_DEVICE_ID]).strip()
            if error := local_key_error(key):
                errors[CONF_LOCAL_KEY] = error
            elif any(s.unique_id == device_id for s in self._get_entry().subentries.values()):
                errors["base"] = "already_on_hub"
            else:
                plug = NewPlug(
                    device_id=device_id,
                    local_key=key,
                    host=str(user_input[CONF_HOST]).strip(),
                    version=version_from_option(user_input[CONF_PROTOCOL_VERSION]),
                    name=str(user_input.get(CONF_NAME) or DEFAULT_NAME).strip(),
                    port=int(user_input[CONF_PORT]),
                )
                try:
                    await (await self._hub()).async_add_plug(plug)
                except PlugManagementError as err:
                    errors["base"] = err.reason
                else:
                    return self.async_create_entry(
                        title=plug.name,
                        data={CONF_DEVICE_ID: device_id, CONF_PROTOCOL_VERSION: plug.version},
                        unique_id=device_id,
                    )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                add_hub_plug_schema(),
                {k: v for k, v in (user_input or {}).items() if k != CONF_LOCAL_KEY},
            ),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a plug's name, address, local key or protocol version.

        A new name is Home Assistant's only; a new address alone is sent with the hub's
        ``host`` request; a new local key or version re-adds the plug on the hub (it has no
        "change" request), which needs the local key: the hub never reveals the stored one.
        """
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        device_id = subentry.data[CONF_DEVICE_ID]
        errors: dict[str, str] = {}
        current: dict[str, Any] = {
            CONF_NAME: subentry.title,
            CONF_PROTOCOL_VERSION: subentry.data[CONF_PROTOCOL_VERSION],
        }
        if user_input is not None:
            name = str(user_input.get(CONF_NAME) or subentry.title).strip()
            version = version_from_option(user_input[CONF_PROTOCOL_VERSION])
            host = str(user_input[CONF_HOST]).strip()
            key = str(user_input.get(CONF_LOCAL_KEY) or "").strip()
            try:
                hub = await self._hub()
                state = hub.client.inventory.plugs.get(device_id) if hub.client.inventory else None
                if key:
                    if error := local_key_error(key):
                        raise PlugManagementError(error)
                    port = int(user_input[CONF_PORT])
                    await hub.async_replace_plug(NewPlug(device_id, key, host, version, name, port))
                elif version != subentry.data[CONF_PROTOCOL_VERSION]:
                    raise PlugManagementError("key_required")
                elif state is None or state.host != host:
                    await hub.async_set_plug_host(device_id, host)
            except PlugManagementError as err:
                errors[CONF_LOCAL_KEY if err.reason in _KEY_ERRORS else "base"] = err.reason
            else:
                return self.async_update_and_abort(
                    entry,
                    subentry,
                    title=name,
                    data={**subentry.data, CONF_PROTOCOL_VERSION: version},
                )
            current = {**user_input}
        else:
            state = None
            if entry.state is ConfigEntryState.LOADED and entry.runtime_data.hub is not None:
                inventory = entry.runtime_data.hub.client.inventory
                state = inventory.plugs.get(device_id) if inventory is not None else None
            if state is not None:
                current |= {CONF_HOST: state.host, CONF_PORT: state.port}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                reconfigure_hub_plug_schema(),
                with_option_version({k: v for k, v in current.items() if k != CONF_LOCAL_KEY}),
            ),
            description_placeholders={"device_id": device_id},
            errors=errors,
        )


#: Errors shown at the local key field rather than at the top of the form.
_KEY_ERRORS = frozenset({"invalid_local_key", "key_required"})

"""Config flow of Tuya Local ESP.

Plugs (typed in or discovered on the LAN) and ESP32 hubs; reconfigure, reauth, and the hub
options flow that adds and removes the hub's plugs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo

from .const import (
    AUTO_VERSION,
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_HUB_ID,
    CONF_LOCAL_KEY,
    CONF_PLUGS,
    CONF_PROTOCOL_VERSION,
    CONF_SECRET,
    CONF_TRANSPORT,
    DEFAULT_HUB_NAME,
    DEFAULT_HUB_PORT,
    DEFAULT_NAME,
    DEFAULT_PORT,
    DEFAULT_VERSION,
    DOMAIN,
    HUB_HOSTNAME_PREFIX,
    HUB_PROTOCOL_VERSIONS,
    LOGGER,
    PROTOCOL_VERSIONS,
    REQUEST_TIMEOUT,
    TRANSPORT_DIRECT,
    TRANSPORT_HUB,
)
from .coordinator import DirectPlugCoordinator
from .discovery import async_get_discovery
from .hub import (
    HubAuthError,
    HubClient,
    HubCommandError,
    HubConnectionError,
    HubError,
    Inventory,
)
from .hub_coordinator import HubCoordinator, plugs_record
from .tuya import VERSIONS, TuyaDevice, TuyaError, TuyaKeyError

#: The pick_plug choice that leads to the form (its label is translated).
MANUAL_CHOICE = "manual"


def _plug_schema(defaults: Mapping[str, Any], *, with_device_id: bool) -> vol.Schema:
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): TextSelector(),
    }
    if with_device_id:
        fields[
            vol.Required(CONF_DEVICE_ID, default=defaults.get(CONF_DEVICE_ID, vol.UNDEFINED))
        ] = TextSelector()
    key_marker = vol.Required if with_device_id else vol.Optional  # reconfigure: optional
    fields[key_marker(CONF_LOCAL_KEY)] = TextSelector(
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


async def _probe(data: Mapping[str, Any], version: str | None) -> tuple[list[str], str]:
    """Connect once and read the DPS; return the DP ids the plug reported and its version.

    ``version`` overrides the entry's protocol version for this probe (a discovered plug
    announced its own, so a wrong key is reported after one try instead of five).

    Raises:
        TuyaKeyError: the plug did not accept the local key or protocol version.
        TuyaError: the plug could not be reached or answered nonsense.

    """
    device = TuyaDevice(
        data[CONF_HOST],
        data[CONF_DEVICE_ID],
        data[CONF_LOCAL_KEY],
        version=version or data[CONF_PROTOCOL_VERSION],
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
        self._found: list[dict[str, Any]] = []
        self._manual = False

    async def _validate(
        self, user_input: dict[str, Any], version: str | None = None
    ) -> dict[str, str]:
        """Normalise ``user_input`` in place and probe the plug; return the errors.

        On success ``user_input`` also gets the DP ids the plug reported and its version.
        """
        errors: dict[str, str] = {}
        for field in (CONF_HOST, CONF_DEVICE_ID, CONF_LOCAL_KEY):
            user_input[field] = str(user_input[field]).strip()
        user_input[CONF_PORT] = int(user_input[CONF_PORT])
        if len(user_input[CONF_LOCAL_KEY]) != 16 or not user_input[CONF_LOCAL_KEY].isascii():
            errors[CONF_LOCAL_KEY] = "invalid_local_key"
            return errors
        try:
            dp_ids, found_version = await _probe(user_input, version)
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
            user_input[CONF_DETECTED_VERSION] = found_version
        return errors

    async def _validate_releasing(self, entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
        """Run :meth:`_validate` for a configured plug.

        Plugs accept one connection, so the running entry lets go of it while we probe (and
        takes it again if the probe fails).
        """
        running = entry.runtime_data if entry.state is ConfigEntryState.LOADED else None
        if isinstance(running, DirectPlugCoordinator):
            await running.async_suspend()
        errors = await self._validate(data)
        if errors and isinstance(running, DirectPlugCoordinator):
            await running.async_start()
        return errors

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose: a plug reached directly, or an ESP32 hub.

        Listening for plugs starts here too, so that plugs show up as discovered from the first
        time the integration is added (later the integration's own set-up keeps it running).
        """
        await async_get_discovery(self.hass)
        return self.async_show_menu(step_id="user", menu_options=["plug", "hub"])

    async def async_step_plug(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for host, device id, local key and protocol version."""
        offer = user_input is None and not self._manual
        if offer and (found := (await async_get_discovery(self.hass)).unconfigured()):
            return await self.async_step_pick_plug(found=found)
        errors: dict[str, str] = {}
        if user_input is not None:
            # a discovery flow for the same plug may be open: it ends when this one succeeds
            await self.async_set_unique_id(
                str(user_input[CONF_DEVICE_ID]).strip(), raise_on_progress=False
            )
            self._abort_if_unique_id_configured()
            errors = await self._validate(user_input)
            if not errors:
                name = user_input.get(CONF_NAME) or DEFAULT_NAME
                return self.async_create_entry(
                    title=name,
                    data={**user_input, CONF_NAME: name, CONF_TRANSPORT: TRANSPORT_DIRECT},
                )
        return self.async_show_form(
            step_id="plug",
            data_schema=self.add_suggested_values_to_schema(
                _plug_schema(user_input or {}, with_device_id=True), user_input
            ),
            errors=errors,
        )

    async def async_step_pick_plug(
        self,
        user_input: dict[str, Any] | None = None,
        *,
        found: list[dict[str, Any]] | None = None,
    ) -> ConfigFlowResult:
        """Offer the plugs heard on the LAN, or typing the details in."""
        if user_input is not None:
            choice = user_input[CONF_DEVICE_ID]
            self._found = [f for f in self._found if f[CONF_DEVICE_ID] == choice]
            if not self._found:  # "enter the details myself"
                self._manual = True
                return await self.async_step_plug()
            # the listener may have opened a discovery flow for it too: that one ends when this
            # one creates the entry
            return await self._use_discovered(self._found[0], raise_on_progress=False)
        self._found = found or []
        options = [
            SelectOptionDict(
                value=f[CONF_DEVICE_ID],
                label=f"{f[CONF_DEVICE_ID]} ({f[CONF_HOST]}, protocol {f['version']})",
            )
            for f in self._found
        ]
        options.append(SelectOptionDict(value=MANUAL_CHOICE, label=MANUAL_CHOICE))
        return self.async_show_form(
            step_id="pick_plug",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_DEVICE_ID): SelectSelector(
                        SelectSelectorConfig(
                            options=options,
                            mode=SelectSelectorMode.LIST,
                            translation_key="pick_plug",
                        )
                    )
                }
            ),
        )

    async def async_step_integration_discovery(
        self, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        """A plug announced itself on the LAN (see ``discovery.py``)."""
        return await self._use_discovered(discovery_info, raise_on_progress=True)

    async def _use_discovered(
        self, discovery_info: dict[str, Any], *, raise_on_progress: bool
    ) -> ConfigFlowResult:
        await self.async_set_unique_id(
            discovery_info[CONF_DEVICE_ID], raise_on_progress=raise_on_progress
        )
        self._abort_if_unique_id_configured(updates={CONF_HOST: discovery_info[CONF_HOST]})
        self._discovered = discovery_info
        self.context["title_placeholders"] = {
            "name": f"{discovery_info[CONF_DEVICE_ID]} ({discovery_info[CONF_HOST]}, "
            f"protocol {discovery_info.get('version')})"
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
            announced = found.get("version")
            errors = await self._validate(data, announced if announced in VERSIONS else None)
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
                    vol.Optional(
                        CONF_NAME, default=f"{DEFAULT_NAME} {found[CONF_DEVICE_ID][-4:]}"
                    ): TextSelector(),
                }
            ),
            description_placeholders={
                "device_id": found[CONF_DEVICE_ID],
                "host": found[CONF_HOST],
                "version": str(found.get("version")),
            },
            errors=errors,
        )

    async def async_step_hub(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the hub's host, port and secret; authenticate; add the hub and its plugs."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _hub_data(user_input)
            errors, inventory = await _check_hub(data)
            if inventory is not None:
                await self.async_set_unique_id(inventory.hub_id)
                self._abort_if_unique_id_configured(
                    updates={CONF_HOST: data[CONF_HOST], CONF_PORT: data[CONF_PORT]}
                )
                return self.async_create_entry(
                    title=f"{DEFAULT_HUB_NAME} {inventory.hub_id}",
                    data={
                        **data,
                        CONF_TRANSPORT: TRANSPORT_HUB,
                        CONF_HUB_ID: inventory.hub_id,
                        CONF_PLUGS: plugs_record(inventory),
                    },
                )
        return self.async_show_form(
            step_id="hub", data_schema=_hub_schema(user_input or self._discovered), errors=errors
        )

    async def async_step_dhcp(self, discovery_info: DhcpServiceInfo) -> ConfigFlowResult:
        """A hub named ``tuya-esp-hub-<hub id>`` joined the network (DHCP)."""
        hub_id = discovery_info.hostname.lower().removeprefix(HUB_HOSTNAME_PREFIX)
        await self.async_set_unique_id(hub_id)
        self._abort_if_unique_id_configured(updates={CONF_HOST: discovery_info.ip})
        self._discovered = {CONF_HOST: discovery_info.ip}
        self.context["title_placeholders"] = {"name": f"ESP32 hub {hub_id} ({discovery_info.ip})"}
        return await self.async_step_hub()

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The plug refused our local key (re-paired?) or the hub our secret."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new local key (plug) or hub secret (hub)."""
        entry = self._get_reauth_entry()
        hub = entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB
        field = CONF_SECRET if hub else CONF_LOCAL_KEY
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, field: user_input[field]}
            if hub:
                errors, inventory = await _check_hub(data)
                if inventory is not None:
                    await self.async_set_unique_id(inventory.hub_id)
                    self._abort_if_unique_id_mismatch(reason="wrong_hub")
            else:
                errors = await self._validate_releasing(entry, data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema(
                {
                    vol.Required(field): TextSelector(
                        TextSelectorConfig(type=TextSelectorType.PASSWORD)
                    )
                }
            ),
            description_placeholders={"name": entry.title},
            errors=errors,
        )

    async def async_step_reconfigure_hub(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the hub's address, port or secret."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _hub_data(user_input)
            errors, inventory = await _check_hub(data)
            if inventory is not None:
                await self.async_set_unique_id(inventory.hub_id)
                self._abort_if_unique_id_mismatch(reason="wrong_hub")
                return self.async_update_reload_and_abort(entry, data_updates=data)
        return self.async_show_form(
            step_id="reconfigure_hub",
            data_schema=_hub_schema(user_input or entry.data),
            errors=errors,
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Hub entries manage the hub's plugs here."""
        return HubOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """Only hub entries have options: their plugs."""
        return config_entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change host, local key, protocol version or port of a configured plug."""
        entry = self._get_reconfigure_entry()
        if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
            return await self.async_step_reconfigure_hub()
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input = {
                **user_input,
                CONF_DEVICE_ID: entry.data[CONF_DEVICE_ID],
                # left empty: keep the stored local key
                CONF_LOCAL_KEY: user_input.get(CONF_LOCAL_KEY) or entry.data[CONF_LOCAL_KEY],
            }
            errors = await self._validate_releasing(entry, user_input)
            if not errors:
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_plug_schema(user_input or entry.data, with_device_id=False),
            errors=errors,
        )


def _hub_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The hub form's input, normalised."""
    return {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_SECRET: user_input[CONF_SECRET],
    }


def _hub_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): TextSelector(),
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_HUB_PORT)): (
                NumberSelector(
                    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
                )
            ),
            vol.Required(CONF_SECRET): TextSelector(
                TextSelectorConfig(type=TextSelectorType.PASSWORD)
            ),
        }
    )


async def _check_hub(data: Mapping[str, Any]) -> tuple[dict[str, str], Inventory | None]:
    """Authenticate to the hub; return (form errors, inventory or None)."""
    try:
        return {}, await _probe_hub(data)
    except HubAuthError:
        return {"base": "invalid_auth"}, None
    except HubError as err:
        LOGGER.debug("Hub at %s: %s", data[CONF_HOST], err)
        return {"base": "cannot_connect"}, None
    except Exception:
        LOGGER.exception("Unexpected error while connecting to the hub")
        return {"base": "unknown"}, None


async def _probe_hub(data: Mapping[str, Any]) -> Inventory:
    """Authenticate to the hub once and return its inventory.

    Raises:
        HubAuthError: wrong hub secret.
        HubError: the hub cannot be reached or spoke nonsense.

    """
    client = HubClient(data[CONF_HOST], data[CONF_PORT], data[CONF_SECRET])
    try:
        return await client.connect()
    finally:
        await client.close()


_HUB_ERRORS = {"exists": "already_on_hub", "limit": "hub_full", "bad_request": "invalid_plug"}


class HubOptionsFlow(OptionsFlow):
    """Add plugs to the hub or remove them; the hub stores them on its flash."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose what to do."""
        return self.async_show_menu(step_id="init", menu_options=["add_plug", "remove_plug"])

    def _hub(self) -> HubCoordinator:
        """The running hub coordinator.

        Raises:
            HubConnectionError: the entry is not loaded or the hub is not connected.

        """
        entry = self.config_entry
        coordinator = entry.runtime_data if entry.state is ConfigEntryState.LOADED else None
        if not isinstance(coordinator, HubCoordinator) or not coordinator.hub_connected:
            raise HubConnectionError("the hub is not connected")
        return coordinator

    async def async_step_add_plug(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Give the hub a plug: device id, local key, address, protocol version, name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key = str(user_input[CONF_LOCAL_KEY]).strip()
            if len(key) != 16 or not key.isascii():
                errors[CONF_LOCAL_KEY] = "invalid_local_key"
            else:
                try:
                    coordinator = self._hub()
                    await coordinator.client.add_plug(
                        str(user_input[CONF_DEVICE_ID]).strip(),
                        key,
                        str(user_input[CONF_HOST]).strip(),
                        version=user_input[CONF_PROTOCOL_VERSION],
                        name=user_input.get(CONF_NAME) or DEFAULT_NAME,
                        port=int(user_input[CONF_PORT]),
                    )
                    await coordinator.async_refresh_inventory()
                except HubCommandError as err:
                    errors["base"] = _HUB_ERRORS.get(err.code, "cannot_connect")
                except HubError:
                    errors["base"] = "cannot_connect"
                else:
                    return self.async_create_entry(data={})
        defaults = user_input or {}
        return self.async_show_form(
            step_id="add_plug",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Required(CONF_DEVICE_ID): TextSelector(),
                        vol.Required(CONF_LOCAL_KEY): TextSelector(
                            TextSelectorConfig(type=TextSelectorType.PASSWORD)
                        ),
                        vol.Required(CONF_HOST): TextSelector(),
                        vol.Required(CONF_PROTOCOL_VERSION, default="3.3"): SelectSelector(
                            SelectSelectorConfig(
                                options=HUB_PROTOCOL_VERSIONS,
                                mode=SelectSelectorMode.DROPDOWN,
                                translation_key=CONF_PROTOCOL_VERSION,
                            )
                        ),
                        vol.Required(CONF_PORT, default=DEFAULT_PORT): NumberSelector(
                            NumberSelectorConfig(
                                min=1, max=65535, step=1, mode=NumberSelectorMode.BOX
                            )
                        ),
                        vol.Optional(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
                    }
                ),
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
                coordinator = self._hub()
                await coordinator.client.remove_plug(user_input[CONF_DEVICE_ID])
                await coordinator.async_refresh_inventory()
            except HubError:
                errors["base"] = "cannot_connect"
            else:
                return self.async_create_entry(data={})
        plugs = self.config_entry.data.get(CONF_PLUGS, [])
        if not plugs:
            return self.async_abort(reason="no_plugs")
        return self.async_show_form(
            step_id="remove_plug",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_DEVICE_ID): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(value=p["id"], label=f"{p['name']} ({p['id']})")
                                for p in plugs
                            ],
                            mode=SelectSelectorMode.LIST,
                        )
                    )
                }
            ),
            errors=errors,
        )

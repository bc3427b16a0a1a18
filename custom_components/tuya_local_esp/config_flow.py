"""Config flow of Tuya Local ESP.

Plugs (typed in or discovered on the LAN) and ESP32 hubs; reconfigure and reauth. The steps are
here; the forms are in ``flow_schemas.py``, validation and probes in ``flow_probes.py``, the hub's
plugs (config subentries) in ``flow_hub_plugs.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    SOURCE_IMPORT,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo

from .const import (
    AUTO_VERSION,
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_HUB_ID,
    CONF_LOCAL_KEY,
    CONF_PROTOCOL_VERSION,
    CONF_SECRET,
    CONF_TRANSPORT,
    DEFAULT_HUB_NAME,
    DEFAULT_NAME,
    DEFAULT_PORT,
    DOMAIN,
    HUB_HOSTNAME_PREFIX,
    SUBENTRY_PLUG,
    TRANSPORT_DIRECT,
    TRANSPORT_HUB,
)
from .discovery import async_get_discovery
from .flow_hub_plugs import HubPlugSubentryFlow
from .flow_import import (
    CONF_DEVICES_JSON,
    CONF_PLUGS_SELECTED,
    devices_json_schema,
    entry_data,
    pick_schema,
    skipped_text,
)
from .flow_plug_options import PlugOptionsFlow
from .flow_probes import check_hub, hub_data, validate_plug, validate_releasing
from .flow_schemas import (
    discovery_confirm_schema,
    hub_schema,
    pick_plug_schema,
    plug_schema,
    secret_schema,
    with_option_version,
    with_stored_version,
)
from .hub_coordinator import inventory_subentries
from .profiles import DevicesJsonError, DevicesJsonImport, parse_devices_json
from .tuya import VERSIONS


class TuyaLocalConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a plug: the flow connects and reads its DPS before creating the entry."""

    VERSION = 1
    #: 1.2: a hub's plugs are config subentries (``async_migrate_entry`` converts 1.1);
    #: 1.3: hub plug subentries from before profiles are marked for detection.
    MINOR_VERSION = 3

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovered: dict[str, Any] = {}
        self._found: list[dict[str, Any]] = []
        self._manual = False
        self._import: DevicesJsonImport | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose: a plug reached directly, or an ESP32 hub.

        Listening for plugs starts here too, so that plugs show up as discovered from the first
        time the integration is added (later the integration's own set-up keeps it running).
        """
        await async_get_discovery(self.hass)
        return self.async_show_menu(step_id="user", menu_options=["plug", "hub", "import_devices"])

    async def async_step_import_devices(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Paste tinytuya's devices.json; refused as a whole when it is not usable."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                self._import = parse_devices_json(user_input[CONF_DEVICES_JSON])
            except DevicesJsonError as err:
                errors["base"] = f"devices_json_{err.code}"
            else:
                return await self.async_step_import_pick()
        return self.async_show_form(
            step_id="import_devices", data_schema=devices_json_schema(), errors=errors
        )

    async def async_step_import_pick(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the plugs to add; one entry each, all or none (nothing half-way)."""
        assert self._import is not None
        configured_ids = self._async_current_ids(include_ignore=False)
        new = [p for p in self._import.plugs if p.device_id not in configured_ids]
        configured = [p for p in self._import.plugs if p.device_id in configured_ids]
        if not new:
            return self.async_abort(reason="already_configured")
        heard = {d.device_id: d for d in (await async_get_discovery(self.hass)).seen()}
        errors: dict[str, str] = {}
        placeholders = {"skipped": skipped_text(self._import.skipped, configured), "missing": ""}
        if user_input is not None:
            chosen = set(user_input[CONF_PLUGS_SELECTED])
            picked = [p for p in new if p.device_id in chosen]
            datas = [entry_data(p, heard.get(p.device_id)) for p in picked]
            missing = [p.name for p, d in zip(picked, datas, strict=True) if d is None]
            if not picked:
                errors["base"] = "none_selected"
            elif missing:
                errors["base"] = "no_address"
                placeholders["missing"] = ", ".join(missing)
            else:
                return await self._create_imported([d for d in datas if d is not None])
        return self.async_show_form(
            step_id="import_pick",
            data_schema=pick_schema(new, heard),
            description_placeholders=placeholders,
            errors=errors,
        )

    async def _create_imported(self, datas: list[dict[str, Any]]) -> ConfigFlowResult:
        """The first plug's entry by this flow, the others by one import flow each."""
        first, *others = datas
        await self.async_set_unique_id(first[CONF_DEVICE_ID], raise_on_progress=False)
        for data in others:
            await self.hass.config_entries.flow.async_init(
                DOMAIN, context={"source": SOURCE_IMPORT}, data=data
            )
        return self.async_create_entry(title=first[CONF_NAME], data=first)

    async def async_step_import(self, import_data: dict[str, Any]) -> ConfigFlowResult:
        """One plug of a devices.json import (entry data from ``flow_import.entry_data``)."""
        await self.async_set_unique_id(import_data[CONF_DEVICE_ID], raise_on_progress=False)
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title=import_data[CONF_NAME], data=import_data)

    async def async_step_plug(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for host, device id, local key and protocol version."""
        offer = user_input is None and not self._manual
        if offer and (found := (await async_get_discovery(self.hass)).unconfigured()):
            return await self.async_step_pick_plug(found=found)
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input = with_stored_version(user_input)
            # a discovery flow for the same plug may be open: it ends when this one succeeds
            await self.async_set_unique_id(
                str(user_input[CONF_DEVICE_ID]).strip(), raise_on_progress=False
            )
            self._abort_if_unique_id_configured()
            errors = await validate_plug(user_input)
            if not errors:
                name = user_input.get(CONF_NAME) or DEFAULT_NAME
                return self.async_create_entry(
                    title=name,
                    data={**user_input, CONF_NAME: name, CONF_TRANSPORT: TRANSPORT_DIRECT},
                )
        return self.async_show_form(
            step_id="plug",
            data_schema=self.add_suggested_values_to_schema(
                plug_schema(user_input or {}, with_device_id=True),
                with_option_version(user_input) if user_input else None,
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
        return self.async_show_form(step_id="pick_plug", data_schema=pick_plug_schema(self._found))

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
            errors = await validate_plug(data, announced if announced in VERSIONS else None)
            if not errors:
                name = user_input.get(CONF_NAME) or DEFAULT_NAME
                return self.async_create_entry(
                    title=name, data={**data, CONF_NAME: name, CONF_TRANSPORT: TRANSPORT_DIRECT}
                )
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=discovery_confirm_schema(found[CONF_DEVICE_ID]),
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
            data = hub_data(user_input)
            errors, inventory = await check_hub(data)
            if inventory is not None:
                await self.async_set_unique_id(inventory.hub_id)
                self._abort_if_unique_id_configured(
                    updates={CONF_HOST: data[CONF_HOST], CONF_PORT: data[CONF_PORT]}
                )
                return self.async_create_entry(
                    title=f"{DEFAULT_HUB_NAME} {inventory.hub_id}",
                    data={**data, CONF_TRANSPORT: TRANSPORT_HUB, CONF_HUB_ID: inventory.hub_id},
                    subentries=inventory_subentries(inventory),
                )
        return self.async_show_form(
            step_id="hub", data_schema=hub_schema(user_input or self._discovered), errors=errors
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
                errors, inventory = await check_hub(data)
                if inventory is not None:
                    await self.async_set_unique_id(inventory.hub_id)
                    self._abort_if_unique_id_mismatch(reason="wrong_hub")
            else:
                errors = await validate_releasing(entry, data)
            if not errors and hub:
                return self._update_hub_and_abort(entry, data, "reauth_successful")
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=secret_schema(field),
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
            data = hub_data(user_input)
            errors, inventory = await check_hub(data)
            if inventory is not None:
                await self.async_set_unique_id(inventory.hub_id)
                self._abort_if_unique_id_mismatch(reason="wrong_hub")
                return self._update_hub_and_abort(
                    entry, {**entry.data, **data}, "reconfigure_successful"
                )
        return self.async_show_form(
            step_id="reconfigure_hub",
            data_schema=hub_schema(user_input or entry.data),
            errors=errors,
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """A plug entry's layout (profile), outlet names and divisors; hubs use subentries."""
        return PlugOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """Only plug entries have options; a hub's plugs are its subentries."""
        return config_entry.data.get(CONF_TRANSPORT) != TRANSPORT_HUB

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """A hub entry has one subentry per plug ("Add plug" on its page); plugs have none."""
        if config_entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
            return {SUBENTRY_PLUG: HubPlugSubentryFlow}
        return {}

    @callback
    def _update_hub_and_abort(
        self, entry: ConfigEntry, data: Mapping[str, Any], reason: str
    ) -> ConfigFlowResult:
        """Store a hub entry's new data and reload it.

        A hub entry reloads through its update listener (which also follows its subentries),
        so HA's ``async_update_reload_and_abort`` cannot be used; an unchanged entry (or one
        that is not loaded) is reloaded here.
        """
        loaded = entry.state is ConfigEntryState.LOADED  # then its update listener reloads it
        if not self.hass.config_entries.async_update_entry(entry, data=data) or not loaded:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_abort(reason=reason)

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
                **with_stored_version(user_input),
                CONF_DEVICE_ID: entry.data[CONF_DEVICE_ID],
                # left empty: keep the stored local key
                CONF_LOCAL_KEY: user_input.get(CONF_LOCAL_KEY) or entry.data[CONF_LOCAL_KEY],
            }
            errors = await validate_releasing(entry, user_input)
            if not errors:
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=plug_schema(user_input or entry.data, with_device_id=False),
            errors=errors,
        )

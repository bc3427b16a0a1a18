"""Coordinator of an ESP32 hub entry: the plugs behind the hub, over our hub channel.

State pushes from the hub (``docs/hub-protocol.md``) update the data at once; health and the
inventory are polled every minute. A plug is online while the hub is connected and reports the
plug online; everything goes unavailable while the hub is unreachable and comes back by itself.
"""

from __future__ import annotations

from typing import Any, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import UpdateFailed

from .const import (
    CONF_HUB_ID,
    CONF_PLUGS,
    CONF_SECRET,
    DEFAULT_HUB_NAME,
    DOMAIN,
    HUB_POLL_INTERVAL,
    LOGGER,
)
from .coordinator import PlugCoordinator, PlugData, PlugInfo
from .hub import (
    HubAuthError,
    HubClient,
    HubCommandError,
    HubError,
    HubHealth,
    Inventory,
    StateUpdate,
)


def plugs_record(inventory: Inventory) -> list[dict[str, str]]:
    """The inventory's plugs as stored in the config entry (no local keys: the hub keeps them)."""
    return [
        {"id": p.device_id, "name": p.name, "ver": p.version}
        for p in sorted(inventory.plugs.values(), key=lambda p: p.device_id)
    ]


class HubCoordinator(PlugCoordinator):
    """All plugs behind one hub."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Create the hub client for ``entry`` (nothing is opened yet)."""
        data = entry.data
        self.hub_id: str = data[CONF_HUB_ID]
        self.client = HubClient(data[CONF_HOST], data[CONF_PORT], data[CONF_SECRET])
        self.plugs = {
            p["id"]: PlugInfo(p["id"], p["name"], p["ver"], via_hub=self.hub_id)
            for p in data.get(CONF_PLUGS, [])
        }
        self.health: HubHealth | None = None
        self._online: dict[str, bool] = {}
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} hub {self.hub_id}",
            update_interval=HUB_POLL_INTERVAL,
            always_update=False,
        )
        self.data = {device_id: {} for device_id in self.plugs}
        self._unsubs = [
            self.client.subscribe(self._on_state),
            self.client.subscribe_connection(self._on_connection),
        ]

    @property
    def hub_connected(self) -> bool:
        """True while the authenticated channel to the hub is up."""
        return self.client.connected

    @property
    def firmware(self) -> str | None:
        """Firmware version of the hub, once known."""
        inventory = self.client.inventory
        return inventory.firmware if inventory else None

    def register_hub_device(self) -> None:
        """Create the hub's device so that the plugs can name it as their ``via`` device."""
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.config_entry.entry_id,
            identifiers={(DOMAIN, self.hub_id)},
            name=self.config_entry.title or DEFAULT_HUB_NAME,
            manufacturer="tuya_local_esp",
            model="ESP32 hub (MicroPython)",
            serial_number=self.hub_id,
            sw_version=self.firmware,
        )

    async def async_start(self) -> None:
        """Connect in the background; never blocks Home Assistant's start-up."""
        await self.client.start()

    async def async_shutdown(self) -> None:
        """Close the channel and stop the coordinator."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        await self.client.close()
        await super().async_shutdown()

    @callback
    def _forget_discovered(self, device_ids: set[str]) -> None:
        """End the discovery flows of plugs this hub serves (they were heard on the LAN)."""
        flows = self.hass.config_entries.flow
        for flow in flows.async_progress_by_handler(DOMAIN):
            if flow["context"].get("unique_id") in device_ids:
                flows.async_abort(flow["flow_id"])

    @override
    def plug_online(self, device_id: str) -> bool:
        return self.client.connected and self._online.get(device_id, False)

    def _merge(self, inventory: Inventory) -> PlugData:
        """Take the plugs' online state from ``inventory``; return the data with its DPS."""
        self._online = {d: p.online for d, p in inventory.plugs.items()}
        return {d: {**self.data.get(d, {}), **p.dps} for d, p in inventory.plugs.items()}

    @callback
    def _apply_inventory(self, inventory: Inventory) -> None:
        self._forget_discovered(set(inventory.plugs))
        data = self._merge(inventory)
        record = plugs_record(inventory)
        entry = self.config_entry
        if record != entry.data.get(CONF_PLUGS):
            # plugs were added or removed on the hub: store and rebuild the entities
            LOGGER.info("Hub %s now has %d plugs; reloading", self.hub_id, len(record))
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_PLUGS: record}
            )
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        self.async_set_updated_data(data)

    async def async_refresh_inventory(self) -> None:
        """Read the hub's inventory now (after adding or removing a plug).

        Raises:
            HubError: the hub did not answer.

        """
        self._apply_inventory(await self.client.refresh_inventory())

    @callback
    def _on_connection(self, connected: bool) -> None:
        if connected and (inventory := self.client.inventory) is not None:
            LOGGER.info("Hub %s is connected", self.hub_id)
            self._apply_inventory(inventory)
        else:
            LOGGER.info("Hub %s is unreachable; reconnecting", self.hub_id)
            self.async_update_listeners()

    @callback
    def _on_state(self, update: StateUpdate) -> None:
        self._online[update.device_id] = update.online
        current = self.data.get(update.device_id, {})
        self.async_set_updated_data({**self.data, update.device_id: {**current, **update.dps}})

    @override
    async def _async_update_data(self) -> PlugData:
        if not self.client.connected:
            if isinstance(self.client.last_error, HubAuthError):
                self.config_entry.async_start_reauth(self.hass)  # the hub's secret changed
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="hub_unreachable",
                translation_placeholders={"hub_id": self.hub_id},
            )
        try:
            self.health = await self.client.health()
            inventory = await self.client.refresh_inventory()
        except HubError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="hub_unreachable",
                translation_placeholders={"hub_id": self.hub_id},
            ) from err
        self.async_update_listeners()  # health is not part of the data compared below
        return self._merge(inventory)

    @override
    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        try:
            confirmed = await self.client.set_dps(device_id, dps)
        except HubCommandError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": err.code},
            ) from err
        except HubError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": str(err)},
            ) from err
        current = self.data.get(device_id, {})
        self.async_set_updated_data({**self.data, device_id: {**current, **confirmed}})
        return confirmed

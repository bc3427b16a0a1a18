"""Coordinator of an ESP32 hub entry: the plugs behind the hub, over our hub channel.

State pushes from the hub (``docs/hub-protocol.md``) update the data at once; health and the
inventory are polled every minute. A plug is online while the hub is connected and reports the
plug online; everything goes unavailable while the hub is unreachable and comes back by itself.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
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
from .coordinator import PlugCoordinator, PlugData
from .hub import (
    HubAuthError,
    HubClient,
    HubCommandError,
    HubError,
    HubHealth,
    Inventory,
    StateUpdate,
)
from .source import NewPlug, PlugInfo, PlugManagementError


def plugs_record(inventory: Inventory) -> list[dict[str, str]]:
    """The inventory's plugs as stored in the config entry (no local keys: the hub keeps them)."""
    return [
        {"id": p.device_id, "name": p.name, "ver": p.version}
        for p in sorted(inventory.plugs.values(), key=lambda p: p.device_id)
    ]


class HubCoordinator(PlugCoordinator):
    """All plugs behind one hub; a :class:`~.source.PlugSource`."""

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
        super().__init__(hass, entry, f"{DOMAIN} hub {self.hub_id}", HUB_POLL_INTERVAL)
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

    @callback
    def remove_stale_plug_devices(self) -> None:
        """Remove the devices of plugs that were removed from the hub."""
        registry = dr.async_get(self.hass)
        keep = {*self.plugs, self.hub_id}
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            if not any(i[0] == DOMAIN and i[1] in keep for i in device.identifiers):
                registry.async_update_device(
                    device.id, remove_config_entry_id=self.config_entry.entry_id
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

    def plug_online(self, device_id: str) -> bool:
        """True while the hub is connected and reports the plug online."""
        return self.client.connected and self._online.get(device_id, False)

    async def async_follow_host(self, device_id: str, host: str) -> None:
        """The plug was heard at ``host``: tell the hub (``host`` request, hub-protocol §7.3).

        The hub stores the address and reconnects there at once. Nothing is sent when the hub
        has that address already or is not connected (discovery asks again when the plug's
        announcement changes, and after a restart); a refusal is logged and changes nothing.
        """
        inventory = self.client.inventory
        plug = inventory.plugs.get(device_id) if inventory is not None else None
        if plug is None or plug.host == host or not self.client.connected:
            return
        LOGGER.info("Plug %s behind hub %s moved to %s", device_id, self.hub_id, host)
        try:
            await self.client.set_plug_host(device_id, host)
        except HubError as err:
            LOGGER.warning(
                "Hub %s did not take the new address of plug %s: %s", self.hub_id, device_id, err
            )

    def wake(self, device_id: str) -> None:
        """The hub reconnects to its plugs itself; nothing to do here."""

    async def async_release(self, device_id: str) -> None:
        """The hub keeps its plugs' connections; nothing to release."""

    async def async_resume(self, device_id: str) -> None:
        """See :meth:`async_release`."""

    async def async_add_plug(self, plug: NewPlug) -> None:
        """Give the hub a plug (stored on its flash), then read the inventory again.

        Raises:
            PlugManagementError: the hub refused (``already_on_hub``, ``hub_full``,
                ``invalid_plug``) or is not connected (``cannot_connect``).

        """
        await self._manage(
            self.client.add_plug(
                plug.device_id,
                plug.local_key,
                plug.host,
                version=plug.version,
                name=plug.name,
                port=plug.port,
            )
        )

    async def async_remove_plug(self, device_id: str) -> None:
        """Remove a plug from the hub, then read the inventory again.

        Raises:
            PlugManagementError: the hub is not connected or refused (``cannot_connect``).

        """
        await self._manage(self.client.remove_plug(device_id))

    async def _manage(self, request: Coroutine[Any, Any, None]) -> None:
        if not self.client.connected:
            request.close()
            raise PlugManagementError("cannot_connect", "the hub is not connected")
        try:
            await request
            await self.async_refresh_inventory()
        except HubCommandError as err:
            raise PlugManagementError(
                _HUB_ERRORS.get(err.code, "cannot_connect"), err.code
            ) from err
        except HubError as err:
            raise PlugManagementError("cannot_connect", str(err)) from err

    def diagnostics(self) -> dict[str, Any]:
        """The hub channel's state and the hub's health (no secret)."""
        client = self.client
        return {
            "hub": {
                "hub_id": self.hub_id,
                "connected": client.connected,
                "firmware": self.firmware,
                "health": asdict(self.health) if self.health else None,
                "last_error": str(client.last_error) if client.last_error else None,
            }
        }

    def _merge(self, inventory: Inventory) -> None:
        """Take the plugs' online state and DPS from ``inventory``; tell the listeners."""
        online = {d: p.online for d, p in inventory.plugs.items()}
        changed = {d for d in online if online[d] != self._online.get(d)}
        self._online = online
        for device_id, plug in inventory.plugs.items():
            self._update_plug(device_id, plug.dps)
            if device_id in changed:
                self._notify(device_id)

    @callback
    def _apply_inventory(self, inventory: Inventory) -> None:
        self._forget_discovered(set(inventory.plugs))
        self._merge(inventory)
        record = plugs_record(inventory)
        entry = self.config_entry
        if record != entry.data.get(CONF_PLUGS):
            # plugs were added or removed on the hub: store and rebuild the entities
            LOGGER.info("Hub %s now has %d plugs; reloading", self.hub_id, len(record))
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_PLUGS: record}
            )
            self.hass.config_entries.async_schedule_reload(entry.entry_id)

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
        self._notify_all()
        self.async_update_listeners()  # the hub's own entities

    @callback
    def _on_state(self, update: StateUpdate) -> None:
        was_online = self._online.get(update.device_id)
        self._online[update.device_id] = update.online
        self._update_plug(update.device_id, update.dps)
        if was_online != update.online:
            self._notify(update.device_id)

    @override
    async def _async_update_data(self) -> PlugData:
        if not self.client.connected:
            if isinstance(self.client.last_error, HubAuthError):
                raise ConfigEntryAuthFailed(  # the hub's secret changed
                    translation_domain=DOMAIN,
                    translation_key="hub_secret_refused",
                    translation_placeholders={"hub_id": self.hub_id},
                )
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
        self._merge(inventory)
        self.async_update_listeners()  # health is not part of the data
        return self.data

    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs of a plug through the hub; return those the plug confirmed.

        Raises:
            HomeAssistantError: translated ``set_failed`` (the hub's error code, or why the
                hub could not be asked).

        """
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
        self._update_plug(device_id, confirmed)
        return confirmed


#: Hub error codes (docs/hub-protocol.md §6) -> error keys of the options form.
_HUB_ERRORS = {"exists": "already_on_hub", "limit": "hub_full", "bad_request": "invalid_plug"}

"""Tuya Local ESP: Tuya Wi-Fi plugs over the local protocol, directly or via an ESP32 hub."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import CONF_TRANSPORT, DOMAIN, TRANSPORT_HUB
from .coordinator import DirectPlugCoordinator, PlugCoordinator
from .discovery import async_get_discovery
from .hub_coordinator import HubCoordinator

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR, Platform.SWITCH]

type TuyaLocalConfigEntry = ConfigEntry[PlugCoordinator]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Start the shared LAN discovery of plugs (in the background)."""
    await async_get_discovery(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> bool:
    """Set up a plug entry or a hub entry.

    The connection is opened in the background, so a plug or hub that is off or slow never
    delays Home Assistant's start-up; its entities are unavailable until it answers.
    """
    coordinator: PlugCoordinator
    if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
        coordinator = HubCoordinator(hass, entry)
        coordinator.register_hub_device()
        _remove_stale_plug_devices(hass, entry, coordinator)
    else:
        coordinator = DirectPlugCoordinator(hass, entry)
    entry.runtime_data = coordinator

    async def _close(_: Event) -> None:
        await coordinator.async_shutdown()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close))
    await coordinator.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> bool:
    """Unload a config entry and close its connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_shutdown()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: TuyaLocalConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a plug's device once the hub no longer has the plug."""
    coordinator = entry.runtime_data
    return not any(
        ident[0] == DOMAIN and (ident[1] in coordinator.plugs or ident[1] == _hub_id(entry))
        for ident in device.identifiers
    )


def _hub_id(entry: ConfigEntry) -> str | None:
    coordinator = getattr(entry, "runtime_data", None)
    return coordinator.hub_id if isinstance(coordinator, HubCoordinator) else None


def _remove_stale_plug_devices(
    hass: HomeAssistant, entry: ConfigEntry, coordinator: HubCoordinator
) -> None:
    """Remove the devices of plugs that were removed from the hub."""
    registry = dr.async_get(hass)
    keep = {*coordinator.plugs, coordinator.hub_id}
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if not any(i[0] == DOMAIN and i[1] in keep for i in device.identifiers):
            registry.async_update_device(device.id, remove_config_entry_id=entry.entry_id)

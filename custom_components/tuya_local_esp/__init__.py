"""Tuya Local ESP: Tuya Wi-Fi plugs over the local protocol, directly or via an ESP32 hub."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import CONF_HUB_ID, CONF_TRANSPORT, DOMAIN, TRANSPORT_HUB
from .coordinator import DirectPlugCoordinator
from .discovery import async_get_discovery
from .hub_coordinator import HubCoordinator
from .source import PlugSource

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS_DIRECT = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]
PLATFORMS_HUB = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


@dataclass(slots=True)
class TuyaLocalRuntime:
    """What a loaded entry holds: its plug source, and the hub for hub entries."""

    source: PlugSource
    #: The hub's coordinator (hub entries only): the hub device's own entities use it.
    hub: HubCoordinator | None = None


type TuyaLocalConfigEntry = ConfigEntry[TuyaLocalRuntime]


def _platforms(entry: ConfigEntry) -> list[Platform]:
    return PLATFORMS_HUB if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB else PLATFORMS_DIRECT


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Start the shared LAN discovery of plugs (in the background)."""
    await async_get_discovery(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> bool:
    """Set up a plug entry or a hub entry.

    The connection is opened in the background, so a plug or hub that is off or slow never
    delays Home Assistant's start-up; its entities are unavailable until it answers.
    """
    if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
        hub = HubCoordinator(hass, entry)
        hub.register_hub_device()
        hub.remove_stale_plug_devices()
        entry.runtime_data = TuyaLocalRuntime(hub, hub)
    else:
        entry.runtime_data = TuyaLocalRuntime(DirectPlugCoordinator(hass, entry))
    source = entry.runtime_data.source

    async def _close(_: Event) -> None:
        await source.async_shutdown()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close))
    await source.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, _platforms(entry))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> bool:
    """Unload a config entry and close its connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, _platforms(entry))
    if unloaded:
        await entry.runtime_data.source.async_shutdown()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: TuyaLocalConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a plug's device once the hub no longer has the plug."""
    keep = {*entry.runtime_data.source.plugs, entry.data.get(CONF_HUB_ID)}
    return not any(ident[0] == DOMAIN and ident[1] in keep for ident in device.identifiers)

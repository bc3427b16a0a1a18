"""Tuya Local ESP: Tuya Wi-Fi plugs over the local protocol, directly or via an ESP32 hub."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .coordinator import DirectPlugCoordinator, PlugCoordinator
from .discovery import async_get_discovery

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS = [Platform.SENSOR, Platform.SWITCH]

type TuyaLocalConfigEntry = ConfigEntry[PlugCoordinator]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Start the shared LAN discovery of plugs (in the background)."""
    await async_get_discovery(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> bool:
    """Set up one config entry.

    The connection is opened in the background, so a plug that is off or slow never delays
    Home Assistant's start-up; its entities are unavailable until it answers.
    """
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

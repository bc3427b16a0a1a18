"""Tuya Local ESP: Tuya Wi-Fi plugs over the local protocol, directly or via an ESP32 hub."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.typing import ConfigType

from .const import (
    CONF_DEVICE_ID,
    CONF_HUB_ID,
    CONF_PLUGS,
    CONF_PROTOCOL_VERSION,
    CONF_REMOVING,
    CONF_TRANSPORT,
    DOMAIN,
    LOGGER,
    SUBENTRY_PLUG,
    TRANSPORT_HUB,
)
from .coordinator import DirectPlugCoordinator
from .discovery import async_get_discovery
from .hub_coordinator import CONF_DETECT_PENDING, HubCoordinator, never_detected
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
    Platform.UPDATE,  # the hub's firmware (update.py)
]


@dataclass(slots=True)
class TuyaLocalRuntime:
    """What a loaded entry holds: its plug source, and the hub for hub entries."""

    source: PlugSource
    #: The hub's coordinator (hub entries only): the hub device's own entities use it.
    hub: HubCoordinator | None = None
    #: What the entry was loaded with (hub entries: :func:`_loaded_state`).
    loaded_state: object = None


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
        entry.runtime_data = TuyaLocalRuntime(hub, hub, _loaded_state(entry))
        entry.async_on_unload(entry.add_update_listener(_async_hub_entry_changed))
        # the hub may answer before the platforms are set up: its plug list is applied to the
        # subentries once the entry is loaded (a change reloads the entry)
        entry.async_on_unload(entry.async_on_state_change(hub.sync_subentries))
    else:
        entry.runtime_data = TuyaLocalRuntime(DirectPlugCoordinator(hass, entry))
    source = entry.runtime_data.source

    async def _close(_: Event) -> None:
        await source.async_shutdown()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close))
    await source.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, _platforms(entry))
    return True


async def _async_hub_entry_changed(hass: HomeAssistant, entry: TuyaLocalConfigEntry) -> None:
    """A hub entry or its plug subentries changed: note deleted plugs, then reload.

    A deleted subentry's plug is put on the entry's ``removing`` list; the reloaded coordinator
    removes it from the hub as soon as the hub is connected (now, or when it comes back).
    """
    loaded = set(entry.runtime_data.source.plugs)
    kept = {sub.data[CONF_DEVICE_ID] for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)}
    if deleted := loaded - kept:
        removing = sorted({*entry.data.get(CONF_REMOVING, []), *deleted})
        if hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_REMOVING: removing}
        ):
            return  # this listener runs again for that update, and reloads then
    if _loaded_state(entry) == entry.runtime_data.loaded_state:
        return  # only the removal list changed (the coordinator clears it): nothing to reload
    hass.config_entries.async_schedule_reload(entry.entry_id)


def _loaded_state(entry: ConfigEntry) -> object:
    """What a reload would apply: title, data (without the removal list), options, subentries."""
    data = {k: v for k, v in entry.data.items() if k != CONF_REMOVING}
    subentries = {
        sid: (sub.title, dict(sub.data), sub.unique_id) for sid, sub in entry.subentries.items()
    }
    return (entry.title, data, dict(entry.options), subentries)


async def async_migrate_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Migrate older entries, step by step (1.1 -> 1.2 -> 1.3).

    1.1 -> 1.2: a hub's cached ``plugs`` become plug subentries; each plug's device and
    entities are attached to its new subentry. 1.2 -> 1.3: a hub's plug subentries without any
    profile state (:func:`~.hub_coordinator.never_detected`: from before profiles, 0.3.0) are
    marked ``detect_pending``, so the hub coordinator detects their profile once the hub
    reports them online with DPS; a picked layout or a detection already stored is left
    alone. Entities keep their unique ids (``switch.py``, ``sensor.py``: by role, not by DP).
    (Home Assistant calls this only for older entries, and refuses newer ones, a downgrade,
    itself.)
    """
    if entry.minor_version < 2:  # 1.1 -> 1.2
        data = dict(entry.data)
        plugs = data.pop(CONF_PLUGS, [])
        if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
            devices = dr.async_get(hass)
            entities = er.async_get(hass)
            for plug in plugs:
                sub = ConfigSubentry(
                    data=MappingProxyType(
                        {CONF_DEVICE_ID: plug["id"], CONF_PROTOCOL_VERSION: plug["ver"]}
                    ),
                    subentry_type=SUBENTRY_PLUG,
                    title=plug["name"],
                    unique_id=plug["id"],
                )
                hass.config_entries.async_add_subentry(entry, sub)
                device = devices.async_get_device_by_identifier(
                    (DOMAIN, plug["id"]), entry.entry_id
                )
                if device is None:
                    continue
                for entity in er.async_entries_for_device(entities, device.id, True):
                    entities.async_update_entity(
                        entity.entity_id, config_subentry_id=sub.subentry_id
                    )
                devices.async_update_device(device.id, new_config_subentry_id=sub.subentry_id)
        hass.config_entries.async_update_entry(entry, data=data, minor_version=2)
        LOGGER.debug("Migrated entry %s to version 1.2", entry.entry_id)
    if entry.minor_version < 3:  # 1.2 -> 1.3
        if entry.data.get(CONF_TRANSPORT) == TRANSPORT_HUB:
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG):
                if never_detected(sub.data):
                    hass.config_entries.async_update_subentry(
                        entry, sub, data={**sub.data, CONF_DETECT_PENDING: True}
                    )
        hass.config_entries.async_update_entry(entry, minor_version=3)
        LOGGER.debug("Migrated entry %s to version 1.3", entry.entry_id)
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
    """Allow deleting a plug's device once the hub no longer has the plug.

    Plugs the hub has are removed through their subentry (which removes them from the hub).
    """
    keep = {*entry.runtime_data.source.plugs, entry.data.get(CONF_HUB_ID)}
    return not any(ident[0] == DOMAIN and ident[1] in keep for ident in device.identifiers)

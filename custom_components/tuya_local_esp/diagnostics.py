"""Diagnostics, with the local key and hub secret redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import TuyaLocalConfigEntry
from .const import CONF_LOCAL_KEY
from .coordinator import DirectPlugCoordinator
from .hub_coordinator import HubCoordinator

TO_REDACT = {CONF_LOCAL_KEY, "secret", "session_key"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: TuyaLocalConfigEntry
) -> dict[str, Any]:
    """Return the entry's data (secrets redacted), its plugs' DPS and connection state."""
    coordinator = entry.runtime_data
    plugs = {
        device_id: {
            "name": info.name,
            "protocol_version": info.protocol_version,
            "online": coordinator.plug_online(device_id),
            "dps": (coordinator.data or {}).get(device_id, {}),
        }
        for device_id, info in coordinator.plugs.items()
    }
    result: dict[str, Any] = {
        "entry": async_redact_data(dict(entry.data), TO_REDACT),
        "plugs": plugs,
    }
    if isinstance(coordinator, DirectPlugCoordinator):
        device = coordinator.device
        result["connection"] = {
            "connected": device.connected,
            "protocol_version": device.version,
            "connect_count": device.connect_count,
            "bad_frames": device.bad_frames,
            "last_error": str(device.last_error) if device.last_error else None,
        }
    elif isinstance(coordinator, HubCoordinator):
        client = coordinator.client
        result["hub"] = {
            "hub_id": coordinator.hub_id,
            "connected": client.connected,
            "firmware": coordinator.firmware,
            "health": asdict(coordinator.health) if coordinator.health else None,
            "last_error": str(client.last_error) if client.last_error else None,
        }
    return result

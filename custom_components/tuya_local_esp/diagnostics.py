"""Diagnostics, with the local key and hub secret redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import TuyaLocalConfigEntry
from .const import CONF_LOCAL_KEY, CONF_SECRET

TO_REDACT = {CONF_LOCAL_KEY, CONF_SECRET, "session_key"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: TuyaLocalConfigEntry
) -> dict[str, Any]:
    """Return the entry's data (secrets redacted), its plugs' DPS and the transport's state."""
    source = entry.runtime_data.source
    plugs = {
        device_id: {
            "name": info.name,
            "protocol_version": info.protocol_version,
            "online": source.plug_online(device_id),
            "dps": dict(source.plug_dps(device_id)),
        }
        for device_id, info in source.plugs.items()
    }
    return {
        "entry": async_redact_data(dict(entry.data), TO_REDACT),
        "plugs": plugs,
        **async_redact_data(source.diagnostics(), TO_REDACT),
    }

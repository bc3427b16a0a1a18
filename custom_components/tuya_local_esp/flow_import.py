"""Import of tinytuya's ``devices.json`` in the config flow: forms and entry data (no I/O).

The parsing is ``profiles.devices_json``; this module turns its plugs into config entry data,
with the address and protocol version heard on the LAN preferred over the file's (a plug's
DHCP address may have changed since the wizard ran). Local keys go into entry data only, never
into a form, label, placeholder or log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import probatio as vol
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)

from .const import (
    AUTO_VERSION,
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROFILE,
    CONF_PROTOCOL_VERSION,
    CONF_TRANSPORT,
    DEFAULT_NAME,
    DEFAULT_PORT,
    TRANSPORT_DIRECT,
)
from .profiles import ImportedPlug, SkippedEntry
from .profiles.devices_json import SKIP_DUPLICATE, SKIP_NO_KEY, SKIP_NOT_A_PLUG, SKIP_SUB
from .profiles.model import dp_sort_key
from .tuya.discovery import DiscoveredDevice

CONF_DEVICES_JSON: Final = "devices_json"
CONF_PLUGS_SELECTED: Final = "plugs"
#: Why an entry is left out, as the user reads it (by reason code of ``profiles.devices_json``).
SKIP_REASONS: Final = {
    SKIP_SUB: "behind a gateway (Zigbee or Bluetooth), not reachable on its own",
    SKIP_NOT_A_PLUG: "not a plug (no switch in its DP mapping)",
    SKIP_NO_KEY: "no local key in the file",
    SKIP_DUPLICATE: "listed twice",
    "already_configured": "already added",
}
#: Shown instead of an address that is neither in the file nor heard on the LAN.
NO_ADDRESS: Final = "address not known yet"


def devices_json_schema() -> vol.Schema:
    """One multiline text field for the pasted contents of devices.json."""
    return vol.Schema(
        {vol.Required(CONF_DEVICES_JSON): TextSelector(TextSelectorConfig(multiline=True))}
    )


def plug_label(plug: ImportedPlug, heard: DiscoveredDevice | None) -> str:
    """``name (device id, address)``; the address heard on the LAN wins over the file's."""
    host = heard.ip if heard is not None else plug.host
    return f"{plug.name} ({plug.device_id}, {host or NO_ADDRESS})"


def pick_schema(plugs: Iterable[ImportedPlug], heard: Mapping[str, DiscoveredDevice]) -> vol.Schema:
    """A multi-select of the importable plugs, every one selected by default."""
    options = [
        SelectOptionDict(value=p.device_id, label=plug_label(p, heard.get(p.device_id)))
        for p in plugs
    ]
    return vol.Schema(
        {
            vol.Required(
                CONF_PLUGS_SELECTED, default=[o["value"] for o in options]
            ): SelectSelector(
                SelectSelectorConfig(options=options, multiple=True, mode=SelectSelectorMode.LIST)
            )
        }
    )


def _reason(code: str) -> str:
    return SKIP_REASONS.get(code, code)


def skipped_text(skipped: Iterable[SkippedEntry], configured: Iterable[ImportedPlug]) -> str:
    """One line per entry left out: ``- name (id): reason`` (``SKIP_REASONS``, else the code)."""
    lines = [
        f"- {e.name or 'unnamed'} ({e.device_id or 'no id'}): {_reason(e.reason)}" for e in skipped
    ]
    lines += [
        f"- {p.name} ({p.device_id}): {SKIP_REASONS['already_configured']}" for p in configured
    ]
    return "\n".join(lines) if lines else "-"


def entry_data(plug: ImportedPlug, heard: DiscoveredDevice | None) -> dict[str, Any] | None:
    """Config entry data of an imported plug; None when no address is known.

    The protocol version is "auto" with the known version tried first; the profile comes from
    the file's mapping (None there: the plug's profile is detected at its first connection).
    """
    host = heard.ip if heard is not None else plug.host
    if not host:
        return None
    version = heard.version if heard is not None else plug.version
    data: dict[str, Any] = {
        CONF_HOST: host,
        CONF_PORT: DEFAULT_PORT,
        CONF_DEVICE_ID: plug.device_id,
        CONF_LOCAL_KEY: plug.local_key,
        CONF_PROTOCOL_VERSION: AUTO_VERSION,
        CONF_DETECTED_VERSION: version,
        CONF_NAME: plug.name or DEFAULT_NAME,
        CONF_TRANSPORT: TRANSPORT_DIRECT,
    }
    if plug.profile is not None:
        data[CONF_PROFILE] = plug.profile.to_wire()
        data[CONF_DP_IDS] = sorted(plug.profile.dp_ids(), key=dp_sort_key)
    return data

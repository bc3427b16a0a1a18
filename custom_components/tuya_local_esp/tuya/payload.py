"""JSON payloads a client sends, per command and protocol version (spec §2.8).

JSON is serialised without spaces: devices are known to ignore payloads containing them
(tinytuya ``generate_payload``: "if spaces are not removed device does not respond!").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .const import Command


def dumps(obj: Any) -> bytes:
    """Compact JSON encoding used on the wire."""
    return json.dumps(obj, separators=(",", ":")).encode()


def _now() -> str:
    return str(int(time.time()))


def status_request(version: str, device_id: str) -> tuple[Command, bytes]:
    """Command and payload of a status query: DP_QUERY (<= 3.3) or DP_QUERY_NEW ``{}`` (3.4+)."""
    if float(version) >= 3.4:
        return Command.DP_QUERY_NEW, b"{}"
    return Command.DP_QUERY, dumps(
        {"gwId": device_id, "devId": device_id, "uid": device_id, "t": _now()}
    )


def device22_status_request(device_id: str, dp_ids: Iterable[str]) -> tuple[Command, bytes]:
    """Status query of "device22" plugs: CONTROL_NEW with null values for known DPs (spec §2.10)."""
    return Command.CONTROL_NEW, dumps(
        {"devId": device_id, "uid": device_id, "t": _now(), "dps": dict.fromkeys(dp_ids)}
    )


def control_request(version: str, device_id: str, dps: Mapping[str, Any]) -> tuple[Command, bytes]:
    """Command and payload that set ``dps``.

    CONTROL (<= 3.3) or CONTROL_NEW with the ``protocol: 5`` wrapper (3.4+).
    """
    if float(version) >= 3.4:
        return Command.CONTROL_NEW, dumps(
            {"protocol": 5, "t": int(time.time()), "data": {"dps": dict(dps)}}
        )
    return Command.CONTROL, dumps(
        {"devId": device_id, "uid": device_id, "t": _now(), "dps": dict(dps)}
    )


def heartbeat_request(device_id: str) -> tuple[Command, bytes]:
    """HEART_BEAT payload ``{"gwId","devId"}``."""
    return Command.HEART_BEAT, dumps({"gwId": device_id, "devId": device_id})


def updatedps_request(dp_ids: Iterable[int]) -> tuple[Command, bytes]:
    """UPDATEDPS (0x12) asking the device to re-report ``dp_ids`` (spec §2.9)."""
    return Command.UPDATEDPS, dumps({"dpId": [int(d) for d in dp_ids]})


def extract_dps(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Return the DPS map of a device message (``dps`` or the 3.4+ ``data.dps``), or ``{}``."""
    dps = obj.get("dps")
    if dps is None:
        data = obj.get("data")
        if isinstance(data, Mapping):
            dps = data.get("dps")
    return {str(k): v for k, v in dps.items()} if isinstance(dps, Mapping) else {}

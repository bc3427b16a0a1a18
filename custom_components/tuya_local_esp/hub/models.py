"""Data model of the hub channel: what the hub reports, and its parsing (hub-protocol §7).

No I/O: plain dataclasses (:class:`PlugState`, :class:`Inventory`, :class:`StateUpdate`,
:class:`HubHealth`) and functions turning hub messages into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import HubProtocolError
from .protocol import JsonObject


@dataclass(frozen=True, slots=True)
class PlugState:
    """One plug as the hub reports it.

    ``dps`` maps DP ids (strings) to values; ``updated`` is the hub's Unix time (s) of the
    last DP update, or ``None`` before the first one. The local key is never reported.
    """

    device_id: str
    name: str
    version: str
    host: str
    port: int
    online: bool
    dps: dict[str, Any] = field(default_factory=dict)
    updated: int | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hub's hello/inventory: identity, firmware and plugs keyed by device id.

    ``time`` is the hub clock (Unix seconds); ``max_plugs`` the plug limit of its socket budget.
    """

    hub_id: str
    firmware: str
    protocol: int
    time: int
    max_plugs: int
    plugs: dict[str, PlugState]


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A state push: the DPs that changed (possibly none, for an online/offline change).

    ``timestamp`` is the hub's Unix time in seconds.
    """

    device_id: str
    online: bool
    dps: dict[str, Any]
    timestamp: int


@dataclass(frozen=True, slots=True)
class HubHealth:
    """Hub health snapshot.

    Heap figures in bytes after a garbage collection, uptime in seconds, Wi-Fi RSSI in dBm
    (``None`` when unknown), ``time`` the hub clock in Unix seconds.
    """

    heap_free: int
    heap_alloc: int
    uptime_s: int
    rssi: int | None
    plugs: int
    plugs_online: int
    clients: int
    time: int
    time_synced: bool


def parse_plug(data: JsonObject) -> PlugState:
    """A ``plug`` message (§7.1) as a :class:`PlugState`; raises KeyError/TypeError/ValueError."""
    return PlugState(
        device_id=str(data["id"]),
        name=str(data.get("name", data["id"])),
        version=str(data.get("ver", "")),
        host=str(data.get("host", "")),
        port=int(data.get("port", 6668)),
        online=bool(data.get("online", False)),
        dps=dict(data.get("dps") or {}),
        updated=data.get("ts"),
    )


def parse_inventory(data: JsonObject, plugs: dict[str, PlugState]) -> Inventory:
    """Build an inventory from hub fields and the "plug" messages that preceded them (§7.1)."""
    try:
        count = int(data.get("plugs", len(plugs)))
        inventory = Inventory(
            hub_id=str(data["hub_id"]),
            firmware=str(data.get("fw", "")),
            protocol=int(data.get("proto", 1)),
            time=int(data.get("time", 0)),
            max_plugs=int(data.get("max_plugs", 0)),
            plugs=dict(plugs),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise HubProtocolError(f"malformed inventory: {err!r}") from err
    if count != len(plugs):
        raise HubProtocolError(f"inventory announced {count} plugs, received {len(plugs)}")
    return inventory


def apply_state(p: PlugState, msg: JsonObject) -> PlugState:
    """A plug after a state push (changed DPs merged, online flag and timestamp updated)."""
    dps = dict(msg.get("dps") or {})
    return PlugState(
        device_id=p.device_id,
        name=p.name,
        version=p.version,
        host=p.host,
        port=p.port,
        online=bool(msg.get("online", False)),
        dps={**p.dps, **dps},
        updated=int(msg.get("ts") or 0) if dps else p.updated,
    )


def offline(p: PlugState) -> PlugState:
    """The same plug marked offline (the hub link is down)."""
    return PlugState(p.device_id, p.name, p.version, p.host, p.port, False, p.dps, p.updated)


def replace_plugs(inv: Inventory, plugs: dict[str, PlugState]) -> Inventory:
    """``inv`` with another plug map."""
    return Inventory(inv.hub_id, inv.firmware, inv.protocol, inv.time, inv.max_plugs, plugs)

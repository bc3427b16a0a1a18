"""Data model of the hub channel: what the hub reports, and its strict parsing (hub-protocol §7).

No I/O. One job: turn a decrypted hub message (a JSON object) into typed values, or raise
:class:`~.errors.HubProtocolError` when any member has the wrong type. The parsers never raise
anything else (``KeyError``, ``TypeError``, ``ValueError``, ``AttributeError`` …): a hub that
sends a malformed message is a protocol error, and the caller closes the connection
(``docs/hub-protocol.md`` §5: "on any failure … it MUST close the connection").

Type rules (§7): ``t`` is a string; ``rid``, times, counts and ports are integers (a JSON
boolean is not an integer here); device ids are non-empty strings; ``dps`` is an object whose
values are JSON scalars (booleans, numbers, strings, null). Unknown members are ignored (§10),
unknown message types are returned as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from .errors import HubProtocolError
from .protocol import JsonObject

MAX_RID: Final = 0x3FFFFFFF
"""Largest request id (2^30 - 1, §7)."""

_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class PlugState:
    """One plug as the hub reports it (a ``plug`` message, §7.1).

    ``dps`` maps DP ids (strings) to values; ``updated`` is the hub's Unix time (s) of the
    last DP update, or ``None`` before the first one. ``refresh`` holds the DP ids the hub
    re-requests with UPDATEDPS (spec §2.9; the ``refresh`` of the plug's profile given to
    ``add``, by default 18, 19, 20), or ``None`` when the firmware does not report it (§7.1).
    ``fault`` says why the hub cannot use the plug (§7.1): ``None`` when fine (or from a
    firmware that does not report it), ``"key"`` (its frames fail to decrypt or authenticate:
    wrong local key), ``"busy"`` (another client holds the plug's connection),
    ``"unreachable"`` (TCP connect fails or times out); any other string is a cause a newer
    firmware knows. The local key is never reported.
    """

    device_id: str
    name: str
    version: str
    host: str
    port: int
    online: bool
    dps: dict[str, Any] = field(default_factory=dict)
    updated: int | None = None
    refresh: tuple[int, ...] | None = None
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hub's hello/inventory: identity, firmware and plugs keyed by device id (§7.1).

    ``time`` is the hub clock (Unix seconds); ``max_plugs`` the plug limit of its socket budget;
    ``time_source`` who set the hub clock (``"ha"``, ``"ntp"``, or ``None`` while unset or when
    the firmware does not report it).
    """

    hub_id: str
    firmware: str
    protocol: int
    time: int
    max_plugs: int
    plugs: dict[str, PlugState]
    time_source: str | None = None


@dataclass(frozen=True, slots=True)
class HubInfo:
    """The members of a ``hello`` message or of an ``inventory`` result's ``data`` (§7.1).

    ``plugs`` is the number of ``plug`` messages the hub sent before it (``None`` when the
    member is absent: then the plugs received are taken as the whole inventory).
    """

    hub_id: str
    firmware: str
    protocol: int
    time: int
    max_plugs: int
    plugs: int | None
    time_source: str | None


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A state push: the DPs that changed (possibly none, for an online/offline change).

    ``timestamp`` is the hub's Unix time in seconds (0 when the hub sent none); ``fault`` the
    plug's fault now, as in :class:`PlugState` (``None``: fine, or not reported).
    """

    device_id: str
    online: bool
    dps: dict[str, Any]
    timestamp: int
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class Removed:
    """A ``removed`` push: the plug ``device_id`` was removed from the hub (§7.2)."""

    device_id: str


@dataclass(frozen=True, slots=True)
class Result:
    """A ``result`` message (§7): the answer to the request ``rid``.

    ``data`` is the (not yet checked) payload of a successful result; ``err``/``msg`` the
    error code (§6) and text of a failed one.
    """

    rid: int
    ok: bool
    data: Any = None
    err: str = ""
    msg: str = ""


@dataclass(frozen=True, slots=True)
class HubNotice:
    """An ``error`` message (§7.2): a problem not tied to a request (``busy`` before a close)."""

    err: str
    msg: str


@dataclass(frozen=True, slots=True)
class HubTime:
    """Answer to a ``time`` request: the hub clock after applying ours, and who set it.

    ``time`` in Unix seconds (UTC); ``source`` is ``"ha"`` or ``"ntp"`` (HUB-ADDITIONS 1).
    """

    time: int
    source: str


@dataclass(frozen=True, slots=True)
class HubHealth:
    """Hub health snapshot (§7.3 ``health``).

    Heap figures in bytes after a garbage collection, uptime in seconds, Wi-Fi RSSI in dBm
    (``None`` when unknown), ``time`` the hub clock in Unix seconds. The optional members are
    ``None`` when the firmware does not report them: ``time_source`` (``"ha"``/``"ntp"``),
    ``reset_cause`` (``"power_on"``, ``"watchdog"``, ``"soft"``, ``"deepsleep"``, ``"hard"``,
    ``"brownout"``), ``idf_heap_free``/``idf_heap_largest`` (ESP-IDF heap, bytes),
    ``mp_heap_free``/``mp_heap_largest`` (MicroPython heap, bytes). ``trial`` is true while
    the running firmware is on trial after an update (§7.3.1; false when not reported).
    ``extra`` keeps any other member untouched, for diagnostics.
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
    time_source: str | None = None
    reset_cause: str | None = None
    idf_heap_free: int | None = None
    idf_heap_largest: int | None = None
    mp_heap_free: int | None = None
    mp_heap_largest: int | None = None
    trial: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


type HubMessage = PlugState | StateUpdate | Removed | Result | HubNotice | HubInfo | None


# --- field readers: each raises HubProtocolError, nothing else ------------------------------
def _fail(where: str, key: str, value: object) -> HubProtocolError:
    # the value's type only: a value could be long, and messages may carry a local key (add)
    if value is _ABSENT:
        return HubProtocolError(f"malformed {where}: {key!r} missing")
    return HubProtocolError(f"malformed {where}: {key!r} is {type(value).__name__}")


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise HubProtocolError(f"malformed {where}: not a JSON object")
    return value


def _str(obj: JsonObject, key: str, where: str, default: object = _ABSENT) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise _fail(where, key, value)
    return value


def _opt_str(obj: JsonObject, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(where, key, value)
    return value


def _id(obj: JsonObject, where: str) -> str:
    value = _str(obj, "id", where)
    if not value:
        raise HubProtocolError(f"malformed {where}: empty 'id'")
    return value


def _int(obj: JsonObject, key: str, where: str, default: object = _ABSENT) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, key, value)
    return value


def _opt_int(obj: JsonObject, key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, key, value)
    return value


def _bool(obj: JsonObject, key: str, where: str, default: object = _ABSENT) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise _fail(where, key, value)
    return value


def _dps(obj: JsonObject, where: str) -> dict[str, Any]:
    """The ``dps`` member: an object of JSON scalars; absent or null means none."""
    value = obj.get("dps")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, "dps", value)
    for dp, dp_value in value.items():
        if not isinstance(dp, str):
            raise HubProtocolError(f"malformed {where}: DP id is {type(dp).__name__}")
        if dp_value is not None and not isinstance(dp_value, bool | int | float | str):
            raise HubProtocolError(f"malformed {where}: DP {dp!r} is {type(dp_value).__name__}")
    return dict(value)


def _dp_ids(obj: JsonObject, key: str, where: str) -> tuple[int, ...] | None:
    """An optional list of DP ids (integers 1…255, §7.1 ``refresh``); absent or null: None."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(where, key, value)
    for dp in value:
        if not isinstance(dp, int) or isinstance(dp, bool) or not 0 < dp < 256:
            raise HubProtocolError(f"malformed {where}: {key!r} holds {dp!r}, not a DP id")
    return tuple(value)


# --- messages -------------------------------------------------------------------------------
def parse_plug(msg: JsonObject) -> PlugState:
    """A ``plug`` message (§7.1) as a :class:`PlugState`.

    Raises :class:`HubProtocolError` when a member has the wrong type (``fault`` must be a
    string or null), ``port`` is not in 0…65535 or ``refresh`` holds something else than DP
    ids 1…255.
    """
    where = "plug message"
    device_id = _id(msg, where)
    port = _int(msg, "port", where, 6668)
    if not 0 <= port <= 0xFFFF:
        raise HubProtocolError(f"malformed {where}: port {port} out of range")
    return PlugState(
        device_id=device_id,
        name=_str(msg, "name", where, device_id),
        version=_str(msg, "ver", where, ""),
        host=_str(msg, "host", where, ""),
        port=port,
        online=_bool(msg, "online", where, False),
        dps=_dps(msg, where),
        updated=_opt_int(msg, "ts", where),
        refresh=_dp_ids(msg, "refresh", where),
        fault=_opt_str(msg, "fault", where),
    )


def parse_state(msg: JsonObject) -> StateUpdate:
    """A ``state`` push (§7.2) as a :class:`StateUpdate`; raises :class:`HubProtocolError`."""
    where = "state push"
    return StateUpdate(
        device_id=_id(msg, where),
        online=_bool(msg, "online", where, False),
        dps=_dps(msg, where),
        timestamp=_opt_int(msg, "ts", where) or 0,
        fault=_opt_str(msg, "fault", where),
    )


def parse_hub_info(data: object, where: str = "hello") -> HubInfo:
    """The members of ``hello`` or of an ``inventory`` result (§7.1).

    Raises :class:`HubProtocolError` when ``data`` is not an object, ``hub_id`` is missing
    or empty, or a member has the wrong type.
    """
    obj = _object(data, where)
    hub_id = _str(obj, "hub_id", where)
    if not hub_id:
        raise HubProtocolError(f"malformed {where}: empty 'hub_id'")
    plugs = _opt_int(obj, "plugs", where)
    return HubInfo(
        hub_id=hub_id,
        firmware=_str(obj, "fw", where, ""),
        protocol=_int(obj, "proto", where, 1),
        time=_int(obj, "time", where, 0),
        max_plugs=_int(obj, "max_plugs", where, 0),
        plugs=plugs,
        time_source=_opt_str(obj, "time_source", where),
    )


def build_inventory(info: HubInfo, plugs: dict[str, PlugState]) -> Inventory:
    """The inventory from the closing message and the ``plug`` messages before it (§7.1).

    Raises :class:`HubProtocolError` when the announced plug count does not match (§7.1: a
    client MUST treat a mismatch as a protocol error).
    """
    if info.plugs is not None and info.plugs != len(plugs):
        raise HubProtocolError(f"inventory announced {info.plugs} plugs, received {len(plugs)}")
    return Inventory(
        hub_id=info.hub_id,
        firmware=info.firmware,
        protocol=info.protocol,
        time=info.time,
        max_plugs=info.max_plugs,
        plugs=dict(plugs),
        time_source=info.time_source,
    )


def parse_message(msg: object) -> HubMessage:
    """Check one decrypted hub message and return it typed; ``None`` for an unknown type.

    ``plug`` -> :class:`PlugState`, ``state`` -> :class:`StateUpdate`, ``removed`` ->
    :class:`Removed`, ``result`` -> :class:`Result` (its ``data`` is checked by the request
    that waits for it), ``error`` -> :class:`HubNotice`, ``hello`` -> :class:`HubInfo`.

    Raises :class:`HubProtocolError` (and nothing else) for a message that is not an object,
    has no string ``t``, or has a member of the wrong type.
    """
    obj = _object(msg, "message")
    kind = _str(obj, "t", "message")
    if kind == "state":
        return parse_state(obj)
    if kind == "result":
        rid = _int(obj, "rid", "result")
        if not 1 <= rid <= MAX_RID:
            raise HubProtocolError(f"malformed result: rid {rid} out of range")
        if _bool(obj, "ok", "result"):
            return Result(rid, True, obj.get("data"))
        return Result(rid, False, None, _str(obj, "err", "result"), _str(obj, "msg", "result", ""))
    if kind == "plug":
        return parse_plug(obj)
    if kind == "removed":
        return Removed(_id(obj, "removed push"))
    if kind == "error":
        return HubNotice(_str(obj, "err", "error message"), _str(obj, "msg", "error message", ""))
    if kind == "hello":
        return parse_hub_info(obj)
    return None


# --- result data of the requests (§7.3) -------------------------------------------------------
def parse_reply_object(data: object) -> JsonObject:
    """The ``data`` of a successful result that the caller does not use further (ping, add…)."""
    return _object(data, "result data")


def parse_set_result(data: object) -> dict[str, Any]:
    """``set`` result data: the DPs the plug confirmed. Raises :class:`HubProtocolError`."""
    return _dps(_object(data, "set result"), "set result")


def parse_time_result(data: object) -> HubTime:
    """``time`` result data as :class:`HubTime`. Raises :class:`HubProtocolError`."""
    obj = _object(data, "time result")
    return HubTime(_int(obj, "time", "time result"), _str(obj, "source", "time result"))


_HEALTH_KEYS: Final = frozenset(
    {
        "heap_free",
        "heap_alloc",
        "uptime_s",
        "rssi",
        "plugs",
        "plugs_online",
        "clients",
        "time",
        "time_synced",
        "time_source",
        "reset_cause",
        "idf_heap_free",
        "idf_heap_largest",
        "mp_heap_free",
        "mp_heap_largest",
        "trial",
    }
)


def parse_health(data: object) -> HubHealth:
    """``health`` result data as :class:`HubHealth` (unknown members go to ``extra``).

    Raises :class:`HubProtocolError` when a required member is missing or any member has the
    wrong type.
    """
    w = "health reply"
    obj = _object(data, w)
    return HubHealth(
        heap_free=_int(obj, "heap_free", w),
        heap_alloc=_int(obj, "heap_alloc", w),
        uptime_s=_int(obj, "uptime_s", w),
        rssi=_opt_int(obj, "rssi", w),
        plugs=_int(obj, "plugs", w),
        plugs_online=_int(obj, "plugs_online", w),
        clients=_int(obj, "clients", w),
        time=_int(obj, "time", w),
        time_synced=_bool(obj, "time_synced", w),
        time_source=_opt_str(obj, "time_source", w),
        reset_cause=_opt_str(obj, "reset_cause", w),
        idf_heap_free=_opt_int(obj, "idf_heap_free", w),
        idf_heap_largest=_opt_int(obj, "idf_heap_largest", w),
        mp_heap_free=_opt_int(obj, "mp_heap_free", w),
        mp_heap_largest=_opt_int(obj, "mp_heap_largest", w),
        trial=_bool(obj, "trial", w, False),
        extra={k: v for k, v in obj.items() if k not in _HEALTH_KEYS},
    )


# --- inventory bookkeeping --------------------------------------------------------------------
def apply_state(plug: PlugState, update: StateUpdate) -> PlugState:
    """``plug`` after a state push: changed DPs merged; online flag, fault, timestamp updated."""
    return replace(
        plug,
        online=update.online,
        dps={**plug.dps, **update.dps},
        updated=update.timestamp if update.dps else plug.updated,
        fault=update.fault,
    )


def offline(plug: PlugState) -> PlugState:
    """The same plug marked offline (the hub link is down; its last fault is kept)."""
    return replace(plug, online=False)


def replace_plugs(inv: Inventory, plugs: dict[str, PlugState]) -> Inventory:
    """``inv`` with another plug map."""
    return Inventory(
        inv.hub_id, inv.firmware, inv.protocol, inv.time, inv.max_plugs, plugs, inv.time_source
    )

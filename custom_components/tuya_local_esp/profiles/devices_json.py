"""Import of tinytuya's ``devices.json`` (no Home Assistant, no I/O): the plugs it lists.

Format (tinytuya 1.20.0, ``wizard.py`` writes ``json.dumps(tuyadevices)``; ``Cloud.filter_devices``
builds each entry, ``core/const.py`` ``DEVICEFILE_SAVE_VALUES``; ``Cloud._build_mapping`` builds
``mapping``): a JSON list of objects with

* ``name`` (str), ``id`` (device id), ``key`` (local key, ``""`` when the cloud gave none),
  ``mac`` (str), and when known ``ip`` (str, may be ``""``), ``version`` (protocol version: a
  string such as ``"3.3"``, ``""`` when not found by the scan, a number in older files);
* copied from the cloud when present: ``category``, ``product_name``, ``product_id``,
  ``biz_type``, ``model``, ``sub`` (true for a gateway's child), ``icon``, ``last_ip``, ``uuid``,
  ``node_id``, ``sn``, ``parent`` (set by the wizard for children);
* ``mapping``: missing or null when DP mappings were not downloaded, else an object keyed by the
  DP id as a string (or by the *code* when the cloud gave no ``dp_id``), each
  ``{"code": "switch_1", "type": "Boolean", "values": {...}}``; ``values`` is the decoded JSON
  object, except for ``String`` types and values the wizard could not decode, which stay a JSON
  string (Integer values: ``unit``, ``min``, ``max``, ``scale``, ``step``; Enum: ``range``;
  Bitmap: ``label``).

A *plug* is an entry whose mapping has a switch code (``switch``, ``switch_N``, ``switch_usbN``)
or that has no usable mapping (missing, null, or only code-keyed items: its profile is detected
once connected). An empty mapping ``{}`` is what tinytuya stores for a device without DPs (a
gateway): not a plug. The profile built from
the mapping uses the standard divisors whatever ``values.scale`` says: the cloud's declared scale
was wrong in 8 of 31 HA core ``cz`` fixtures with a live reading (the raw voltage was V x 10 in
all 31), so a declared scale that differs from the standard only adds a note, and the power
divisor is re-checked from live data (``detect.recheck_power_divisor``). The countdown DPs'
``values.unit`` is read: minutes (``min``, ``m``, ``minute(s)``, ``分``/``分钟``; the legacy
timer, tuya-local ``smartplugv1.yaml``: 0..1440 min) give ``countdown_scale`` 60, seconds or no
unit give 1, any other unit a note and seconds. All countdowns of a plug share one unit
(``Profile``); when they disagree the first outlet's wins, with a note.

Malformed or foreign input raises :class:`DevicesJsonError` with a ``code`` for a translated
error (``too_large``, ``not_json``, ``not_a_list``, ``bad_entry``, ``no_plugs``) and never gives
partial results. Local keys never appear in a repr, str or exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Final

from .model import (
    CURRENT_DIVISOR,
    CUSTOM,
    ENERGY_DIVISOR,
    INDICATOR_VALUES,
    INWALL,
    LEGACY,
    LEGACY_COUNTDOWN_SCALE,
    POWER_DIVISOR,
    POWER_ON_VALUE_SETS,
    STANDARD,
    SWITCH_ONLY,
    VENDOR,
    VOLTAGE_DIVISOR,
    Indicator,
    Meter,
    PowerOnBehaviour,
    Profile,
    build_outlets,
    dp_sort_key,
    is_dp_id,
)

#: Largest input accepted (a devices.json of several hundred devices is well under 1 MiB).
MAX_BYTES: Final = 4 * 1024 * 1024
#: Protocol versions a plug can have (spec §2).
VERSIONS: Final = ("3.1", "3.2", "3.3", "3.4", "3.5")

#: Error codes of :class:`DevicesJsonError`.
TOO_LARGE: Final = "too_large"
NOT_JSON: Final = "not_json"
NOT_A_LIST: Final = "not_a_list"
BAD_ENTRY: Final = "bad_entry"
NO_PLUGS: Final = "no_plugs"

#: Reasons of :class:`SkippedEntry`.
SKIP_SUB: Final = "sub_device"
SKIP_NOT_A_PLUG: Final = "not_a_plug"
SKIP_NO_KEY: Final = "no_local_key"
SKIP_DUPLICATE: Final = "duplicate"

_SWITCH_RE: Final = re.compile(r"switch(?:_([1-9]))?")
_USB_RE: Final = re.compile(r"switch_usb[1-9]?")
_COUNTDOWN_RE: Final = re.compile(r"countdown(?:_([1-9]))?")
_USB_COUNTDOWN_RE: Final = re.compile(r"countdown_usb[1-9]?")
_DEVICE_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: ``values.unit`` of a countdown DP -> seconds per unit (lower-cased, stripped).
_COUNTDOWN_UNITS: Final = {
    "": 1,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "秒": 1,
    "m": LEGACY_COUNTDOWN_SCALE,
    "min": LEGACY_COUNTDOWN_SCALE,
    "mins": LEGACY_COUNTDOWN_SCALE,
    "minute": LEGACY_COUNTDOWN_SCALE,
    "minutes": LEGACY_COUNTDOWN_SCALE,
    "分": LEGACY_COUNTDOWN_SCALE,
    "分钟": LEGACY_COUNTDOWN_SCALE,
}

#: Meter DP ids of each layout (model.py cites the sources): current, power, voltage.
_LAYOUT_METERS: Final = {
    ("18", "19", "20"): STANDARD,
    ("21", "22", "23"): INWALL,
    ("102", "103", "104"): VENDOR,
    ("4", "5", "6"): LEGACY,
}
#: The Tuya standard's declared scale of each meter code (cz category: mA; W x 10; V x 10; Wh).
_STANDARD_SCALES: Final = {"cur_current": 0, "cur_power": 1, "cur_voltage": 1, "add_ele": 3}


class DevicesJsonError(ValueError):
    """The input is not a usable devices.json.

    ``code`` is one of ``too_large``, ``not_json``, ``not_a_list``, ``bad_entry``, ``no_plugs``;
    ``index`` the 0-based list index of a bad entry (else None). Messages name fields, never
    values, so they hold no local key.
    """

    def __init__(self, code: str, detail: str, index: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.index = index


@dataclass(frozen=True, slots=True)
class ImportedPlug:
    """One plug from devices.json.

    ``version`` is one of ``VERSIONS`` or None (unknown: probe all); ``host`` an IPv4 address or
    None; ``profile`` None when the entry had no usable mapping (detect once connected).
    ``local_key`` is left out of the repr.
    """

    name: str
    device_id: str
    local_key: str = field(repr=False)
    host: str | None
    version: str | None
    product_name: str | None
    profile: Profile | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry that is not imported: its list index, device id, name and reason code."""

    index: int
    device_id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class DevicesJsonImport:
    """The plugs of a devices.json (file order) and the entries left out."""

    plugs: tuple[ImportedPlug, ...]
    skipped: tuple[SkippedEntry, ...]


def parse_devices_json(data: str | bytes) -> DevicesJsonImport:
    """Parse pasted text or file bytes (UTF-8, a BOM is allowed) of a tinytuya devices.json.

    Raises :class:`DevicesJsonError`; never returns a partial result.
    """
    if len(data) > MAX_BYTES:  # characters of a str: never more than its UTF-8 bytes
        raise DevicesJsonError(TOO_LARGE, f"more than {MAX_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DevicesJsonError(NOT_JSON, "not UTF-8 text") from None
    try:
        document = json.loads(data.removeprefix("\ufeff"))
    except ValueError, RecursionError:
        # the decoder's exception keeps the whole document (with its keys): drop it
        raise DevicesJsonError(NOT_JSON, "not valid JSON") from None
    if not isinstance(document, list):
        raise DevicesJsonError(NOT_A_LIST, "the top level is not a list")
    plugs: list[ImportedPlug] = []
    skipped: list[SkippedEntry] = []
    ids: set[str] = set()
    for index, entry in enumerate(document):
        plug, skip = _entry(index, entry)
        if plug is not None and plug.device_id in ids:
            skip, plug = SkippedEntry(index, plug.device_id, plug.name, SKIP_DUPLICATE), None
        if plug is not None:
            ids.add(plug.device_id)
            plugs.append(plug)
        if skip is not None:
            skipped.append(skip)
    if not plugs:
        raise DevicesJsonError(NO_PLUGS, f"no plug among {len(document)} entries")
    return DevicesJsonImport(tuple(plugs), tuple(skipped))


def _str_field(entry: Mapping[str, Any], key: str, index: int) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DevicesJsonError(BAD_ENTRY, f"entry {index}: {key!r} is not a string", index)
    return value.strip()


def _version(value: object, notes: list[str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        notes.append("version ignored: not a string or number")
        return None
    # a float such as 3.3 (older files); an int (even a huge one) is never a version
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    if text.strip() in VERSIONS:
        return text.strip()
    notes.append("unknown protocol version: probing all")
    return None


def _host(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(IPv4Address(value))
    except ValueError:
        return None


def _entry(index: int, entry: object) -> tuple[ImportedPlug | None, SkippedEntry | None]:
    if not isinstance(entry, dict):
        raise DevicesJsonError(BAD_ENTRY, f"entry {index} is not an object", index)
    device_id = _str_field(entry, "id", index)
    if not device_id or not _DEVICE_ID_RE.fullmatch(device_id):
        raise DevicesJsonError(BAD_ENTRY, f"entry {index}: 'id' is not a device id", index)
    key = _str_field(entry, "key", index)
    name = _str_field(entry, "name", index) or ""
    product_name = _str_field(entry, "product_name", index) or None
    name = name or product_name or device_id
    if entry.get("sub") is True:
        return None, SkippedEntry(index, device_id, name, SKIP_SUB)
    raw_mapping = entry.get("mapping")
    mapping = _mapping(raw_mapping, index)
    notes: list[str] = []
    profile: Profile | None = None
    if raw_mapping == {}:
        # tinytuya stores {} for a device the cloud says has no DPs (Cloud.getmapping)
        return None, SkippedEntry(index, device_id, name, SKIP_NOT_A_PLUG)
    if mapping:
        if not _has_switch(mapping):
            return None, SkippedEntry(index, device_id, name, SKIP_NOT_A_PLUG)
        # never raises ProfileError: each DP has one code, so one role
        profile = _profile_from_mapping(mapping, notes)
    else:
        notes.append("no DP mapping: the profile is detected once connected")
    if not key:
        return None, SkippedEntry(index, device_id, name, SKIP_NO_KEY)
    ip = _str_field(entry, "ip", index)
    return ImportedPlug(
        name=name,
        device_id=device_id,
        local_key=key,
        host=_host(ip),
        version=_version(entry.get("version"), notes),
        product_name=product_name,
        profile=profile,
        notes=tuple(notes),
    ), None


@dataclass(frozen=True, slots=True)
class _Dp:
    code: str
    type: str
    values: Mapping[str, Any]


def _mapping(value: object, index: int) -> dict[str, _Dp]:
    """DP-id-keyed entries of a mapping; code-keyed ones (no dp_id from the cloud) are ignored."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DevicesJsonError(BAD_ENTRY, f"entry {index}: 'mapping' is not an object", index)
    result: dict[str, _Dp] = {}
    for dp, item in value.items():
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise DevicesJsonError(BAD_ENTRY, f"entry {index}: a mapping item has no code", index)
        if not is_dp_id(dp):
            continue
        dp_type = item.get("type")
        values = item.get("values")
        if isinstance(values, str):
            try:
                values = json.loads(values)
            except ValueError, RecursionError:
                values = None
        result[dp] = _Dp(
            item["code"],
            dp_type.lower() if isinstance(dp_type, str) else "",
            values if isinstance(values, dict) else {},
        )
    return result


def _has_switch(mapping: Mapping[str, _Dp]) -> bool:
    return any(
        d.type == "boolean" and (_SWITCH_RE.fullmatch(d.code) or _USB_RE.fullmatch(d.code))
        for d in mapping.values()
    )


def _scale(dp: _Dp) -> int | None:
    scale = dp.values.get("scale")
    return scale if isinstance(scale, int) and not isinstance(scale, bool) else None


def _countdown_scale(dp: _Dp, notes: list[str]) -> int:
    """Seconds per unit of a countdown DP from its declared ``unit`` (module docstring)."""
    unit = dp.values.get("unit")
    if unit is None:
        return 1
    text = unit.strip().lower() if isinstance(unit, str) else None
    scale = _COUNTDOWN_UNITS.get(text) if text is not None else None
    if scale is None:
        notes.append(f"{dp.code}: unknown unit, counted in seconds")
        return 1
    return scale


def _enum_range(dp: _Dp) -> list[str]:
    values = dp.values.get("range")
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str)]


def _profile_from_mapping(mapping: Mapping[str, _Dp], notes: list[str]) -> Profile:
    """The profile a devices.json mapping describes (only DPs it lists; standard divisors).

    ``notes`` receives remarks on declared scales that differ from the standard ones.
    """
    by_code: dict[str, str] = {}
    for dp in sorted(mapping, key=dp_sort_key):
        by_code.setdefault(mapping[dp].code, dp)

    switches: dict[int, str] = {}
    usb: str | None = None
    countdowns: dict[int, str] = {}
    usb_countdown: str | None = None
    for dp in sorted(mapping, key=dp_sort_key):
        item = mapping[dp]
        if item.type == "boolean" and (m := _SWITCH_RE.fullmatch(item.code)):
            switches.setdefault(int(m.group(1) or 1), dp)
        elif item.type == "boolean" and _USB_RE.fullmatch(item.code):
            usb = usb or dp
        elif item.type == "integer" and (m := _COUNTDOWN_RE.fullmatch(item.code)):
            countdowns.setdefault(int(m.group(1) or 1), dp)
        elif item.type == "integer" and _USB_COUNTDOWN_RE.fullmatch(item.code):
            usb_countdown = usb_countdown or dp
    switch_dps = [switches[n] for n in sorted(switches)]
    cd = {switches[n]: dp for n, dp in countdowns.items() if n in switches}
    if usb is not None and usb_countdown is not None:
        cd[usb] = usb_countdown
    # one countdown unit per plug (Profile): the first outlet's (in outlet order) wins
    scales = [
        _countdown_scale(mapping[cd[dp]], notes)
        for dp in [*switch_dps, *([usb] if usb else [])]
        if dp in cd
    ]
    countdown_scale = scales[0] if scales else 1
    if len(set(scales)) > 1:
        notes.append("countdowns in different units: all counted as the first outlet's")

    def meter(code: str, divisor: int) -> Meter | None:
        dp = by_code.get(code)
        if dp is None or mapping[dp].type != "integer":
            return None
        declared = _scale(mapping[dp])
        if declared is not None and declared != _STANDARD_SCALES[code]:
            notes.append(f"{code}: declared scale {declared} ignored, using ÷{divisor}")
        return Meter(dp, divisor)

    current = meter("cur_current", CURRENT_DIVISOR)
    power = meter("cur_power", POWER_DIVISOR)
    voltage = meter("cur_voltage", VOLTAGE_DIVISOR)
    energy = meter("add_ele", ENERGY_DIVISOR)

    power_on = None
    if (po_dp := by_code.get("relay_status")) is not None:
        offered = set(_enum_range(mapping[po_dp]))
        power_on = next(
            (PowerOnBehaviour(po_dp, s) for s in POWER_ON_VALUE_SETS if offered == set(s)), None
        )
    indicator = None
    if (led_dp := by_code.get("light_mode")) is not None:
        options = tuple(v for v in INDICATOR_VALUES if v in _enum_range(mapping[led_dp]))
        indicator = Indicator(led_dp, options) if len(options) >= 2 else None

    def flag(code: str, dp_type: str) -> str | None:
        dp = by_code.get(code)
        return dp if dp is not None and mapping[dp].type == dp_type else None

    key = (
        current.dp if current else "",
        power.dp if power else "",
        voltage.dp if voltage else "",
    )
    name = _LAYOUT_METERS.get(key, CUSTOM if any(key) or energy else SWITCH_ONLY)
    return Profile(
        name=name,
        outlets=build_outlets(switch_dps, usb, cd, countdown_scale),
        current=current,
        power=power,
        voltage=voltage,
        energy=energy,
        power_on=power_on,
        indicator=indicator,
        child_lock=flag("child_lock", "boolean"),
        overcharge=flag("overcharge_switch", "boolean"),
        fault=flag("fault", "bitmap"),
    )

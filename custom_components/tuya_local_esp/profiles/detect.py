"""Detect a plug's profile from the DPS it reports (no Home Assistant, no I/O).

When a plug is added the glue queries its status and asks it to re-report the candidate metering
DPs (UPDATEDPS 0x12 with :data:`CANDIDATE_METERING_DPS`, spec §2.9 and §5: many plugs report
their meters only when asked), then calls :func:`detect_profile` with both answers. While the plug
runs, the glue calls :func:`recheck_power_divisor` with its latest DPS; a returned profile
replaces the stored one.

Rules (the layouts and their sources are in ``model.py``):

* Layout: standard when 18, 19 and 20 are all integers; else the first of standard (17-20),
  inwall (20-23), vendor (101-104), legacy (3-6) whose power and voltage DPs are integers,
  preferring one whose voltage is *verified*: the voltage
  member of the power/voltage pair is the one that lands in 85-265 V at ÷10 (raw voltage was ×10
  in all 31 HA core ``cz`` fixtures with a reading; the cloud's declared scale was wrong in 8), so
  a swapped pair is caught. When both land in range, the assignment whose power factor is
  plausible wins (with ≥ 0.1 A), else the layout's order.
* Outlets: bool DPs 1..6 ("Outlet 1..n"), USB on bool DP 7 (on the legacy layout bool DP 7 is the
  overcurrent alarm, tuya-local ``smartplugv1.yaml``). Without any, the lowest bool DP that is not
  an extra's (40, 41, 46, 51) is the one outlet; without such a DP there is no profile.
* Extras only when present with a plausible type and value: countdown (int 0..86400) on 8+n for
  outlet n, 15 for USB (DP 2 on legacy, counting minutes), power-on behaviour on 38 (a known
  value set), indicator on 39 or 40 (``relay/pos/none/on``), child lock bool on 40 or 41,
  overcharge bool on 46 or 51, fault bitmap int on 26 (29 first on inwall).
* Power divisor: ÷10, re-checked by power factor PF = P / (V·I) once a load draws ≥ 0.1 A: ÷100
  when ÷10 gives PF > 1.1; ÷1 when ÷10 gives PF < 0.2 and ÷1 gives PF ≤ 1.05 (a ÷1 plug with a
  123 W load at PF 0.95 reads PF 0.095 at ÷10).
* A plug that matches no metering layout gets the switch-only profile, and the result lists the
  DPs seen and those left unused (for a repair issue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .model import (
    CURRENT_DIVISOR,
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

#: DPs to re-request with UPDATEDPS while detecting (every meter DP of every layout).
CANDIDATE_METERING_DPS: Final = (3, 4, 5, 6, 17, 18, 19, 20, 21, 22, 23, 101, 102, 103, 104)

#: Mains voltage window (V) a voltage reading must land in to be believed.
MIN_VOLTS: Final = 85.0
MAX_VOLTS: Final = 265.0
#: Power-factor rules of the power divisor re-check.
MIN_AMPS_FOR_PF: Final = 0.1
PF_TOO_HIGH: Final = 1.1
PF_TOO_LOW: Final = 0.2
PF_MAX_AT_DIV1: Final = 1.05
#: Bool DPs of the extras (child lock, overcharge cut-off): never guessed to be the switch.
_EXTRA_BOOLS: Final = frozenset({"40", "41", "46", "51"})
#: Countdown of the USB switch (countdown_usb1, tuya-local ``gosund_wp9rtl_usbpowerstrip.yaml``).
USB_COUNTDOWN: Final = "15"
#: Countdown DPs hold seconds up to one day.
MAX_COUNTDOWN: Final = 86400


@dataclass(frozen=True, slots=True)
class _Layout:
    name: str
    energy: str
    current: str
    power: str
    voltage: str
    faults: tuple[str, ...]


_LAYOUTS: Final = (
    _Layout(STANDARD, "17", "18", "19", "20", ("26",)),
    _Layout(INWALL, "20", "21", "22", "23", ("29", "26")),
    _Layout(VENDOR, "101", "102", "103", "104", ("26",)),
    _Layout(LEGACY, "3", "4", "5", "6", ()),
)


@dataclass(frozen=True, slots=True)
class Detection:
    """The outcome of :func:`detect_profile`.

    ``profile`` is None when the plug reported no bool DP at all (nothing to switch).
    ``matched`` tells whether a metering layout was recognised; ``voltage_verified`` whether a
    reading confirmed which DP is the voltage. ``seen`` lists every DP id reported (ascending),
    ``unused`` those the profile does not use; ``notes`` are short English remarks for logs.
    """

    profile: Profile | None
    matched: bool
    voltage_verified: bool
    seen: tuple[str, ...]
    unused: tuple[str, ...]
    notes: tuple[str, ...]


def _int(dps: Mapping[str, object], dp: str) -> int | None:
    value = dps.get(dp)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _is_bool(dps: Mapping[str, object], dp: str) -> bool:
    return isinstance(dps.get(dp), bool)


def _volts_ok(raw: int | None) -> bool:
    return raw is not None and MIN_VOLTS <= raw / VOLTAGE_DIVISOR <= MAX_VOLTS


def _pf(power_w: float, volts: float, amps: float) -> float:
    return power_w / (volts * amps)


def power_divisor_for(raw_current: int, raw_power: int, raw_voltage: int, divisor: int) -> int:
    """The power divisor the PF rules give for one reading (module docstring).

    ``raw_current`` in mA, ``raw_voltage`` in V×10; ``divisor`` is kept when the reading cannot
    tell (current under 0.1 A, voltage outside 85-265 V, or ÷100 still gives PF > 1.1); else
    one of 100, 1 and 10 (the default when neither rule applies).
    """
    amps = raw_current / CURRENT_DIVISOR
    volts = raw_voltage / VOLTAGE_DIVISOR
    if amps < MIN_AMPS_FOR_PF or not MIN_VOLTS <= volts <= MAX_VOLTS or raw_power < 0:
        return divisor
    pf10 = _pf(raw_power / 10, volts, amps)
    if pf10 > PF_TOO_HIGH:
        return 100 if _pf(raw_power / 100, volts, amps) <= PF_TOO_HIGH else divisor
    if pf10 < PF_TOO_LOW and _pf(raw_power, volts, amps) <= PF_MAX_AT_DIV1:
        return 1
    return POWER_DIVISOR


def recheck_power_divisor(profile: Profile, dps: Mapping[str, object]) -> Profile | None:
    """A profile with a corrected power divisor, or None when ``dps`` confirm (or cannot test) it.

    ``dps`` is the plug's latest ``{dp_id: value}``; current, power and voltage must all be
    integers. The voltage and current divisors of the profile are used as stored.
    """
    if profile.current is None or profile.power is None or profile.voltage is None:
        return None
    cur = _int(dps, profile.current.dp)
    pw = _int(dps, profile.power.dp)
    vol = _int(dps, profile.voltage.dp)
    if cur is None or pw is None or vol is None:
        return None
    # normalise to the units power_divisor_for expects (mA and V×10)
    raw_ma = cur * CURRENT_DIVISOR // profile.current.divisor
    raw_dv = vol * VOLTAGE_DIVISOR // profile.voltage.divisor
    divisor = power_divisor_for(raw_ma, pw, raw_dv, profile.power.divisor)
    if divisor == profile.power.divisor:
        return None
    return profile.with_power_divisor(divisor)


def _merge(
    status: Mapping[str, object], refreshed: Mapping[str, object] | None
) -> dict[str, object]:
    merged: dict[str, object] = {}
    for source in (status, refreshed or {}):
        for dp, value in source.items():
            if is_dp_id(dp) and value is not None:
                merged[dp] = value
    return merged


def _pick_layout(dps: Mapping[str, object]) -> tuple[_Layout | None, bool, bool]:
    """(layout, voltage verified, power/voltage swapped)."""
    fallback: _Layout | None = None
    for layout in _LAYOUTS:
        pw = _int(dps, layout.power)
        vol = _int(dps, layout.voltage)
        if pw is None or vol is None:
            continue
        cur = _int(dps, layout.current)
        verified = _volts_ok(vol) or _volts_ok(pw)
        if layout.name == STANDARD and cur is not None and not verified:
            # 18, 19 and 20 all present: the common layout even before a voltage reading
            return layout, False, False
        if _volts_ok(vol) and _volts_ok(pw):
            swapped = False
            if cur is not None and cur / CURRENT_DIVISOR >= MIN_AMPS_FOR_PF:
                amps = cur / CURRENT_DIVISOR
                straight = _pf(pw / POWER_DIVISOR, vol / VOLTAGE_DIVISOR, amps) <= PF_TOO_HIGH
                crossed = _pf(vol / POWER_DIVISOR, pw / VOLTAGE_DIVISOR, amps) <= PF_TOO_HIGH
                swapped = crossed and not straight
            return layout, True, swapped
        if _volts_ok(vol):
            return layout, True, False
        if _volts_ok(pw):
            return layout, True, True
        if fallback is None:
            fallback = layout
    return fallback, False, False


def _countdown(dps: Mapping[str, object], dp: str) -> bool:
    value = _int(dps, dp)
    return value is not None and 0 <= value <= MAX_COUNTDOWN


def _power_on(dps: Mapping[str, object], dp: str) -> PowerOnBehaviour | None:
    value = dps.get(dp)
    for value_set in POWER_ON_VALUE_SETS:
        if value in value_set:
            return PowerOnBehaviour(dp, value_set)
    return None


def _indicator(dps: Mapping[str, object], dp: str) -> Indicator | None:
    value = dps.get(dp)
    if not isinstance(value, str) or value not in INDICATOR_VALUES:
        return None
    options = ("relay", "pos", "none", "on") if value == "on" else ("relay", "pos", "none")
    return Indicator(dp, options)


def detect_profile(
    status: Mapping[str, object], refreshed: Mapping[str, object] | None = None
) -> Detection:
    """Build the profile of a plug from its status DPS and its UPDATEDPS answer.

    ``status`` and ``refreshed`` map DP id strings to values as the plug sent them (keys that are
    not DP ids and None values are ignored; ``refreshed`` wins on conflicts). Never raises for odd
    values: a DP with an unexpected type is simply not used.
    """
    dps = _merge(status, refreshed)
    seen = tuple(sorted(dps, key=dp_sort_key))
    notes: list[str] = []
    layout, verified, swapped = _pick_layout(dps)
    legacy = layout is not None and layout.name == LEGACY

    switch_dps = [str(i) for i in range(1, 7) if _is_bool(dps, str(i))]
    usb = "7" if not legacy and _is_bool(dps, "7") else None
    if not switch_dps and usb is None:
        bools = sorted(
            (dp for dp in dps if _is_bool(dps, dp) and dp not in _EXTRA_BOOLS), key=dp_sort_key
        )
        if not bools:
            notes.append("no bool DP: nothing to switch")
            return Detection(None, layout is not None, verified, seen, seen, tuple(notes))
        switch_dps = [bools[0]]
        notes.append(f"no switch on DPs 1-7; using bool DP {bools[0]}")

    used: set[str] = {*switch_dps, *([usb] if usb else [])}
    meters: dict[str, Meter | None] = {"current": None, "power": None, "voltage": None}
    energy: Meter | None = None
    if layout is not None:
        power_dp, voltage_dp = layout.power, layout.voltage
        if swapped:
            power_dp, voltage_dp = voltage_dp, power_dp
            notes.append(f"power and voltage swapped: voltage on DP {voltage_dp}")
        if not verified:
            notes.append("no voltage reading in 85-265 V: voltage DP not verified")
        candidates = (
            ("current", layout.current, CURRENT_DIVISOR),
            ("power", power_dp, POWER_DIVISOR),
            ("voltage", voltage_dp, VOLTAGE_DIVISOR),
        )
        for role, dp, divisor in candidates:
            value = _int(dps, dp)
            if value is not None and value >= 0 and dp not in used:
                meters[role] = Meter(dp, divisor)
                used.add(dp)
        raw_energy = _int(dps, layout.energy)
        if raw_energy is not None and raw_energy >= 0 and layout.energy not in used:
            energy = Meter(layout.energy, ENERGY_DIVISOR)
            used.add(layout.energy)
    else:
        notes.append("no known metering layout")

    countdowns: dict[str, str] = {}
    for dp in [*switch_dps, *([usb] if usb else [])]:
        if legacy:
            cd = "2"
        elif dp == usb:
            cd = USB_COUNTDOWN
        else:
            cd = str(8 + int(dp))
        if (legacy and dp != "1") or int(dp) > 7 or cd in used:
            continue  # a guessed switch DP outside 1-7 has no known countdown
        if _countdown(dps, cd):
            countdowns[dp] = cd
            used.add(cd)

    def first_bool(candidates: tuple[str, ...]) -> str | None:
        for dp in candidates:
            if dp not in used and _is_bool(dps, dp):
                used.add(dp)
                return dp
        return None

    power_on = None if "38" in used else _power_on(dps, "38")
    if power_on is not None:
        used.add("38")
    indicator = None
    for dp in ("39", "40"):
        if dp not in used and (indicator := _indicator(dps, dp)) is not None:
            used.add(dp)
            break
    child_lock = first_bool(("40", "41"))
    overcharge = first_bool(("46", "51"))
    alarm = first_bool(("7",)) if legacy else None
    fault = None
    for dp in layout.faults if layout is not None else ("26",):
        value = _int(dps, dp)
        if dp not in used and value is not None and value >= 0:
            fault = dp
            used.add(dp)
            break

    profile = Profile(
        name=layout.name if layout is not None else SWITCH_ONLY,
        outlets=build_outlets(switch_dps, usb, countdowns, LEGACY_COUNTDOWN_SCALE if legacy else 1),
        current=meters["current"],
        power=meters["power"],
        voltage=meters["voltage"],
        energy=energy,
        power_on=power_on,
        indicator=indicator,
        child_lock=child_lock,
        overcharge=overcharge,
        fault=fault,
        alarm=alarm,
    )
    rechecked = recheck_power_divisor(profile, dps)
    if rechecked is not None and rechecked.power is not None:
        notes.append(f"power divisor {rechecked.power.divisor} from the power factor")
        profile = rechecked
    unused = tuple(dp for dp in seen if dp not in profile.dp_ids())
    return Detection(profile, layout is not None, verified, seen, unused, tuple(notes))

"""Profile detection from DPS shaped like real plugs (sources in tests/fixtures/profiles/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.profiles import (
    CANDIDATE_METERING_DPS,
    Detection,
    Indicator,
    Meter,
    Outlet,
    PowerOnBehaviour,
    Profile,
    builtin_profile,
    detect_profile,
    recheck_power_divisor,
)
from custom_components.tuya_local_esp.profiles.detect import power_divisor_for

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"


def detect(name: str) -> Detection:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    assert data["source"]
    return detect_profile(data["status"], data.get("refreshed"))


def only(detection: Detection) -> Profile:
    assert detection.profile is not None
    return detection.profile


def test_every_fixture_is_tested() -> None:
    tested = {
        "standard_single_load",
        "standard_double_small_load",
        "standard_extras_no_meter",
        "standard_calibration",
        "strip_usb",
        "legacy",
        "legacy_swapped",
        "inwall",
        "inwall_swapped",
        "vendor_strip",
        "vendor_power_x1",
        "unknown_layout",
        "no_switch",
    }
    assert {p.stem for p in FIXTURES.glob("*.json")} == tested


def test_standard_single_outlet_under_load() -> None:
    det = detect("standard_single_load")
    p = only(det)
    assert (p.name, det.matched, det.voltage_verified) == ("standard", True, True)
    assert [(o.dp, o.name, o.countdown) for o in p.outlets] == [("1", "Outlet 1", "9")]
    assert p.meters == {
        "current": Meter("18", 1000),
        "power": Meter("19", 10),
        "voltage": Meter("20", 10),
        "energy": Meter("17", 1000),
    }
    # PF = 593.5 W / (222.4 V x 2.754 A) = 0.97: the default ÷10 stands
    assert recheck_power_divisor(p, {"18": 2754, "19": 5935, "20": 2224}) is None
    assert (p.power_on, p.indicator, p.child_lock, p.fault, p.overcharge) == (None,) * 5
    assert det.unused == ()
    assert det.seen == ("1", "9", "17", "18", "19", "20")


def test_double_plug_small_load_keeps_default_divisor() -> None:
    p = only(detect("standard_double_small_load"))
    assert [o.name for o in p.outlets] == ["Outlet 1", "Outlet 2"]
    assert p.usb is None
    assert all(o.countdown is None for o in p.outlets)  # no countdown DP reported
    assert p.power == Meter("19", 10)  # 83 mA: too little current to judge the divisor


def test_extras_without_meter_is_switch_only() -> None:
    det = detect("standard_extras_no_meter")
    p = only(det)
    assert (p.name, det.matched) == ("switch", False)
    assert p.meters == {}
    assert p.power_on == PowerOnBehaviour("38", ("power_off", "power_on", "last"))
    assert p.indicator == Indicator("39", ("relay", "pos", "none"))
    assert p.child_lock == "40"
    # 41/42/44 are schedule strings: no entity for them
    assert det.unused == ("41", "42", "44")
    assert "no known metering layout" in det.notes


def test_calibration_dps_do_not_make_it_inwall() -> None:
    det = detect("standard_calibration")
    p = only(det)
    assert p.name == "standard"
    assert p.voltage == Meter("20", 10)
    assert p.fault == "26"
    assert p.power_on == PowerOnBehaviour("38", ("off", "on", "memory"))
    assert p.indicator == Indicator("39", ("relay", "pos", "none", "on"))
    assert (p.child_lock, p.overcharge) == ("40", "46")
    assert det.unused == ("21", "22", "23", "24", "25")


def test_power_strip_with_usb() -> None:
    det = detect("strip_usb")
    p = only(det)
    assert [(o.dp, o.name, o.countdown, o.usb) for o in p.outlets] == [
        ("1", "Outlet 1", "9", False),
        ("2", "Outlet 2", "10", False),
        ("3", "Outlet 3", "11", False),
        ("7", "USB", "15", True),
    ]
    assert p.power_on == PowerOnBehaviour("38", ("power_off", "power_on", "last"))
    assert p.indicator == Indicator("40", ("relay", "pos", "none"))
    assert p.child_lock == "41"
    assert p.fault == "26"
    assert p.refresh_dps() == (17, 18, 19, 20)


def test_legacy_layout() -> None:
    det = detect("legacy")
    p = only(det)
    assert (p.name, det.voltage_verified) == ("legacy", True)
    assert [(o.dp, o.countdown, o.countdown_scale) for o in p.outlets] == [("1", "2", 60)]
    assert p.meters == {
        "current": Meter("4", 1000),
        "power": Meter("5", 10),
        "voltage": Meter("6", 10),
        "energy": Meter("3", 1000),
    }
    assert p.alarm == "7"
    assert p.usb is None  # bool DP 7 is the overcurrent alarm on this layout


def test_legacy_swapped_power_and_voltage() -> None:
    det = detect("legacy_swapped")
    p = only(det)
    assert (p.power, p.voltage) == (Meter("6", 10), Meter("5", 10))
    assert any("swapped" in n for n in det.notes)


def test_inwall_energy_is_not_voltage() -> None:
    det = detect("inwall")
    p = only(det)
    assert p.name == "inwall"
    # DP 20 = 1234 would read "123.4 V" on the standard layout: here it is the energy counter
    assert p.energy == Meter("20", 1000)
    assert (p.current, p.power, p.voltage) == (Meter("21", 1000), Meter("22", 10), Meter("23", 10))
    assert p.fault == "29"
    assert p.power_on == PowerOnBehaviour("38", ("0", "1", "2"))
    assert p.outlets[0].countdown == "9"


def test_inwall_swapped_power_and_voltage() -> None:
    p = only(detect("inwall_swapped"))
    assert (p.power, p.voltage) == (Meter("23", 10), Meter("22", 10))


def test_vendor_strip() -> None:
    det = detect("vendor_strip")
    p = only(det)
    assert p.name == "vendor"
    assert [o.dp for o in p.outlets] == ["1", "2", "3", "4"]
    assert p.energy == Meter("101", 1000)
    assert p.voltage == Meter("104", 10)
    assert det.unused == ("105", "106", "107", "108", "109")


def test_vendor_power_without_scale_gets_divisor_1() -> None:
    det = detect("vendor_power_x1")
    p = only(det)
    assert p.power == Meter("103", 1)
    assert "power divisor 1 from the power factor" in det.notes


def test_unknown_layout_falls_back_to_switch_only() -> None:
    det = detect("unknown_layout")
    p = only(det)
    assert (p.name, det.matched) == ("switch", False)
    assert p.outlets[0].dp == "101"
    assert det.seen == ("101", "102", "104", "105", "106")
    assert det.unused == ("102", "104", "105", "106")


def test_no_bool_dp_gives_no_profile() -> None:
    det = detect("no_switch")
    assert det.profile is None
    assert det.matched  # the meters are there, but there is nothing to switch
    assert det.unused == det.seen


def test_status_and_refresh_are_merged_refresh_wins() -> None:
    det = detect_profile(
        {"1": True, "20": 0, "x": 1, "999": 1}, {"18": 500, "19": 1100, "20": 2300}
    )
    p = only(det)
    assert p.voltage == Meter("20", 10)
    assert det.seen == ("1", "18", "19", "20")


def test_null_values_are_absent() -> None:
    det = detect_profile({"1": True, "18": None, "19": None, "20": None})
    assert only(det).meters == {}


def test_standard_before_any_voltage_reading() -> None:
    det = detect_profile({"1": True, "18": 0, "19": 0, "20": 0})
    p = only(det)
    assert (p.name, det.voltage_verified) == ("standard", False)
    assert p.voltage == Meter("20", 10)
    assert any("not verified" in n for n in det.notes)


def test_unverified_layout_is_used_when_nothing_better() -> None:
    det = detect_profile({"1": True, "102": 0, "103": 0, "104": 0})
    p = only(det)
    assert (p.name, det.voltage_verified) == ("vendor", False)


def test_verified_layout_beats_unverified_one() -> None:
    # 22/23 read 0 (in-wall layout, unverified); 103/104 hold a real reading
    det = detect_profile({"1": True, "22": 0, "23": 0, "102": 300, "103": 600, "104": 2300})
    assert only(det).name == "vendor"


def test_both_in_range_without_current_keeps_layout_order() -> None:
    # 150.0 W and 230.0 V both land in 85-265 "V"; no current to tell: layout order
    p = only(detect_profile({"1": True, "18": 0, "19": 1500, "20": 2300}))
    assert (p.power, p.voltage) == (Meter("19", 10), Meter("20", 10))


def test_both_in_range_swapped_found_by_power_factor() -> None:
    # in-wall plug with 22 = voltage (230.0 V) and 23 = power (150.0 W) at 0.7 A:
    # straight reading would be 230 W at 150 V -> PF 2.2; crossed gives PF 0.93
    p = only(detect_profile({"1": True, "21": 700, "22": 2300, "23": 1500}))
    assert (p.power, p.voltage) == (Meter("23", 10), Meter("22", 10))


def test_extras_need_plausible_values() -> None:
    det = detect_profile(
        {
            "1": True,
            "9": 90000,  # not a countdown: more than a day
            "26": -1,  # a fault bitmap is never negative
            "38": "sometimes",  # unknown power-on value set
            "39": "blink",  # unknown indicator option
            "40": "yes",  # neither indicator nor lock
            "41": 1,  # not a bool
            "46": "on",
            "51": True,  # overcharge on the alternative DP
        }
    )
    p = only(det)
    assert (p.outlets[0].countdown, p.fault, p.power_on, p.indicator, p.child_lock) == (None,) * 5
    assert p.overcharge == "51"
    assert det.unused == ("9", "26", "38", "39", "40", "41", "46")


def test_guessed_switch_skips_extras_and_gets_no_countdown() -> None:
    det = detect_profile({"40": True, "46": False, "101": True, "109": 60})
    p = only(det)
    assert p.outlets == (Outlet("101", "Outlet 1"),)
    assert (p.child_lock, p.overcharge) == ("40", "46")
    assert det.unused == ("109",)
    assert any("using bool DP 101" in n for n in det.notes)
    only_lock = detect_profile({"40": True})
    assert only_lock.profile is None
    assert only_lock.unused == ("40",)


def test_bool_dp_7_alone_is_a_usb_switch() -> None:
    p = only(detect_profile({"7": True}))
    assert p.usb is not None
    assert p.switches == ()


def test_candidate_metering_dps_cover_every_layout() -> None:
    for name in ("standard", "legacy", "inwall", "vendor"):
        assert set(builtin_profile(name).refresh_dps()) <= set(CANDIDATE_METERING_DPS)


# -- power divisor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current_ma", "power_raw", "voltage_raw", "stored", "expected"),
    [
        # V x I = 230 V x 0.563 A = 129.5 VA
        (563, 123, 2300, 10, 1),  # ÷1 plug, 123 W at PF 0.95: PF 0.095 at ÷10
        (563, 1230, 2300, 10, 10),  # the same load on a ÷10 plug
        (563, 12300, 2300, 10, 100),  # ÷100 plug: PF 9.5 at ÷10, 0.95 at ÷100
        (563, 12300, 2300, 1, 100),
        (563, 1230, 2300, 100, 10),  # a wrong stored divisor is corrected back
        (563, 1230, 2300, 1, 10),
        (563, 200000, 2300, 10, 10),  # PF 15 even at ÷100: nonsense, keep the stored one
        (563, 200000, 2300, 1, 1),
        (99, 5, 2300, 1, 1),  # under 0.1 A: cannot tell, keep
        (563, 123, 500, 10, 10),  # 50 V is no mains voltage: cannot tell, keep
        (-5, 123, 2300, 10, 10),
        (563, -1, 2300, 10, 10),
        # V x I = 230 V x 1 A = 230 VA: the PF > 1.1 edge
        (1000, 2600, 2300, 10, 100),  # PF 1.13 at ÷10
        (1000, 2500, 2300, 10, 10),  # PF 1.087 at ÷10: plausible
        # V x I = 230 V x 0.2 A = 46 VA: the PF < 0.2 / ≤ 1.05 edges
        (200, 46, 2300, 10, 1),  # PF 0.1 at ÷10, 1.0 at ÷1
        (200, 48, 2300, 10, 1),  # 1.043 at ÷1
        (200, 50, 2300, 10, 10),  # 1.087 at ÷1: a low-PF load on a ÷10 plug
        (200, 93, 2300, 10, 10),  # PF 0.202 at ÷10: not below 0.2
    ],
)
def test_power_divisor_rules(
    current_ma: int, power_raw: int, voltage_raw: int, stored: int, expected: int
) -> None:
    assert power_divisor_for(current_ma, power_raw, voltage_raw, stored) == expected


def test_recheck_power_divisor_on_updates() -> None:
    std = builtin_profile("standard")
    # idle plug: nothing to learn
    assert recheck_power_divisor(std, {"18": 0, "19": 0, "20": 2300}) is None
    # ÷1 plug under load
    fixed = recheck_power_divisor(std, {"18": 563, "19": 123, "20": 2300})
    assert fixed is not None
    assert fixed.power == Meter("19", 1)
    assert fixed.current == std.current
    # the corrected profile is stable on the next update
    assert recheck_power_divisor(fixed, {"18": 563, "19": 123, "20": 2300}) is None
    # missing or non-integer readings cannot be checked
    assert recheck_power_divisor(std, {"18": 563, "19": "123", "20": 2300}) is None
    assert recheck_power_divisor(std, {"19": 123, "20": 2300}) is None
    assert recheck_power_divisor(builtin_profile("switch"), {"18": 563}) is None


def test_recheck_uses_stored_current_and_voltage_divisors() -> None:
    odd = Profile.from_wire(
        {
            "name": "custom",
            "sw": ["1"],
            "cur": "18",
            "cdiv": 100,
            "pow": "19",
            "vol": "20",
            "vdiv": 1,
        }
    )
    # 5.63 A as centiamps, 230 V as whole volts (1295 VA): 12300 raw = 1230 W at ÷10, PF 0.95
    assert recheck_power_divisor(odd, {"18": 563, "19": 12300, "20": 230}) is None
    # 1230 raw = 123 W at ÷10 (PF 0.095) but 1230 W at ÷1 (PF 0.95)
    fixed = recheck_power_divisor(odd, {"18": 563, "19": 1230, "20": 230})
    assert fixed is not None
    assert fixed.power == Meter("19", 1)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [str(i) for i in (*range(1, 30), 38, 39, 40, 41, 46, 51, *range(101, 110))]
        ),
        st.none()
        | st.booleans()
        | st.integers(-10, 100000)
        | st.sampled_from(["relay", "pos", "none", "on", "last", "memory", "0", "", "power_on"]),
    ),
    st.dictionaries(st.sampled_from(["18", "19", "20", "4", "5", "6"]), st.integers(0, 30000)),
)
def test_detect_never_raises_and_lists_only_present_dps(
    status: dict[str, Any], refreshed: dict[str, Any]
) -> None:
    det = detect_profile(status, refreshed)
    present = {dp for src in (status, refreshed) for dp, v in src.items() if v is not None}
    assert set(det.seen) == present
    if det.profile is None:
        # no bool DP at all, or only the extras' (child lock, overcharge cut-off)
        bools = {dp for dp, v in {**status, **refreshed}.items() if isinstance(v, bool)}
        assert bools <= {"40", "41", "46", "51"}
        return
    assert det.profile.dp_ids() <= present
    assert set(det.unused) == present - det.profile.dp_ids()
    assert Profile.from_wire(det.profile.to_wire()) == det.profile

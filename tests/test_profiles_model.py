"""Profile model: built-in layouts, validation, the wire form and the value helpers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.profiles import (
    BUILTIN_PROFILES,
    Indicator,
    Meter,
    Outlet,
    PowerOnBehaviour,
    Profile,
    ProfileError,
    builtin_profile,
    fault_names,
)
from custom_components.tuya_local_esp.profiles.model import is_dp_id


def test_standard_builtin_dp_ids() -> None:
    std = BUILTIN_PROFILES["standard"]
    assert [(o.dp, o.name, o.countdown) for o in std.outlets] == [
        ("1", "Outlet 1", "9"),
        ("2", "Outlet 2", "10"),
        ("3", "Outlet 3", "11"),
        ("4", "Outlet 4", "12"),
        ("5", "Outlet 5", "13"),
        ("6", "Outlet 6", "14"),
        ("7", "USB", "15"),
    ]
    assert std.usb == Outlet("7", "USB", "15", usb=True)
    assert std.meters == {
        "current": Meter("18", 1000),
        "power": Meter("19", 10),
        "voltage": Meter("20", 10),
        "energy": Meter("17", 1000),
    }
    assert std.fault == "26"
    assert std.power_on == PowerOnBehaviour("38", ("power_off", "power_on", "last"))
    assert std.indicator == Indicator("39", ("relay", "pos", "none"))
    assert std.child_lock == "40"
    assert std.overcharge == "46"
    assert std.refresh_dps() == (17, 18, 19, 20)


def test_legacy_builtin_dp_ids() -> None:
    legacy = BUILTIN_PROFILES["legacy"]
    assert legacy.outlets == (Outlet("1", "Outlet 1", "2", countdown_scale=60),)
    assert legacy.countdown_scale == 60  # DP 2 counts minutes (tuya-local smartplugv1.yaml)
    assert legacy.to_wire()["cds"] == 60
    assert Profile.from_wire(legacy.to_wire()) == legacy
    assert (legacy.energy, legacy.current, legacy.power, legacy.voltage) == (
        Meter("3", 1000),
        Meter("4", 1000),
        Meter("5", 10),
        Meter("6", 10),
    )
    assert legacy.alarm == "7"
    assert legacy.usb is None
    assert legacy.refresh_dps() == (3, 4, 5, 6)


def test_inwall_and_vendor_builtin_dp_ids() -> None:
    inwall = BUILTIN_PROFILES["inwall"]
    assert [m.dp for m in inwall.meters.values()] == ["21", "22", "23", "20"]
    assert inwall.fault == "29"
    assert [o.countdown for o in inwall.outlets] == ["9", "10"]
    vendor = BUILTIN_PROFILES["vendor"]
    assert [m.dp for m in vendor.meters.values()] == ["102", "103", "104", "101"]
    assert [o.dp for o in vendor.outlets] == ["1", "2", "3", "4"]
    assert all(o.countdown is None for o in vendor.outlets)


def test_switch_only_builtin() -> None:
    sw = BUILTIN_PROFILES["switch"]
    assert sw.outlets == (Outlet("1", "Outlet 1", "9"),)
    assert sw.meters == {}
    assert sw.refresh_dps() == ()
    assert sw.dp_ids() == {"1", "9"}


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
def test_builtins_round_trip_through_json(name: str) -> None:
    profile = BUILTIN_PROFILES[name]
    wire = json.loads(json.dumps(profile.to_wire()))
    assert Profile.from_wire(wire) == profile
    # every DP the profile uses has exactly one role
    assert len(profile.dp_ids()) == sum(1 for dp in profile.dp_ids() if profile.role_of(dp))


def test_wire_form_is_compact() -> None:
    wire = builtin_profile("standard").to_wire()
    assert wire == {
        "v": 1,
        "name": "standard",
        "sw": ["1"],
        "cd": {"1": "9"},
        "cur": "18",
        "cdiv": 1000,
        "pow": "19",
        "pdiv": 10,
        "vol": "20",
        "vdiv": 10,
        "ene": "17",
        "ediv": 1000,
        "einc": True,
        "po": "38",
        "pov": ["power_off", "power_on", "last"],
        "led": "39",
        "ledv": ["relay", "pos", "none"],
        "lock": "40",
        "oc": "46",
        "fault": "26",
    }
    assert len(json.dumps(wire, separators=(",", ":"))) < 300


def test_from_wire_defaults_and_unknown_keys() -> None:
    profile = Profile.from_wire({"name": "standard", "sw": ["1"], "pow": "19", "future": 1})
    assert profile.power == Meter("19", 10)
    assert profile.outlets == (Outlet("1", "Outlet 1"),)
    assert profile.energy_increments is True
    assert profile.countdown_scale == 1


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ([], "profile"),
        ({"v": 2, "name": "standard", "sw": ["1"]}, "v:"),
        ({"v": True, "name": "standard", "sw": ["1"]}, "v:"),
        ({"v": 0, "name": "standard", "sw": ["1"]}, "v:"),
        ({"sw": ["1"]}, "name:"),
        ({"name": "nope", "sw": ["1"]}, "name:"),
        ({"name": "standard", "sw": []}, "sw:"),
        ({"name": "standard", "sw": "1"}, "sw:"),
        ({"name": "standard", "sw": ["01"]}, "sw:"),
        ({"name": "standard", "sw": ["256"]}, "sw:"),
        ({"name": "standard", "sw": [1]}, "sw:"),
        ({"name": "standard", "sw": ["1", "1"]}, "sw: DP already used"),
        ({"name": "standard", "sw": ["1"], "usb": 7}, "usb:"),
        ({"name": "standard", "sw": ["1"], "cd": []}, "cd:"),
        ({"name": "standard", "sw": ["1"], "cd": {"2": "10"}}, "cd:"),
        ({"name": "standard", "sw": ["1"], "cd": {"1": "1"}}, "cd: DP already used"),
        ({"name": "standard", "sw": ["1"], "pow": "19", "pdiv": 3}, "pow: divisor"),
        ({"name": "standard", "sw": ["1"], "pow": "19", "pdiv": "10"}, "pdiv:"),
        ({"name": "standard", "sw": ["1"], "pow": "19", "pdiv": True}, "pdiv:"),
        ({"name": "standard", "sw": ["1"], "pow": "1"}, "pow: DP already used"),
        ({"name": "standard", "sw": ["1"], "ene": "17", "einc": 1}, "einc:"),
        ({"name": "standard", "sw": ["1"], "po": "38"}, "pov:"),
        ({"name": "standard", "sw": ["1"], "po": "38", "pov": ["a", "b", "c"]}, "pov:"),
        ({"name": "standard", "sw": ["1"], "led": "39"}, "ledv:"),
        ({"name": "standard", "sw": ["1"], "led": "39", "ledv": ["relay"]}, "ledv:"),
        ({"name": "standard", "sw": ["1"], "led": "39", "ledv": ["relay", "x"]}, "ledv:"),
        ({"name": "standard", "sw": ["1"], "led": "39", "ledv": ["on", "on"]}, "ledv:"),
        ({"name": "standard", "sw": ["1"], "lock": "x"}, "lock:"),
        ({"name": "legacy", "sw": ["1"], "cd": {"1": "2"}, "cds": 30}, "cds:"),
        ({"name": "legacy", "sw": ["1"], "cd": {"1": "2"}, "cds": "60"}, "cds:"),
        ({"name": "legacy", "sw": ["1"], "cd": {"1": "2"}, "cds": True}, "cds:"),
    ],
)
def test_from_wire_rejects(wire: Any, field: str) -> None:
    with pytest.raises(ProfileError) as err:
        Profile.from_wire(wire)
    assert str(err.value).startswith(field)


def test_two_usb_switches_rejected() -> None:
    with pytest.raises(ProfileError, match="usb"):
        Profile("standard", (Outlet("7", "USB", usb=True), Outlet("8", "USB", usb=True)))


def test_builtin_profile_cut_to_outlets() -> None:
    strip = builtin_profile("standard", outlets=3, usb=True)
    assert [o.dp for o in strip.outlets] == ["1", "2", "3", "7"]
    assert strip.power == Meter("19", 10)
    assert builtin_profile("legacy").outlets == BUILTIN_PROFILES["legacy"].outlets
    with pytest.raises(ProfileError, match="name"):
        builtin_profile("custom")
    with pytest.raises(ProfileError, match="1 to 6"):
        builtin_profile("standard", outlets=7)
    with pytest.raises(ProfileError, match="1 to 1"):
        builtin_profile("legacy", outlets=0)
    with pytest.raises(ProfileError, match="no USB"):
        builtin_profile("vendor", usb=True)


def test_with_power_divisor() -> None:
    std = builtin_profile("standard")
    assert std.with_power_divisor(1).power == Meter("19", 1)
    assert std.with_power_divisor(1).current == std.current
    with pytest.raises(ProfileError, match="pow"):
        builtin_profile("switch").with_power_divisor(1)
    with pytest.raises(ProfileError, match="divisor"):
        std.with_power_divisor(7)


def test_with_divisors() -> None:
    std = builtin_profile("standard")
    both = std.with_divisors(power=1, voltage=100)
    assert (both.power, both.voltage) == (Meter("19", 1), Meter("20", 100))
    assert (both.current, both.outlets, both.name) == (std.current, std.outlets, std.name)
    assert std.with_divisors(voltage=100).power == std.power  # None keeps a divisor
    assert std.with_divisors() == std
    switch_only = builtin_profile("switch")
    assert switch_only.with_divisors(power=1, voltage=1) == switch_only  # no meter, none added
    with pytest.raises(ProfileError, match="divisor"):
        std.with_divisors(voltage=7)


def test_meter_value() -> None:
    meter = Meter("19", 10)
    assert meter.value({"19": 1234}) == 123.4
    assert meter.value({"19": True}) is None
    assert meter.value({"19": "1234"}) is None
    assert meter.value({}) is None


@pytest.mark.parametrize(
    "raw", [("power_off", "power_on", "last"), ("off", "on", "memory"), ("0", "1", "2")]
)
def test_power_on_value_sets_normalise(raw: tuple[str, str, str]) -> None:
    po = PowerOnBehaviour("38", raw)
    assert [po.option(v) for v in raw] == ["off", "on", "memory"]
    assert [po.raw_value(o) for o in ("off", "on", "memory")] == list(raw)
    assert po.option("bogus") is None
    assert po.option(None) is None
    with pytest.raises(ValueError, match="unknown power-on option"):
        po.raw_value("sometimes")


def test_fault_names() -> None:
    assert fault_names(0) == ()
    assert fault_names(1) == ("ov_cr",)
    assert fault_names(0b101010) == ("ov_vol", "ls_cr", "ls_pow")
    assert fault_names(0b1000000) == ("bit6",)
    assert fault_names(True) == ()
    assert fault_names("1") == ()
    assert fault_names(-1) == ()


def test_is_dp_id() -> None:
    assert [is_dp_id(v) for v in ("1", "255", "104")] == [True, True, True]
    assert [is_dp_id(v) for v in ("0", "256", "01", "-1", "", "1a", 1, None)] == [False] * 8


def test_replace_revalidates() -> None:
    std = builtin_profile("standard")
    with pytest.raises(ProfileError, match="lock: DP already used"):
        replace(std, child_lock="38")


_wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.sampled_from(["1", "7", "19", "x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "name",
                "sw",
                "usb",
                "cd",
                "cur",
                "cdiv",
                "pow",
                "pdiv",
                "vol",
                "vdiv",
                "ene",
                "ediv",
                "einc",
                "po",
                "pov",
                "led",
                "ledv",
                "lock",
                "oc",
                "fault",
                "alarm",
            ]
        ),
        _wire_values | st.sampled_from(["standard", "switch"]),
    )
)
def test_from_wire_fuzz_raises_only_profile_error(wire: dict[str, Any]) -> None:
    try:
        profile = Profile.from_wire(wire)
    except ProfileError:
        return
    assert Profile.from_wire(profile.to_wire()) == profile


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ProfileError, match="sw: not a DP id"):
        Profile("standard", (Outlet("0", "Outlet 1"),))
    with pytest.raises(ProfileError, match="pov"):
        Profile(
            "standard", (Outlet("1", "Outlet 1"),), power_on=PowerOnBehaviour("38", ("a", "b", "c"))
        )
    with pytest.raises(ProfileError, match="cds: one countdown scale"):
        Profile("legacy", (Outlet("1", "Outlet 1"), Outlet("2", "Outlet 2", countdown_scale=60)))
    with pytest.raises(ProfileError, match="cds: countdown scale not one of"):
        Profile("legacy", (Outlet("1", "Outlet 1", countdown_scale=0),))
    with pytest.raises(ProfileError, match="sw: a profile needs at least one outlet"):
        Profile("standard", ())

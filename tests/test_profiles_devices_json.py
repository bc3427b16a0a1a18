"""Import of tinytuya's devices.json (fixture shape: tests/fixtures/profiles/devices_json/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.profiles import (
    DevicesJsonError,
    DevicesJsonImport,
    Indicator,
    Meter,
    Outlet,
    PowerOnBehaviour,
    Profile,
    parse_devices_json,
    recheck_power_divisor,
)
from custom_components.tuya_local_esp.profiles.devices_json import MAX_BYTES

WIZARD = Path(__file__).parent / "fixtures" / "profiles" / "devices_json" / "wizard.json"
KEY_MARK = "KEY"


def wizard() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(WIZARD.read_text())
    return data


def parse(entries: Any) -> DevicesJsonImport:
    return parse_devices_json(json.dumps(entries))


def plug_entry(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "Plug",
        "id": "bf0000000000000000aa",
        "key": "KEYsecret0000001",
        "mapping": {"1": {"code": "switch_1", "type": "Boolean", "values": {}}},
    }
    entry.update(fields)
    return entry


def assert_no_key(*objects: object) -> None:
    for obj in objects:
        assert KEY_MARK not in repr(obj)
        assert KEY_MARK not in str(obj)


def test_wizard_file_plugs_and_skips() -> None:
    result = parse_devices_json(WIZARD.read_bytes())
    assert [p.device_id for p in result.plugs] == [
        "bf1234567890abcdefgh",
        "bf2234567890abcdefgh",
        "bf3234567890abcdefgh",
        "0120015260091453a970",
    ]
    assert [(s.index, s.reason) for s in result.skipped] == [
        (3, "sub_device"),
        (4, "not_a_plug"),
        (5, "not_a_plug"),
        (7, "no_local_key"),
    ]
    assert result.skipped[0].name == "Zigbee plug"
    assert_no_key(result, *result.plugs, *result.skipped)


def test_standard_plug_from_mapping() -> None:
    plug = parse_devices_json(WIZARD.read_text()).plugs[0]
    assert (plug.name, plug.local_key, plug.host, plug.version) == (
        "Kitchen plug",
        "KEYkitchen000001",
        "192.168.1.21",
        "3.3",
    )
    assert plug.product_name == "Smart Plug"
    p = plug.profile
    assert p is not None
    assert p.name == "standard"
    assert p.outlets == (Outlet("1", "Outlet 1", "9"),)
    assert p.meters == {
        "current": Meter("18", 1000),
        "power": Meter("19", 10),
        "voltage": Meter("20", 10),
        "energy": Meter("17", 1000),
    }
    assert p.fault == "26"
    assert p.power_on == PowerOnBehaviour("38", ("power_off", "power_on", "last"))
    assert p.indicator == Indicator("39", ("relay", "pos", "none"))
    assert p.child_lock == "40"
    assert p.overcharge is None
    # schedule strings 41/42/44 are not roles
    assert p.dp_ids() == {"1", "9", "17", "18", "19", "20", "26", "38", "39", "40"}
    assert plug.notes == ()  # the declared scales are the standard ones


def test_strip_with_json_string_values_and_wrong_scales() -> None:
    plug = parse_devices_json(WIZARD.read_text()).plugs[1]
    assert (plug.host, plug.version) == (None, "3.4")  # "" ip, version as a number
    p = plug.profile
    assert p is not None
    assert [(o.dp, o.name, o.countdown, o.usb) for o in p.outlets] == [
        ("1", "Outlet 1", "9", False),
        ("2", "Outlet 2", "10", False),
        ("3", "Outlet 3", "11", False),
        ("7", "USB", "15", True),
    ]
    # cloud says cur_power scale 2 and cur_voltage scale 0: standard divisors kept, noted
    assert p.power == Meter("19", 10)
    assert p.voltage == Meter("20", 10)
    assert p.current == Meter("18", 1000)  # "A" scale 3 is mA raw
    assert "cur_power: declared scale 2 ignored, using ÷10" in plug.notes
    assert "cur_voltage: declared scale 0 ignored, using ÷10" in plug.notes
    assert p.power_on == PowerOnBehaviour("38", ("0", "1", "2"))
    assert p.indicator == Indicator("40", ("relay", "pos", "none", "on"))
    assert (p.child_lock, p.overcharge) == ("41", "46")
    # live data decides the power divisor: 230 V, 1.0 A, raw 22000 -> ÷100 (PF 0.96)
    fixed = recheck_power_divisor(p, {"18": 1000, "19": 22000, "20": 2300})
    assert fixed is not None
    assert fixed.power == Meter("19", 100)


def test_plug_without_mapping_is_detected_later() -> None:
    result = parse_devices_json(WIZARD.read_text())
    plug = result.plugs[2]
    assert plug.profile is None
    assert plug.name == "Mini Smart Plug"  # empty name: the product name
    assert (plug.host, plug.version) == (None, None)
    assert any("detected once connected" in n for n in plug.notes)
    # code-keyed mapping items (no dp_id from the cloud) are ignored: detect later too
    old = result.plugs[3]
    assert (old.profile, old.version) == (None, "3.1")


def test_missing_mapping_and_name_fall_back() -> None:
    entry = plug_entry()
    del entry["mapping"], entry["name"]
    plug = parse([entry]).plugs[0]
    assert plug.profile is None
    assert plug.name == "bf0000000000000000aa"


@pytest.mark.parametrize(
    ("version", "expected", "noted"),
    [
        ("3.3", "3.3", False),
        (" 3.5 ", "3.5", False),
        (3.1, "3.1", False),
        (3.30000001, "3.3", False),
        (3, None, True),
        (10**400, None, True),
        (1e400, None, True),
        ("", None, False),
        (None, None, False),
        ("3.6", None, True),
        ("v3.3", None, True),
        (True, None, True),
        ([3.3], None, True),
    ],
)
def test_versions(version: Any, expected: str | None, noted: bool) -> None:
    plug = parse([plug_entry(version=version)]).plugs[0]
    assert plug.version == expected
    assert any("version" in n for n in plug.notes) == noted


@pytest.mark.parametrize(
    ("ip", "host"),
    [("10.0.0.7", "10.0.0.7"), ("", None), (None, None), ("not-an-ip", None), ("::1", None)],
)
def test_hosts(ip: Any, host: str | None) -> None:
    assert parse([plug_entry(ip=ip)]).plugs[0].host == host


def test_layout_names_from_mapping() -> None:
    def mapping(*items: tuple[str, str, str]) -> dict[str, Any]:
        result = {"1": {"code": "switch_1", "type": "Boolean", "values": {}}}
        for dp, code, dp_type in items:
            result[dp] = {"code": code, "type": dp_type, "values": {}}
        return result

    meters = ("cur_current", "cur_power", "cur_voltage")
    cases = {
        "inwall": ("21", "22", "23"),
        "vendor": ("102", "103", "104"),
        "legacy": ("4", "5", "6"),
        "custom": ("104", "105", "106"),
    }
    for name, dps in cases.items():
        items = [(dp, code, "Integer") for dp, code in zip(dps, meters, strict=True)]
        profile = parse([plug_entry(mapping=mapping(*items))]).plugs[0].profile
        assert profile is not None
        assert (profile.name, profile.voltage) == (name, Meter(dps[2], 10))
    only_energy = mapping(("17", "add_ele", "Integer"))
    profile = parse([plug_entry(mapping=only_energy)]).plugs[0].profile
    assert profile is not None
    assert profile.name == "custom"
    switch_only = parse([plug_entry()]).plugs[0].profile
    assert switch_only is not None
    assert switch_only.name == "switch"


def test_legacy_mapping_with_a_minute_countdown() -> None:
    """A legacy plug's countdown declared in minutes counts minutes (countdown_scale 60)."""

    def legacy(unit: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"min": 0, "max": 1440, "scale": 0, "step": 1}
        if unit is not None:
            values["unit"] = unit
        return {
            "1": {"code": "switch_1", "type": "Boolean", "values": {}},
            # tinytuya keeps values it could not decode as a JSON string
            "2": {"code": "countdown_1", "type": "Integer", "values": json.dumps(values)},
            "3": {"code": "add_ele", "type": "Integer", "values": {"unit": "kwh", "scale": 3}},
            "4": {"code": "cur_current", "type": "Integer", "values": {"unit": "mA"}},
            "5": {"code": "cur_power", "type": "Integer", "values": {"unit": "W", "scale": 1}},
            "6": {"code": "cur_voltage", "type": "Integer", "values": {"unit": "V", "scale": 1}},
        }

    plug = parse([plug_entry(mapping=legacy("min"))]).plugs[0]
    p = plug.profile
    assert p is not None
    assert p.name == "legacy"
    assert [(o.dp, o.countdown, o.countdown_scale) for o in p.outlets] == [("1", "2", 60)]
    assert p.countdown_scale == 60
    assert p.to_wire()["cds"] == 60
    assert Profile.from_wire(p.to_wire()) == p
    assert plug.notes == ()
    for unit, scale in (("Minutes", 60), ("分钟", 60), ("s", 1), (" S ", 1), (None, 1)):
        p = parse([plug_entry(mapping=legacy(unit))]).plugs[0].profile
        assert p is not None
        assert p.countdown_scale == scale, unit
    # an hour count or a non-string unit: seconds, with a note
    for unit in ("h", 5):
        plug = parse([plug_entry(mapping=legacy(unit))]).plugs[0]
        assert plug.profile is not None
        assert plug.profile.countdown_scale == 1
        assert plug.notes == ("countdown_1: unknown unit, counted in seconds",)


def test_countdowns_in_different_units_take_the_first_outlets() -> None:
    m = {
        "1": {"code": "switch_1", "type": "Boolean", "values": {}},
        "2": {"code": "switch_2", "type": "Boolean", "values": {}},
        "9": {"code": "countdown_1", "type": "Integer", "values": {"unit": "min"}},
        "10": {"code": "countdown_2", "type": "Integer", "values": {"unit": "s"}},
    }
    plug = parse([plug_entry(mapping=m)]).plugs[0]
    assert plug.profile is not None
    assert {o.countdown_scale for o in plug.profile.outlets} == {60}
    assert plug.notes == ("countdowns in different units: all counted as the first outlet's",)


def test_mapping_items_with_wrong_types_are_not_roles() -> None:
    m = {
        "1": {"code": "switch", "type": "Boolean", "values": {}},
        "2": {"code": "countdown", "type": "Integer", "values": {}},
        "18": {"code": "cur_current", "type": "String", "values": "not json"},
        "19": {"code": "cur_power", "type": "Integer", "values": "[1, 2]"},
        "20": {"code": "cur_voltage", "type": "Integer", "values": {"scale": True}},
        "38": {"code": "relay_status", "type": "Enum", "values": {"range": ["a", "b"]}},
        "39": {"code": "light_mode", "type": "Enum", "values": {"range": "relay"}},
        "40": {"code": "child_lock", "type": "Integer", "values": {}},
        "26": {"code": "fault", "type": "Bitmap", "values": {}},
        "7": {"code": "switch_usb1", "type": "Boolean"},
        "8": {"code": "switch_usb2", "type": "Boolean", "values": {}},
        "9": {"code": "countdown_4", "type": "Integer", "values": {}},
        "101": {"code": "switch_1", "type": "Boolean", "values": {}},
    }
    plug = parse([plug_entry(mapping=m)]).plugs[0]
    p = plug.profile
    assert p is not None
    assert [(o.dp, o.countdown) for o in p.outlets] == [("1", "2"), ("7", None)]
    assert p.current is None
    assert (p.power, p.voltage) == (Meter("19", 10), Meter("20", 10))
    assert (p.power_on, p.indicator, p.child_lock) == (None, None, None)
    assert p.fault == "26"
    assert plug.notes == ()


def test_duplicate_ids_keep_the_first() -> None:
    result = parse([plug_entry(name="A"), plug_entry(name="B")])
    assert [p.name for p in result.plugs] == ["A"]
    assert [(s.index, s.reason, s.name) for s in result.skipped] == [(1, "duplicate", "B")]


def test_bom_and_text_input() -> None:
    text = json.dumps([plug_entry()])
    assert parse_devices_json("\ufeff" + text).plugs[0].device_id == "bf0000000000000000aa"
    assert parse_devices_json(b"\xef\xbb\xbf" + text.encode()).plugs[0].local_key.startswith("KEY")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xfe not utf-8", "not_json"),
        ("", "not_json"),
        ("{not json", "not_json"),
        ("[" * 100000 + "]" * 100000, "not_json"),
        ('{"devices": []}', "not_a_list"),
        ("null", "not_a_list"),
        ('"text"', "not_a_list"),
        ("[]", "no_plugs"),
        (json.dumps([plug_entry(sub=True)]), "no_plugs"),
        (json.dumps([plug_entry(key="")]), "no_plugs"),
        (json.dumps([plug_entry(mapping={})]), "no_plugs"),
        (json.dumps(["KEYsecret0000001"]), "bad_entry"),
        (json.dumps([plug_entry(id=None)]), "bad_entry"),
        (json.dumps([plug_entry(id="")]), "bad_entry"),
        (json.dumps([plug_entry(id=42)]), "bad_entry"),
        (json.dumps([plug_entry(id="bad id with spaces")]), "bad_entry"),
        (json.dumps([plug_entry(key=1234567890123456)]), "bad_entry"),
        (json.dumps([plug_entry(name=["KEYsecret"])]), "bad_entry"),
        (json.dumps([plug_entry(ip=192)]), "bad_entry"),
        (json.dumps([plug_entry(product_name=1)]), "bad_entry"),
        (json.dumps([plug_entry(mapping=[])]), "bad_entry"),
        (json.dumps([plug_entry(mapping={"1": "switch_1"})]), "bad_entry"),
        (json.dumps([plug_entry(mapping={"1": {"type": "Boolean"}})]), "bad_entry"),
        # one bad entry among good ones: no partial result
        (json.dumps([plug_entry(), plug_entry(id="bf0000000000000000bb", mapping=7)]), "bad_entry"),
        (" " * (MAX_BYTES + 1), "too_large"),
        (b" " * (MAX_BYTES + 1), "too_large"),
    ],
)
def test_errors_have_codes_and_no_key(data: str | bytes, code: str) -> None:
    with pytest.raises(DevicesJsonError) as err:
        parse_devices_json(data)
    assert err.value.code == code
    assert str(err.value).startswith(code)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__ or err.value.__context__ is None
    assert_no_key(err.value)


def test_bad_entry_names_its_index() -> None:
    with pytest.raises(DevicesJsonError) as err:
        parse([plug_entry(), {"id": "bf0000000000000000cc", "key": 5}])
    assert (err.value.code, err.value.index) == ("bad_entry", 1)
    assert "'key'" in str(err.value)


# -- fuzz --------------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "1", "3.3", "switch_1", "cur_power", "Boolean", "Integer", "{}"])
    | st.text(max_size=6)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
_mapping_item = st.fixed_dictionaries(
    {
        "code": st.sampled_from(
            [
                "switch_1",
                "switch",
                "switch_usb1",
                "cur_power",
                "cur_voltage",
                "add_ele",
                "countdown_1",
                "relay_status",
                "light_mode",
                "child_lock",
                "fault",
                "overcharge_switch",
            ]
        )
    },
    optional={
        "type": st.sampled_from(["Boolean", "Integer", "Enum", "Bitmap", "String", 1]),
        "values": _json | st.just('{"range":["0","1","2"],"scale":1}'),
    },
)
_entry = st.fixed_dictionaries(
    {"id": st.sampled_from(["bf01", "bf02", "bf03", "x y"]) | _scalars},
    optional={
        "key": st.just("KEYfuzz000000001") | _scalars,
        "name": st.text(max_size=5) | _scalars,
        "ip": st.sampled_from(["10.0.0.1", ""]) | _scalars,
        "version": _scalars,
        "sub": _scalars,
        "product_name": _scalars,
        "mapping": st.none()
        | st.dictionaries(
            st.sampled_from(["1", "2", "7", "9", "19", "20", "38", "cur"]),
            _mapping_item,
            max_size=6,
        )
        | _json,
    },
)


_good_item = st.fixed_dictionaries(
    {
        "code": st.sampled_from(
            [
                "switch_1",
                "switch_2",
                "switch_usb1",
                "countdown_1",
                "countdown_usb1",
                "cur_current",
                "cur_power",
                "cur_voltage",
                "add_ele",
                "relay_status",
                "light_mode",
                "child_lock",
            ]
        ),
        "type": st.sampled_from(["Boolean", "Integer", "Enum"]),
    },
    optional={
        "values": st.sampled_from(
            [{}, "{}", {"scale": 2}, {"range": ["off", "on", "memory"]}, {"range": ["relay", "on"]}]
        )
    },
)
_good_entry = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["bf01", "bf02", "bf03", "bf04"]),
        "key": st.sampled_from(["KEYfuzz000000001", "KEYfuzz000000002", ""]),
    },
    optional={
        "name": st.text(max_size=5),
        "ip": st.sampled_from(["10.0.0.1", "", "x"]) | st.none(),
        "version": _scalars,
        "sub": st.booleans() | st.none(),
        "product_name": st.text(max_size=5) | st.none(),
        "mapping": st.none()
        | st.dictionaries(
            st.sampled_from(["1", "2", "7", "9", "15", "18", "19", "20", "38", "39", "cur"]),
            _good_item | _mapping_item,
            max_size=8,
        ),
    },
)
_document = (
    st.lists(_good_entry, min_size=1, max_size=5)
    | st.lists(_good_entry | _entry | _json, max_size=5)
    | _json
)


def parse_or_error(data: str | bytes) -> DevicesJsonImport | DevicesJsonError:
    try:
        return parse_devices_json(data)
    except DevicesJsonError as err:
        return err


CODES = {"not_json", "not_a_list", "bad_entry", "no_plugs"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document)
def test_fuzz_parser_result_or_coded_error(document: Any) -> None:
    outcome = parse_or_error(json.dumps(document))
    if isinstance(outcome, DevicesJsonError):
        assert outcome.code in CODES
        assert_no_key(outcome)
        return
    assert outcome.plugs
    assert len({p.device_id for p in outcome.plugs}) == len(outcome.plugs)
    assert all(p.local_key for p in outcome.plugs)
    for plug in outcome.plugs:
        if plug.profile is not None:
            assert Profile.from_wire(plug.profile.to_wire()) == plug.profile
    assert_no_key(outcome, *outcome.plugs, *outcome.skipped)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_fuzz_parser_on_raw_input(data: bytes | str) -> None:
    outcome = parse_or_error(data)
    assert isinstance(outcome, DevicesJsonImport) or outcome.code in CODES

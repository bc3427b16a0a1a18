"""Profiles end to end: each simulated layout is added through the config flow over real TCP,
detected, and gets exactly its entities; switching, scaling, extras and faults work."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.coordinator import entry_profile, fallback_profile
from custom_components.tuya_local_esp.entity import plug_model
from custom_components.tuya_local_esp.flow_plug_options import LAYOUT_LABELS, layout_summary
from custom_components.tuya_local_esp.profiles import Profile, builtin_profile
from tuya_sim import SimulatedPlug
from tuya_sim.profiles import PROFILES as SIM_PROFILES
from tuya_sim.profiles import Profile as SimProfile
from tuya_sim.profiles import Setting, fault_bitmap

from .conftest import DEVICE_ID, LOCAL_KEY, entry_data, wait_until
from .faultproxy import FaultProxy
from .test_config_flow import start_plug_flow, user_input

METERS = ("voltage", "current", "power", "energy")


@dataclass(frozen=True)
class Case:
    """What the integration should make of one simulated layout."""

    layout: str
    keys: frozenset[str]
    outlets: tuple[str, ...]
    power_divisor: int = 10
    voltage_dp: str = "20"
    power_dp: str = "19"
    current_dp: str = "18"
    extras: bool = False
    countdowns: dict[str, str] = field(default_factory=dict)
    countdown_scale: int = 1  # seconds per unit of the countdown DP
    model: str = "Wi-Fi smart plug"


def _keys(*keys: str) -> frozenset[str]:
    return frozenset(keys)


def _metering_plug(layout: str, meter_dps: tuple[str, str, str], **more: Any) -> Case:
    """A one-outlet plug of ``layout`` with a countdown and meters on ``meter_dps`` (A, W, V)."""
    current_dp, power_dp, voltage_dp = meter_dps
    return Case(
        layout,
        _keys("switch", "countdown", *METERS),
        ("1",),
        voltage_dp=voltage_dp,
        power_dp=power_dp,
        current_dp=current_dp,
        **more,
    )


STANDARD_EXTRAS = ("power_on", "indicator", "child_lock", "fault")
CASES: dict[str, Case] = {
    "standard": Case(
        "standard",
        _keys("switch", "countdown", *METERS, *STANDARD_EXTRAS),
        ("1",),
        extras=True,
        countdowns={"countdown": "9"},
    ),
    "strip4": Case(
        "standard",
        _keys(
            "switch",
            "switch_2",
            "switch_3",
            "switch_4",
            "usb",
            "countdown_1",
            "countdown_2",
            "countdown_3",
            "countdown_4",
            *METERS,
            "power_on",
            "indicator",
            "child_lock",
        ),
        ("1", "2", "3", "4", "7"),
        countdowns={"countdown_1": "9", "countdown_4": "12"},
        model="Wi-Fi power strip (4 outlets + USB)",
    ),
    "legacy": _metering_plug(
        "legacy",
        ("4", "5", "6"),
        countdowns={"countdown": "2"},
        countdown_scale=60,  # legacy DP 2 counts minutes (tuya-local smartplugv1.yaml)
    ),
    "inwall": _metering_plug("inwall", ("21", "22", "23")),
    "vendor": _metering_plug("vendor", ("102", "103", "104")),
    "power-x1": Case(
        "standard",
        _keys("switch", "countdown", *METERS, *STANDARD_EXTRAS),
        ("1",),
        power_divisor=1,
        extras=True,
    ),
    "swapped": Case(
        "standard",
        _keys("switch", "countdown", *METERS, *STANDARD_EXTRAS),
        ("1",),
        voltage_dp="19",
        power_dp="20",
        extras=True,
    ),
}


def entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{DEVICE_ID}_{key}")
    assert found is not None, f"no {platform} {key}"
    return found


def platform_of(key: str) -> str:
    if key.startswith(("switch", "usb", "child_lock", "overcharge")):
        return "switch"
    if key.startswith("countdown"):
        return "number"
    if key in ("power_on", "indicator"):
        return "select"
    if key in ("fault", "overcurrent"):
        return "binary_sensor"
    return "sensor"


async def add_through_flow(hass: HomeAssistant, sim: SimulatedPlug) -> ConfigEntry:
    result = await start_plug_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: ConfigEntry = result["result"]
    await hass.async_block_till_done()
    await wait_until(lambda: entry.runtime_data.source.plug_online(DEVICE_ID), within=10)
    return entry


async def wait_state(hass: HomeAssistant, eid: str, check: Any, within: float = 5) -> None:
    def cond() -> bool:
        state = hass.states.get(eid)
        return state is not None and bool(check(state))

    await wait_until(cond, within=within)


async def call(hass: HomeAssistant, domain: str, service: str, eid: str, **data: Any) -> None:
    await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: eid, **data}, blocking=True)


@pytest.mark.parametrize("sim_profile", list(CASES))
async def test_profile_detected_and_entities(hass: HomeAssistant, sim_profile: str) -> None:
    case = CASES[sim_profile]
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.3",
        seed=3,
        noise=0.0,
        dps={"1": True},
        profile=sim_profile,
    ) as sim:
        entry = await add_through_flow(hass, sim)
        profile = Profile.from_wire(entry.data["profile"])
        assert profile.name == case.layout
        assert tuple(o.dp for o in profile.outlets) == case.outlets
        assert profile.power is not None
        assert profile.power.dp == case.power_dp
        assert profile.power.divisor == case.power_divisor
        assert profile.voltage is not None
        assert profile.voltage.dp == case.voltage_dp
        assert profile.current is not None
        assert profile.current.dp == case.current_dp
        assert entry.data["unmatched_dps"] == []

        # the device says what it is: a plug, or a strip with its outlet count
        devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        assert [d.model for d in devices] == [case.model]

        # exactly the entities of the profile, none extra
        registry = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        assert {e.unique_id for e in registry} == {f"{DEVICE_ID}_{k}" for k in case.keys}
        for key in case.keys:
            entity_id(hass, platform_of(key), key)

        # values scaled by the profile: 100 W per outlet on, mains ~230 V
        power = entity_id(hass, "sensor", "power")
        await wait_state(hass, power, lambda s: s.state not in ("unknown", "unavailable"))
        await wait_state(
            hass, power, lambda s: float(s.state) == pytest.approx(100.0, abs=0.6), within=10
        )
        volts = float(hass.states.get(entity_id(hass, "sensor", "voltage")).state)
        assert volts == pytest.approx(sim.dps[case.voltage_dp] / 10)
        assert 200 < volts < 260
        amps = float(hass.states.get(entity_id(hass, "sensor", "current")).state)
        assert amps == pytest.approx(sim.dps[case.current_dp] / 1000, abs=0.001)

        # every outlet switches, confirmed by the plug
        switch_keys = sorted(k for k in case.keys if k.startswith(("switch", "usb")))
        assert len(switch_keys) == len(case.outlets)
        for key, dp in zip(
            ["switch", *sorted(k for k in switch_keys if k.startswith("switch_")), "usb"],
            case.outlets,
            strict=False,
        ):
            eid = entity_id(hass, "switch", key)
            wanted = not sim.dps[dp]
            await call(hass, "switch", "turn_on" if wanted else "turn_off", eid)
            assert sim.dps[dp] is wanted
            await wait_state(hass, eid, lambda s, w=wanted: s.state == ("on" if w else "off"))

        # countdowns are written to their DP in the plug's unit and read back in seconds
        assert SIM_PROFILES[sim_profile].countdown_unit == case.countdown_scale
        assert {o.countdown_scale for o in profile.outlets} == {case.countdown_scale}
        for key, dp in case.countdowns.items():
            eid = entity_id(hass, "number", key)
            state = hass.states.get(eid)
            assert state.attributes["unit_of_measurement"] == "s"
            assert state.attributes["step"] == case.countdown_scale
            await call(hass, "number", "set_value", eid, value=120)
            assert sim.dps[dp] == 120 // case.countdown_scale
            await wait_state(hass, eid, lambda s: float(s.state) == 120)
            if case.countdown_scale > 1:  # a part of a unit rounds, but never to 0 (cancel)
                await call(hass, "number", "set_value", eid, value=case.countdown_scale // 2)
                assert sim.dps[dp] == 1
                await wait_state(hass, eid, lambda s: float(s.state) == case.countdown_scale)
            await call(hass, "number", "set_value", eid, value=0)
            assert sim.dps[dp] == 0

        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("sim_profile", "raw_off"),
    [("standard", "power_off"), ("relay-offonmemory", "off"), ("relay-digits", "0")],
)
async def test_extras_set_and_read_back(
    hass: HomeAssistant, sim_profile: str, raw_off: str
) -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.3",
        seed=3,
        dps={"1": True},
        profile=sim_profile,
    ) as sim:
        entry = await add_through_flow(hass, sim)
        power_on = entity_id(hass, "select", "power_on")
        await wait_state(hass, power_on, lambda s: s.state == "memory")
        assert hass.states.get(power_on).attributes["options"] == ["off", "on", "memory"]
        await call(hass, "select", "select_option", power_on, option="off")
        assert sim.dps["38"] == raw_off
        await wait_state(hass, power_on, lambda s: s.state == "off")

        indicator = entity_id(hass, "select", "indicator")
        assert hass.states.get(indicator).state == "relay"
        await call(hass, "select", "select_option", indicator, option="pos")
        assert sim.dps["39"] == "pos"
        await wait_state(hass, indicator, lambda s: s.state == "pos")

        lock = entity_id(hass, "switch", "child_lock")
        assert hass.states.get(lock).state == "off"
        await call(hass, "switch", "turn_on", lock)
        assert sim.dps["40"] is True
        await wait_state(hass, lock, lambda s: s.state == "on")
        entries = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        config = {e.unique_id for e in entries if e.entity_category is EntityCategory.CONFIG}
        assert config == {
            f"{DEVICE_ID}_{k}" for k in ("power_on", "indicator", "child_lock", "countdown")
        }

        # a fault: the problem sensor turns on and names the faults
        fault = entity_id(hass, "binary_sensor", "fault")
        assert hass.states.get(fault).state == "off"
        assert hass.states.get(fault).attributes["faults"] == []
        sim.push({"26": fault_bitmap("ov_cr", "ov_pwr")})
        await wait_state(hass, fault, lambda s: s.state == "on")
        assert hass.states.get(fault).attributes["faults"] == ["ov_cr", "ov_pwr"]
        sim.push({"26": 0})
        await wait_state(hass, fault, lambda s: s.state == "off")
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_power_divisor_corrected_once_a_load_draws(hass: HomeAssistant) -> None:
    """Added idle, a whole-watt plug is read at ÷10; the first load corrects it to ÷1."""
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.3",
        seed=3,
        noise=0.0,
        profile="power-x1",
    ) as sim:
        entry = await add_through_flow(hass, sim)
        assert Profile.from_wire(entry.data["profile"]).power.divisor == 10  # type: ignore[union-attr]
        switch = entity_id(hass, "switch", "switch")
        power = entity_id(hass, "sensor", "power")
        await call(hass, "switch", "turn_on", switch)
        await wait_state(hass, power, lambda s: s.state == "100.0")
        stored = Profile.from_wire(entry.data["profile"])
        assert stored.power is not None
        assert stored.power.divisor == 1
        assert await hass.config_entries.async_unload(entry.entry_id)


ODD = SimProfile(
    "odd",
    "meters on 111-113 (no known layout)",
    energy=None,
    current="111",
    power="112",
    voltage="113",
    countdowns={},
)


async def open_options(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "plug_profile"
    return result


async def test_unknown_layout_raises_issue_and_options_pick_a_layout(
    hass: HomeAssistant,
) -> None:
    """Unknown meters: switch only and a repair issue naming the DPs; the options flow picks a
    layout and divisors (the entry reloads with the layout's entities, the issue goes away)."""
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", dps={"1": True}, profile=ODD
    ) as sim:
        entry = await add_through_flow(hass, sim)
        assert Profile.from_wire(entry.data["profile"]).name == "switch"
        assert entry.data["unmatched_dps"] == ["1", "111", "112", "113"]
        registry = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        assert {e.unique_id for e in registry} == {f"{DEVICE_ID}_switch"}
        issue = ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}")
        assert issue is not None
        assert issue.translation_key == "unknown_layout"
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["dps"] == "1, 111, 112, 113"

        # a layout without that many outlets is refused, nothing stored
        result = await open_options(hass, entry)
        assert result["description_placeholders"] == {"layout": "Switch only, 1 outlet"}
        form = {
            "layout": "legacy",
            "outlets": 2,
            "usb": False,
            "power_divisor": "10",
            "voltage_divisor": "10",
        }
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": "invalid_layout"}
        assert entry.options == {}
        # the standard layout with 2 outlets, whole-watt power, outlet 1 named
        form.update(layout="standard", power_divisor="1", outlet_names="Lamp, ")
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        picked = Profile.from_wire(entry.options["profile"])
        assert picked.name == "standard"
        assert [o.dp for o in picked.outlets] == ["1", "2"]
        assert picked.power is not None
        assert picked.power.divisor == 1
        assert entry.state is ConfigEntryState.LOADED
        assert ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}") is None
        await wait_until(lambda: entry.runtime_data.source.plug_online(DEVICE_ID), within=10)
        assert entry.runtime_data.source.plug_profile(DEVICE_ID) == picked
        assert entry.options["outlet_names"] == ["Lamp", ""]
        lamp = hass.states.get(entity_id(hass, "switch", "switch"))
        assert lamp.attributes["friendly_name"] == "Desk plug Lamp"
        outlet2 = hass.states.get(entity_id(hass, "switch", "switch_2"))
        assert outlet2.attributes["friendly_name"] == "Desk plug Outlet 2"
        entity_id(hass, "sensor", "power")

        # back to the detected layout with its divisors, the names field cleared (the
        # frontend leaves a cleared field out): the choice and the names are removed
        result = await open_options(hass, entry)
        marker = next(k for k in result["data_schema"].schema if k == "outlet_names")
        assert marker.description == {"suggested_value": "Lamp, "}
        form.update(layout="detected", power_divisor="10")
        del form["outlet_names"]
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert entry.options == {}
        assert ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}")
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_existing_entries_keep_their_entities_and_unique_ids(hass: HomeAssistant) -> None:
    """An entry from before profiles (no stored profile) keeps outlet 1 as ``_switch`` and its
    sensors; a strip's other outlets and USB are added, no extras with unknown value sets."""
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", dps={"1": True}, profile="strip2"
    ) as sim:
        data = entry_data(sim)
        assert "profile" not in data
        entry = MockConfigEntry(domain=DOMAIN, title="Desk plug", unique_id=DEVICE_ID, data=data)
        entry.add_to_hass(hass)
        registry = er.async_get(hass)
        old = registry.async_get_or_create(
            "switch", DOMAIN, f"{DEVICE_ID}_switch", config_entry=entry
        )
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        await wait_state(hass, old.entity_id, lambda s: s.state == "on")
        entries = er.async_entries_for_config_entry(registry, entry.entry_id)
        assert {e.unique_id for e in entries} == {
            f"{DEVICE_ID}_{k}"
            for k in ("switch", "switch_2", "usb", "voltage", "current", "power", "energy")
        }
        assert "profile" not in entry.data  # nothing detected behind the user's back
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entry_without_profile_or_dps_is_detected_at_first_connect(
    hass: HomeAssistant,
) -> None:
    """A devices.json plug without mapping: detected when it first connects, then reloaded."""
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", dps={"1": True}, profile="inwall"
    ) as sim:
        data = entry_data(sim)
        del data["dp_ids"]
        entry = MockConfigEntry(domain=DOMAIN, title="Desk plug", unique_id=DEVICE_ID, data=data)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_until(lambda: "profile" in entry.data, within=10)
        assert Profile.from_wire(entry.data["profile"]).name == "inwall"
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        power = entity_id(hass, "sensor", "power")
        await wait_state(hass, power, lambda s: s.state not in ("unknown", "unavailable"), 10)
        assert float(hass.states.get(power).state) == pytest.approx(sim.dps["22"] / 10)
        assert await hass.config_entries.async_unload(entry.entry_id)


def test_simulator_profiles_cover_the_cases() -> None:
    assert set(CASES) <= set(SIM_PROFILES)


async def test_detection_survives_a_plug_that_drops_updatedps(hass: HomeAssistant) -> None:
    """The UPDATEDPS request never reaches the plug: the status alone is used."""
    async with (
        SimulatedPlug(
            device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", dps={"1": True}
        ) as sim,
        FaultProxy(sim.port) as proxy,
    ):
        proxy.lose_up(1, cmds={0x12})
        with patch("custom_components.tuya_local_esp.flow_probes.REQUEST_TIMEOUT", 0.5):
            result = await start_plug_flow(hass)
            result = await hass.config_entries.flow.async_configure(
                result["flow_id"], user_input(sim, port=proxy.port)
            )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        profile = Profile.from_wire(result["data"]["profile"])
        assert profile.name == "standard"
        assert profile.voltage is not None
        assert proxy.stats.dropped_up >= 1
        entry = result["result"]
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(entry.entry_id)


#: The simulator's legacy plug, with its overcurrent alarm on 7 a bool instead of an int.
LEGACY_ALARM = replace(
    SIM_PROFILES["legacy"],
    name="legacy-alarm",
    description="legacy plug whose overcurrent alarm on 7 is a bool",
    readonly={"7": False},
)


async def test_overcurrent_alarm_of_a_legacy_plug(hass: HomeAssistant) -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.3",
        dps={"1": True},
        profile=LEGACY_ALARM,
    ) as sim:
        entry = await add_through_flow(hass, sim)
        assert Profile.from_wire(entry.data["profile"]).alarm == "7"
        alarm = entity_id(hass, "binary_sensor", "overcurrent")
        await wait_state(hass, alarm, lambda s: s.state == "off")
        sim.push({"7": True})
        await wait_state(hass, alarm, lambda s: s.state == "on")
        assert hass.states.get(alarm).attributes["faults"] == ["overcurrent"]
        assert await hass.config_entries.async_unload(entry.entry_id)


def offline_entry(hass: HomeAssistant, name: str, **data: Any) -> MockConfigEntry:
    """A direct plug's entry (plus ``data``) added to ``hass``, its plug nowhere (port 1)."""
    base = {
        "transport": "direct",
        "host": "127.0.0.1",
        "port": 1,
        "device_id": DEVICE_ID,
        "local_key": LOCAL_KEY,
        "protocol_version": "3.3",
        "name": name,
    }
    entry = MockConfigEntry(domain=DOMAIN, title=name, unique_id=DEVICE_ID, data=base | data)
    entry.add_to_hass(hass)
    return entry


async def submit_detected(
    hass: HomeAssistant, entry: ConfigEntry, flow_id: str, **form: Any
) -> None:
    """Submit the options form with the detected layout (``form``: the other fields); the
    entry keeps no options."""
    result = await hass.config_entries.options.async_configure(
        flow_id, {"layout": "detected", "voltage_divisor": "10", **form}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {}


async def test_unusable_stored_profile_falls_back(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored profile written by a newer version is not used; the entry keeps working."""
    entry = offline_entry(
        hass,
        "Desk plug",
        dp_ids=["1", "18", "19", "20"],
        profile={"v": 99, "name": "standard", "sw": ["1"]},
    )
    assert entry_profile(entry) == fallback_profile({"1", "18", "19", "20"})
    assert "written by a newer version" in caplog.text
    result = await open_options(hass, entry)  # the form still opens, on the fallback
    await submit_detected(hass, entry, result["flow_id"], outlets=1, usb=False, power_divisor="10")


async def test_options_of_an_entry_without_profile_start_from_its_known_dps(
    hass: HomeAssistant,
) -> None:
    """An entry from before profiles: the options flow's "detected" layout is the fallback of the
    DP ids the entry knows (what its entities are built from), not the fallback of no DP ids."""
    entry = offline_entry(hass, "Strip", dp_ids=["1", "2", "7"])
    known = fallback_profile({"1", "2", "7"})
    assert entry_profile(entry) == known
    result = await open_options(hass, entry)
    assert result["description_placeholders"] == {"layout": layout_summary(known)}
    assert result["description_placeholders"]["layout"] == "Standard (17–20), 2 outlets + USB"
    # no meter among the known DPs: the divisors change nothing, so nothing is stored
    await submit_detected(hass, entry, result["flow_id"], outlets=2, usb=True, power_divisor="1")
    assert entry_profile(entry) == known


STRIP_EXTRAS = SimProfile(
    "strip3-extras",
    "strip: 3 outlets, USB 7, indicator 40, child lock 41, overcharge 46, relay status 0/1/2",
    outlets=("1", "2", "3"),
    usb="7",
    countdowns={"1": "9", "2": "10", "3": "11", "7": "15"},
    energy=None,
    settings={
        "38": Setting("2", choices=("0", "1", "2")),
        "40": Setting("relay", choices=("relay", "pos", "none", "on")),
        "41": Setting(False),
        "46": Setting(False),
    },
    readonly={"26": 0},
)


async def test_strip_with_extras_on_the_strip_dps(hass: HomeAssistant) -> None:
    """Indicator on 40, child lock on 41, overcharge on 46, USB countdown on 15."""
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.4",
        dps={"1": True},
        profile=STRIP_EXTRAS,
    ) as sim:
        entry = await add_through_flow(hass, sim)
        profile = Profile.from_wire(entry.data["profile"])
        assert (profile.child_lock, profile.overcharge, profile.fault) == ("41", "46", "26")
        assert profile.indicator is not None
        assert profile.indicator.dp == "40"
        registry = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        keys = {e.unique_id.removeprefix(f"{DEVICE_ID}_") for e in registry}
        assert keys == {
            "switch",
            "switch_2",
            "switch_3",
            "usb",
            "countdown_1",
            "countdown_2",
            "countdown_3",
            "countdown_usb",
            *METERS,
            "power_on",
            "indicator",
            "child_lock",
            "overcharge",
            "fault",
        }
        usb = hass.states.get(entity_id(hass, "switch", "usb"))
        assert usb.attributes["friendly_name"] == "Desk plug USB"
        outlet3 = hass.states.get(entity_id(hass, "switch", "switch_3"))
        assert outlet3.attributes["friendly_name"] == "Desk plug Outlet 3"
        usb_cd = entity_id(hass, "number", "countdown_usb")
        assert hass.states.get(usb_cd).attributes["friendly_name"] == "Desk plug USB countdown"
        await call(hass, "number", "set_value", usb_cd, value=45)
        assert sim.dps["15"] == 45
        overcharge = entity_id(hass, "switch", "overcharge")
        await call(hass, "switch", "turn_on", overcharge)
        assert sim.dps["46"] is True
        await wait_state(hass, overcharge, lambda s: s.state == "on")
        lock = entity_id(hass, "switch", "child_lock")
        await call(hass, "switch", "turn_on", lock)
        assert sim.dps["41"] is True
        power_on = entity_id(hass, "select", "power_on")
        await call(hass, "select", "select_option", power_on, option="on")
        assert sim.dps["38"] == "1"
        await wait_state(hass, power_on, lambda s: s.state == "on")
        indicator = entity_id(hass, "select", "indicator")
        await call(hass, "select", "select_option", indicator, option="none")
        assert sim.dps["40"] == "none"
        assert await hass.config_entries.async_unload(entry.entry_id)


def test_device_model_names_the_outlets() -> None:
    assert plug_model(builtin_profile("legacy")) == "Wi-Fi smart plug"
    assert plug_model(builtin_profile("standard", 1, usb=True)) == "Wi-Fi smart plug with USB"
    assert plug_model(builtin_profile("standard", 3)) == "Wi-Fi power strip (3 outlets)"
    assert plug_model(builtin_profile("standard", 6, usb=True)) == (
        "Wi-Fi power strip (6 outlets + USB)"
    )


def test_options_form_names_the_detected_layout_as_its_selector_does() -> None:
    strings = json.loads(
        (Path(__file__).parent.parent / "custom_components" / DOMAIN / "strings.json").read_text()
    )
    shown = strings["selector"]["layout"]["options"]
    assert {k: v for k, v in LAYOUT_LABELS.items() if k in shown} == {
        k: v for k, v in shown.items() if k not in ("detected", "picked")
    }
    assert layout_summary(builtin_profile("standard", 4, usb=True)) == (
        "Standard (17–20), 4 outlets + USB"
    )
    assert layout_summary(builtin_profile("legacy")) == "Legacy (3–6), 1 outlet"

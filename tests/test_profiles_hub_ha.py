"""Profiles end to end through the hub: the real firmware (MicroPython unix port) serves a
simulated plug of each layout, added through the hub's plug subentry flow; Home Assistant detects
the profile from what the hub reports, gives the hub the profile's lists, and creates exactly the
profile's entities; switching, scaling and an extra work through the hub."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from custom_components.tuya_local_esp import hub_coordinator
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.hub_coordinator import (
    HubCoordinator,
    detection_data,
    hub_profile_lists,
    subentry_profile,
)
from custom_components.tuya_local_esp.profiles import (
    CANDIDATE_METERING_DPS,
    Profile,
    builtin_profile,
    detect_profile,
)
from tuya_sim import SimulatedPlug
from tuya_sim.profiles import PROFILES as SIM_PROFILES
from tuya_sim.profiles import Profile as SimProfile

from .conftest import DEVICE_ID, LOCAL_KEY, wait_until
from .faultproxy import FaultProxy
from .firmware.conftest import ESP32, HubProcess, free_port
from .test_hub_ha import hub_entry, start_add_plug, start_reconfigure_plug
from .test_profiles_ha import CASES, ODD, Case, call, entity_id, platform_of, wait_state

NAME = "Desk plug"
SWITCH_ONLY = SimProfile(
    "switch-only",
    "a plain smart switch: 1 and its countdown 9, no meters",
    energy=None,
    current=None,
    power=None,
    voltage=None,
)
#: The built-in layouts through the hub: (simulator profile, protocol version, expectations).
HUB_CASES: dict[str, tuple[str | SimProfile, str, Case]] = {
    "standard": ("standard", "3.3", CASES["standard"]),
    "strip4": ("strip4", "3.4", CASES["strip4"]),
    "legacy": ("legacy", "3.1", CASES["legacy"]),
    "inwall": ("inwall", "3.3", replace(CASES["inwall"], countdowns={"countdown": "9"})),
    "vendor": ("vendor", "3.5", replace(CASES["vendor"], countdowns={"countdown": "9"})),
    "switch-only": (
        SWITCH_ONLY,
        "3.3",
        Case("switch", frozenset({"switch", "countdown"}), ("1",), countdowns={"countdown": "9"}),
    ),
}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubProcess]:
    proc = HubProcess(tmp_path)
    await proc.start()
    yield proc
    proc.stop()
    proc.assert_no_secrets([LOCAL_KEY])


async def hub_with_no_plugs(hass: HomeAssistant, hub: HubProcess) -> ConfigEntry:
    entry = hub_entry(hub, [])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_until(lambda: entry.runtime_data.hub.hub_connected, within=10)
    return entry


def plug_sim(version: str = "3.3", **kw: Any) -> SimulatedPlug:
    """The plug under test with steady readings (seed 3, no noise); on unless ``dps`` says."""
    return SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version=version,
        seed=3,
        noise=0.0,
        **{"dps": {"1": True}, **kw},
    )


def plug_form(sim: SimulatedPlug, **overrides: Any) -> dict[str, Any]:
    return {
        "device_id": sim.device_id,
        "local_key": LOCAL_KEY,
        "host": "127.0.0.1",
        "protocol_version": sim.version.replace(".", "_"),
        "port": sim.port,
        "name": NAME,
        **overrides,
    }


def coordinator(entry: ConfigEntry) -> HubCoordinator:
    hub: HubCoordinator = entry.runtime_data.hub
    return hub


def plug_sub(entry: ConfigEntry) -> ConfigSubentry:
    return next(s for s in entry.subentries.values() if s.unique_id == DEVICE_ID)


async def add_plug(hass: HomeAssistant, entry: ConfigEntry, sim: SimulatedPlug) -> ConfigSubentry:
    result = await start_add_plug(hass, entry)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], plug_form(sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the entry reloads with the plug's entities
    await wait_until(lambda: coordinator(entry).plug_online(DEVICE_ID), within=15)
    return plug_sub(entry)


def plug_keys(hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry) -> set[str]:
    """The entity keys (unique id without the device id) of the plug's subentry."""
    return {
        e.unique_id.removeprefix(f"{DEVICE_ID}_")
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.config_subentry_id == sub.subentry_id
    }


def number(state: str) -> float | None:
    try:
        return float(state)
    except ValueError:  # unknown, unavailable
        return None


def hub_refresh(entry: ConfigEntry) -> tuple[int, ...] | None:
    inventory = coordinator(entry).client.inventory
    assert inventory is not None
    return inventory.plugs[DEVICE_ID].refresh


async def add_an_inwall_plug_while_off(
    hass: HomeAssistant, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> tuple[ConfigEntry, SimulatedPlug]:
    """A hub entry with no plugs gets an in-wall plug that is off (not started) while added.

    The subentry is created marked for detection (after a short wait for the plug); returns
    the entry and the plug, to be started by the caller.
    """
    monkeypatch.setattr(hub_coordinator, "DETECT_ONLINE_S", 0.5)
    entry = await hub_with_no_plugs(hass, hub)
    port = free_port()
    sim = plug_sim(port=port, profile="inwall")
    result = await start_add_plug(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], plug_form(sim, port=port)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert plug_sub(entry).data["detect_pending"] is True
    return entry, sim


def assert_layout_fields(form: Any) -> None:
    """The layout comes before the fields it governs, as in a direct plug's options form."""
    fields = [str(marker) for marker in form["data_schema"].schema]
    assert fields[fields.index("layout") :] == [
        "layout",
        "outlets",
        "usb",
        "power_divisor",
        "voltage_divisor",
        "outlet_names",
    ]


@pytest.mark.parametrize("name", list(HUB_CASES))
async def test_profile_through_the_hub(hass: HomeAssistant, hub: HubProcess, name: str) -> None:
    sim_profile, version, case = HUB_CASES[name]
    entry = await hub_with_no_plugs(hass, hub)
    async with plug_sim(version, profile=sim_profile) as sim:
        sub = await add_plug(hass, entry, sim)

        # detected from what the hub reported, stored in the subentry
        profile = Profile.from_wire(sub.data["profile"])
        assert profile.name == case.layout
        assert tuple(o.dp for o in profile.outlets) == case.outlets
        assert coordinator(entry).plug_profile(DEVICE_ID) == profile
        meters = {r: m.dp for r, m in profile.meters.items() if r != "energy"}
        if case.layout == "switch":
            assert meters == {}
            assert sub.data["unmatched_dps"] == sorted(sim.dps, key=int)
            issue = ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}")
            assert issue is not None
            assert issue.translation_key == "unknown_layout_hub_plug"
        else:
            assert meters == {
                "current": case.current_dp,
                "power": case.power_dp,
                "voltage": case.voltage_dp,
            }
            assert sub.data["unmatched_dps"] == []
            assert ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}") is None

        # the hub was given the profile: it refreshes the profile's meters, nothing else (a
        # plug whose layout was not recognised keeps being asked for every candidate meter)
        stored = {p["id"]: p for p in json.loads(hub.plugs_path.read_text())["plugs"]}[DEVICE_ID]
        if case.layout == "switch":
            assert hub_refresh(entry) == CANDIDATE_METERING_DPS
            assert stored["refresh"] == list(CANDIDATE_METERING_DPS)
            assert "dps" not in stored
        else:
            assert hub_refresh(entry) == profile.refresh_dps()
            assert stored["refresh"] == list(profile.refresh_dps())
            assert stored["dps"] == sorted(profile.dp_ids(), key=int)
            # (given with the `profile` request: the plug was not re-added)
            assert sim.stats.accepted == 1

        # exactly the profile's entities, on the plug's device under the hub
        assert plug_keys(hass, entry, sub) == set(case.keys)
        for key in case.keys:
            entity_id(hass, platform_of(key), key)
        device = dr.async_get(hass).async_get_device_by_identifier(
            (DOMAIN, DEVICE_ID), entry.entry_id
        )
        assert device is not None
        assert device.model == case.model
        assert device.config_subentry_id == sub.subentry_id

        # values scaled by the profile: 100 W per outlet on, mains ~230 V
        if case.layout != "switch":
            for role, dp, divisor in (
                ("power", case.power_dp, 10),
                ("voltage", case.voltage_dp, 10),
                ("current", case.current_dp, 1000),
            ):
                await wait_state(
                    hass,
                    entity_id(hass, "sensor", role),
                    lambda s, dp=dp, d=divisor: number(s.state) == pytest.approx(sim.dps[dp] / d),
                )
            assert number(hass.states.get(entity_id(hass, "sensor", "power")).state) == 100.0
            volts = number(hass.states.get(entity_id(hass, "sensor", "voltage")).state)
            assert volts is not None
            assert 200 < volts < 260

        # every outlet switches through the hub, confirmed by the plug
        switch_keys = ["switch", *sorted(k for k in case.keys if k.startswith("switch_"))]
        if "usb" in case.keys:
            switch_keys.append("usb")
        assert len(switch_keys) == len(case.outlets)
        for key, dp in zip(switch_keys, case.outlets, strict=True):
            eid = entity_id(hass, "switch", key)
            wanted = not sim.dps[dp]
            await call(hass, "switch", "turn_on" if wanted else "turn_off", eid)
            assert sim.dps[dp] is wanted
            await wait_state(hass, eid, lambda s, w=wanted: s.state == ("on" if w else "off"))

        # an extra: the first countdown, written in the plug's unit and read back in seconds
        cd_key, cd_dp = next(iter(case.countdowns.items()))
        eid = entity_id(hass, "number", cd_key)
        await call(hass, "number", "set_value", eid, value=120)
        assert sim.dps[cd_dp] == 120 // case.countdown_scale
        await wait_state(hass, eid, lambda s: float(s.state) == 120)
        await call(hass, "number", "set_value", eid, value=0)
        assert sim.dps[cd_dp] == 0
        await wait_state(hass, eid, lambda s: float(s.state) == 0)
        if "power_on" in case.keys:  # and the power-on behaviour, in the plug's value set
            select = entity_id(hass, "select", "power_on")
            await call(hass, "select", "select_option", select, option="off")
            assert sim.dps["38"] == "power_off"
            await wait_state(hass, select, lambda s: s.state == "off")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_meters_reported_only_when_asked(hass: HomeAssistant, hub: HubProcess) -> None:
    """The plug's status lacks its meters: the hub's UPDATEDPS of every candidate metering DP
    brings them, and the profile is detected from what that refresh reported."""
    entry = await hub_with_no_plugs(hass, hub)
    async with plug_sim(power_needs_updatedps=True) as sim:
        for dp in ("17", "18", "19", "20"):
            del sim.model.dps[dp]  # reported only once asked for with UPDATEDPS
        sub = await add_plug(hass, entry, sim)
        profile = Profile.from_wire(sub.data["profile"])
        assert profile.name == "standard"
        assert {r: m.dp for r, m in profile.meters.items()} == {
            "energy": "17",
            "current": "18",
            "power": "19",
            "voltage": "20",
        }
        assert hub_refresh(entry) == (17, 18, 19, 20)
        assert plug_keys(hass, entry, sub) == set(CASES["standard"].keys)
        power = entity_id(hass, "sensor", "power")
        await wait_state(hass, power, lambda s: s.state == "100.0", within=10)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_power_divisor_corrected_once_a_load_draws(
    hass: HomeAssistant, hub: HubProcess
) -> None:
    """Added idle behind the hub, a whole-watt plug is read at ÷10; the first load corrects
    the divisor to ÷1 in its subentry, as on the direct path."""
    entry = await hub_with_no_plugs(hass, hub)
    async with plug_sim(dps={"1": False}, profile="power-x1") as sim:
        sub = await add_plug(hass, entry, sim)
        detected = Profile.from_wire(sub.data["profile"])
        assert detected.power is not None
        assert detected.power.divisor == 10
        await call(hass, "switch", "turn_on", entity_id(hass, "switch", "switch"))
        assert sim.dps["1"] is True

        def divisor() -> int | None:
            power = Profile.from_wire(plug_sub(entry).data["profile"]).power
            return power.divisor if power is not None else None

        await wait_until(lambda: divisor() == 1, within=45)  # the plug reports its load
        await hass.async_block_till_done()  # reloaded
        power = entity_id(hass, "sensor", "power")
        await wait_state(hass, power, lambda s: s.state == "100.0", within=15)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_lost_updatedps_is_caught_up_by_the_next_refresh(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Fault: the hub's first UPDATEDPS never reaches a plug whose meters come only when asked.
    Detected without meters (switch only, repair issue), the plug keeps being asked for every
    candidate meter; the next refresh brings them, and it is detected again as standard."""
    # the hub refreshes every 6 s (default 30): its second UPDATEDPS comes after the detection
    # window (2 s after online + up to 2 s) has ended
    hub = HubProcess(tmp_path, refresh_s=6)
    await hub.start()
    try:
        entry = await hub_with_no_plugs(hass, hub)
        async with (
            plug_sim(power_needs_updatedps=True) as sim,
            FaultProxy(sim.port) as proxy,
        ):
            for dp in ("17", "18", "19", "20"):
                del sim.model.dps[dp]
            proxy.lose_up(1, cmds={0x12})
            result = await start_add_plug(hass, entry)
            result = await hass.config_entries.subentries.async_configure(
                result["flow_id"], plug_form(sim, port=proxy.port)
            )
            assert result["type"] is FlowResultType.CREATE_ENTRY
            assert proxy.stats.dropped_up == 1
            assert result["data"]["profile"]["name"] == "switch"
            assert result["data"]["unmatched_dps"] != []
            await hass.async_block_till_done()
            await wait_until(lambda: plug_sub(entry).data["unmatched_dps"] == [], within=20)
            await hass.async_block_till_done()  # reloaded with the standard entities
            sub = plug_sub(entry)
            assert Profile.from_wire(sub.data["profile"]).name == "standard"
            assert ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{DEVICE_ID}") is None
            assert plug_keys(hass, entry, sub) >= {"switch", "voltage", "current", "power"}
            power = entity_id(hass, "sensor", "power")
            await wait_state(hass, power, lambda s: s.state == "100.0", within=15)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        hub.stop()
        hub.assert_no_secrets([LOCAL_KEY])


async def test_a_plug_that_does_not_answer_is_detected_when_it_does(
    hass: HomeAssistant, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Added while it is off: the hub keeps it with the candidate lists and the subentry waits;
    once the plug answers its profile is detected, the hub is given the profile's lists (no
    local key, on the same connection) and the entry reloads with its entities."""
    entry, sim = await add_an_inwall_plug_while_off(hass, hub, monkeypatch)
    sub = plug_sub(entry)
    assert "profile" not in sub.data
    await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
    assert hub_refresh(entry) == CANDIDATE_METERING_DPS
    assert plug_keys(hass, entry, sub) == {"switch", "voltage", "current", "power", "energy"}
    async with sim:
        await wait_until(lambda: "profile" in plug_sub(entry).data, within=20)
        await hass.async_block_till_done()
        sub = plug_sub(entry)
        assert "detect_pending" not in sub.data
        assert Profile.from_wire(sub.data["profile"]).name == "inwall"
        assert plug_keys(hass, entry, sub) == set(CASES["inwall"].keys)
        power = entity_id(hass, "sensor", "power")
        await wait_state(hass, power, lambda s: s.state == "100.0", within=15)

        # the hub has the profile's lists (`profile` request), stored on its flash
        await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
        assert hub_refresh(entry) == (20, 21, 22, 23)
        stored = json.loads(hub.plugs_path.read_text())["plugs"][0]
        assert stored["refresh"] == [20, 21, 22, 23]
        assert stored["dps"] == hub_profile_lists(Profile.from_wire(sub.data["profile"]))[1]
        assert sim.stats.accepted == 1  # given without reconnecting
        # a new name alone needs no key; saving the form with the key re-adds the plug
        change = {
            "name": "Heater",
            "host": "127.0.0.1",
            "protocol_version": "3_3",
            "port": sim.port,
        }
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], change)
        assert result["reason"] == "reconfigure_successful"
        assert plug_sub(entry).title == "Heater"
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**change, "local_key": LOCAL_KEY}
        )
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
        assert hub_refresh(entry) == (20, 21, 22, 23)
        assert "picked_profile" not in plug_sub(entry).data
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_picks_a_layout_for_an_unknown_one(
    hass: HomeAssistant, hub: HubProcess
) -> None:
    """Unknown meters behind the hub: switch only, the repair issue, and the hub keeps asking for
    every candidate meter; the plug's reconfigure step picks a layout (the hub is given its
    lists with the `profile` request: no local key, no reconnection), then divisors alone;
    "detected" removes the choice again (the hub back on the candidate lists)."""
    entry = await hub_with_no_plugs(hass, hub)
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", dps={"1": True}, profile=ODD
    ) as sim:
        sub = await add_plug(hass, entry, sim)
        assert Profile.from_wire(sub.data["profile"]).name == "switch"
        assert sub.data["unmatched_dps"] == ["1", "111", "112", "113"]
        assert plug_keys(hass, entry, sub) == {"switch"}
        assert hub_refresh(entry) == CANDIDATE_METERING_DPS
        issue_id = f"unknown_layout_{DEVICE_ID}"
        issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["dps"] == "1, 111, 112, 113"

        configure = hass.config_entries.subentries.async_configure
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        assert result["step_id"] == "reconfigure"
        assert result["description_placeholders"]["layout"] == "Switch only, 1 outlet"
        assert_layout_fields(result)
        form = {
            "name": NAME,
            "host": "127.0.0.1",
            "protocol_version": "3_3",
            "port": sim.port,
            "layout": "legacy",
            "outlets": 2,
            "usb": False,
            "power_divisor": "10",
            "voltage_divisor": "10",
        }
        result = await configure(result["flow_id"], form)
        assert result["errors"] == {"base": "invalid_layout"}
        form["layout"] = "vendor"
        connections = sim.stats.accepted
        result = await configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        picked = Profile.from_wire(plug_sub(entry).data["picked_profile"])
        assert picked.name == "vendor"
        assert [o.dp for o in picked.switches] == ["1", "2"]
        assert Profile.from_wire(plug_sub(entry).data["profile"]).name == "switch"  # kept
        await wait_until(lambda: coordinator(entry).plug_online(DEVICE_ID), within=15)
        assert coordinator(entry).plug_profile(DEVICE_ID) == picked
        assert hub_refresh(entry) == (101, 102, 103, 104)
        assert sim.stats.accepted == connections
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
        assert plug_keys(hass, entry, sub) == {
            "switch",
            "switch_2",
            "voltage",
            "current",
            "power",
            "energy",
        }

        # the picked layout is the form's default; whole-watt power needs no key
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        schema = result["data_schema"]
        shown = schema({"name": NAME, "host": "127.0.0.1", "protocol_version": "3_3"})
        assert shown["layout"] == "picked"
        result = await configure(
            result["flow_id"], {**form, "layout": "picked", "power_divisor": "1"}
        )
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        repicked = Profile.from_wire(plug_sub(entry).data["picked_profile"])
        assert repicked.power is not None
        assert picked.power is not None
        assert repicked == replace(picked, power=replace(picked.power, divisor=1))

        # back to the detected layout: the hub is given its lists again, issue back
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        result = await configure(result["flow_id"], {**form, "layout": "detected"})
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert "picked_profile" not in plug_sub(entry).data
        await wait_until(lambda: coordinator(entry).plug_online(DEVICE_ID), within=15)
        assert hub_refresh(entry) == CANDIDATE_METERING_DPS
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
        assert coordinator(entry).plug_profile(DEVICE_ID).name == "switch"
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_simulator_profiles_cover_the_hub_cases() -> None:
    assert {p for p, _, _ in HUB_CASES.values() if isinstance(p, str)} <= set(SIM_PROFILES)


def test_hub_lists_and_stored_profiles(caplog: pytest.LogCaptureFixture) -> None:
    strip = builtin_profile("standard", 6, usb=True)
    refresh, dps = hub_profile_lists(strip)
    assert refresh == [17, 18, 19, 20]
    assert dps is not None
    assert dps[:7] == ["1", "2", "3", "4", "5", "6", "7"]
    assert len(dps) <= 32  # the hub's limit (hub-protocol §7.3)
    assert hub_profile_lists(builtin_profile("switch")) == ([], ["1", "9"])
    assert hub_profile_lists(None) == (list(CANDIDATE_METERING_DPS), None)

    legacy = builtin_profile("legacy")
    picked = {"v": 1, "name": "vendor", "sw": ["1"], "pow": "103"}
    assert subentry_profile({"profile": legacy.to_wire()}) == legacy
    assert subentry_profile({"profile": legacy.to_wire(), "picked_profile": picked}) == (
        Profile.from_wire(picked)
    )
    assert subentry_profile({}) is None
    # a profile written by a newer version: logged, the detected one (or none) is used
    newer = {"v": 99, "name": "standard", "sw": ["1"]}
    assert subentry_profile({"picked_profile": newer, "profile": legacy.to_wire()}, "Kettle") == (
        legacy
    )
    assert subentry_profile({"profile": newer}, "Kettle") is None
    assert "Stored profile of Kettle (profile) is unusable" in caplog.text

    nothing = detect_profile({"18": 100, "19": 2300})  # no bool DP: nothing to switch
    assert nothing.profile is None
    assert detection_data(nothing) == {"dp_ids": ["18", "19"], "unmatched_dps": ["18", "19"]}


async def test_a_local_key_the_plug_refuses_is_an_error_in_the_add_form(
    hass: HomeAssistant, hub: HubProcess
) -> None:
    """Add plug with a key the plug refuses: the hub reports the plug's ``fault`` "key"
    (hub-protocol §7.1), the form shows the error on the local key field, the hub no longer
    has the plug and nothing is created; the right key then adds it."""
    entry = await hub_with_no_plugs(hass, hub)
    sim = SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.5", seed=3, dps={"1": True}
    )
    async with sim:
        result = await start_add_plug(hass, entry)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], plug_form(sim, local_key="fedcba9876543210")
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"local_key": "plug_key_refused"}
        assert not [s for s in entry.subentries.values() if s.unique_id == DEVICE_ID]
        inventory = await coordinator(entry).client.refresh_inventory()
        assert DEVICE_ID not in inventory.plugs
        assert sim.stats.bad_key >= 1
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], plug_form(sim)
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY


class FirmwareWithoutProfile(HubProcess):
    """The firmware as 0.2.0 was for this purpose: a copy of ``esp32/`` whose request dispatch
    does not know `profile`, so it answers `unknown_type` (hub-protocol §7.3, §10)."""

    def _firmware_dir(self) -> Path:
        fw = self.workdir / "fw-no-profile"
        if not fw.exists():
            shutil.copytree(ESP32, fw)
            server = fw / "server.py"
            text = server.read_text()
            patched = text.replace(' or t == "profile"', "")
            assert patched != text
            server.write_text(patched)
        return fw


@pytest.fixture
async def old_hub(tmp_path: Path) -> AsyncIterator[HubProcess]:
    proc = FirmwareWithoutProfile(tmp_path)
    await proc.start()
    yield proc
    proc.stop()
    proc.assert_no_secrets([LOCAL_KEY])


async def test_a_hub_without_the_profile_request_gets_the_lists_with_the_key(
    hass: HomeAssistant, old_hub: HubProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A firmware that answers `profile` with `unknown_type`: adding a plug gives the hub the
    profile's lists by removing and adding it again; a layout change in the plug's
    reconfigure step needs the local key (the plug is re-added), as before 0.2.1."""
    caplog.set_level(logging.DEBUG, logger="custom_components.tuya_local_esp")
    entry = await hub_with_no_plugs(hass, old_hub)
    async with plug_sim(profile="legacy") as sim:
        sub = await add_plug(hass, entry, sim)
        profile = Profile.from_wire(sub.data["profile"])
        assert profile.name == "legacy"
        assert hub_refresh(entry) == profile.refresh_dps()
        assert sim.stats.accepted == 2  # removed and added again
        assert "has no profile request" in caplog.text

        configure = hass.config_entries.subentries.async_configure
        form = {
            "name": NAME,
            "host": "127.0.0.1",
            "protocol_version": "3_3",
            "port": sim.port,
            "layout": "vendor",
            "outlets": 1,
            "usb": False,
            "power_divisor": "10",
            "voltage_divisor": "10",
        }
        result = await start_reconfigure_plug(hass, entry, sub.subentry_id)
        result = await configure(result["flow_id"], form)
        assert result["errors"] == {"local_key": "key_required_layout"}
        assert "picked_profile" not in plug_sub(entry).data
        assert hub_refresh(entry) == profile.refresh_dps()
        result = await configure(result["flow_id"], {**form, "local_key": LOCAL_KEY})
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        await wait_until(lambda: coordinator(entry).plug_online(DEVICE_ID), within=15)
        assert hub_refresh(entry) == (101, 102, 103, 104)
        assert Profile.from_wire(plug_sub(entry).data["picked_profile"]).name == "vendor"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hub_without_the_profile_request_keeps_a_pending_plugs_lists(
    hass: HomeAssistant,
    old_hub: HubProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plug added while off, behind a firmware without `profile`: it is detected when it
    answers, without an error, and the hub keeps the candidate lists (as before 0.2.1)."""
    caplog.set_level(logging.DEBUG, logger="custom_components.tuya_local_esp")
    entry, sim = await add_an_inwall_plug_while_off(hass, old_hub, monkeypatch)
    async with sim:
        await wait_until(lambda: "profile" in plug_sub(entry).data, within=20)
        await hass.async_block_till_done()
        assert Profile.from_wire(plug_sub(entry).data["profile"]).name == "inwall"
        await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
        assert hub_refresh(entry) == CANDIDATE_METERING_DPS
        assert sim.stats.accepted == 1
        assert "has no profile request" in caplog.text
        assert "did not take the lists" not in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)

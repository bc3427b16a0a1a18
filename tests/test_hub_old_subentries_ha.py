"""Hub plugs from before profiles (integration < 0.3.0), and outlet names of hub plugs.

The real firmware (MicroPython unix port) serves simulated plugs that it already has, as a hub
set up with an older integration has them (``plugs.json`` without ``refresh``/``dps`` lists);
the hub entry is of version 1.2 with plug subentries as 0.2.x stored them (device id and
protocol version only). The migration to 1.3 marks those for detection: each is detected once
the hub reports it online with DPS, keeping the unique ids of the entities it had; a layout the
user picked is never touched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry, ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.hub_coordinator import (
    HubCoordinator,
    hub_profile_lists,
    never_detected,
)
from custom_components.tuya_local_esp.profiles import Profile, builtin_profile
from tuya_sim import SimulatedPlug

from .conftest import LOCAL_KEY, wait_until
from .firmware.conftest import KEYS, HubProcess, free_port, plug_record
from .test_hub_ha import (
    hub_entry,
    hub_plug_subentry,
    set_up_hub_entry,
    start_reconfigure_plug,
)
from .test_profiles_ha import CASES, call, wait_state
from .test_profiles_hub_ha import assert_layout_fields, number

STRIP_ID = "bfoldstrip0abcdefghij"
PICKED_ID = "bfoldpicked0abcdefghi"
INWALL_ID = "bfoldinwall0abcdefghi"
#: The entities a 0.2.x hub plug had (the standard profile cut to outlet 1 and 18-20, energy
#: integrated from power): (platform, key, object id given here).
OLD_ENTITIES = [
    ("switch", "switch", "old_outlet"),
    ("sensor", "power", "old_power"),
    ("sensor", "current", "old_current"),
    ("sensor", "voltage", "old_voltage"),
    ("sensor", "energy", "old_energy"),
]


def sim(device_id: str, key: str, profile: str, **kw: Any) -> SimulatedPlug:
    """A plug with steady readings (seed 3, no noise), switched on."""
    return SimulatedPlug(
        device_id=device_id,
        local_key=key,
        version="3.3",
        seed=3,
        noise=0.0,
        profile=profile,
        dps={"1": True},
        **kw,
    )


def old_entry(hub: HubProcess, subentries: list[ConfigSubentryData]) -> MockConfigEntry:
    """A hub entry of version 1.2, as integration 0.2.x left it."""
    return hub_entry(hub, [], minor_version=2, subentries=subentries)


def sub_data(entry: ConfigEntry, device_id: str) -> dict[str, Any]:
    return dict(next(s.data for s in entry.subentries.values() if s.unique_id == device_id))


def sub_id(entry: ConfigEntry, device_id: str) -> str:
    return next(s.subentry_id for s in entry.subentries.values() if s.unique_id == device_id)


def register_old_entities(hass: HomeAssistant, entry: ConfigEntry, device_id: str) -> None:
    """The registry entries a 0.2.x hub plug had, on its subentry (entry version 1.2)."""
    registry = er.async_get(hass)
    for platform, key, object_id in OLD_ENTITIES:
        registry.async_get_or_create(
            platform,
            DOMAIN,
            f"{device_id}_{key}",
            config_entry=entry,
            config_subentry_id=sub_id(entry, device_id),
            suggested_object_id=f"{object_id}_{device_id[6:11]}",
        )


def plug_keys(hass: HomeAssistant, entry: ConfigEntry, device_id: str) -> set[str]:
    """The entity keys (unique id without the device id) of the plug's subentry."""
    subentry_id = sub_id(entry, device_id)
    return {
        e.unique_id.removeprefix(f"{device_id}_")
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.config_subentry_id == subentry_id
    }


def eid(hass: HomeAssistant, platform: str, device_id: str, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{device_id}_{key}")
    assert found is not None, f"no {platform} {key}"
    return found


async def set_up_old_plug(
    hass: HomeAssistant, hub: HubProcess, device_id: str, name: str
) -> tuple[MockConfigEntry, str]:
    """A 1.2 hub entry with one 0.2.x plug and its entities, set up (migrated to 1.3).

    Returns the entry and the entity id of the plug's power sensor.
    """
    entry = old_entry(hub, [hub_plug_subentry(device_id, name)])
    entry.add_to_hass(hass)
    register_old_entities(hass, entry, device_id)
    power = eid(hass, "sensor", device_id, "power")
    await set_up_hub_entry(hass, entry)
    return entry, power


def coordinator(entry: ConfigEntry) -> HubCoordinator:
    hub: HubCoordinator = entry.runtime_data.hub
    return hub


@pytest.fixture
async def strip_and_picked(tmp_path: Path) -> AsyncIterator[tuple[HubProcess, SimulatedPlug]]:
    """A hub that has a 4-outlet strip (with USB) and a standard plug since before 0.3.0."""
    async with (
        sim(STRIP_ID, KEYS[0], "strip4") as strip,
        sim(PICKED_ID, KEYS[1], "standard") as picked,
    ):
        hub = HubProcess(
            tmp_path,
            plugs=[plug_record(strip, "Old strip"), plug_record(picked, "Picked plug")],
        )
        await hub.start()
        try:
            yield hub, strip
        finally:
            hub.stop()
            hub.assert_no_secrets([KEYS[0], KEYS[1]])


async def test_an_old_strip_gets_all_outlets_and_a_picked_layout_is_kept(
    hass: HomeAssistant, strip_and_picked: tuple[HubProcess, SimulatedPlug]
) -> None:
    """0.2.x subentries: the strip's is marked by the migration and detected once the hub
    reports it (4 outlets, USB, meters), its old entities keep their unique ids and entity ids;
    the plug whose layout the user picked is left as it was. Then the strip's outlets are
    named in its reconfigure step (no local key: the hub is not involved)."""
    hub, strip = strip_and_picked
    picked = builtin_profile("vendor").to_wire()
    entry = old_entry(
        hub,
        [
            hub_plug_subentry(STRIP_ID, "Old strip"),
            hub_plug_subentry(PICKED_ID, "Picked plug", picked_profile=picked),
        ],
    )
    entry.add_to_hass(hass)
    register_old_entities(hass, entry, STRIP_ID)
    old_ids = {
        key: er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{STRIP_ID}_{key}")
        for platform, key, _ in OLD_ENTITIES
    }
    picked_before = sub_data(entry, PICKED_ID)

    await set_up_hub_entry(hass, entry)
    assert (entry.version, entry.minor_version) == (1, 3)
    await wait_until(lambda: "profile" in sub_data(entry, STRIP_ID), within=30)
    await hass.async_block_till_done()  # reloaded with the strip's entities
    data = sub_data(entry, STRIP_ID)
    assert "detect_pending" not in data
    assert data["unmatched_dps"] == []
    profile = Profile.from_wire(data["profile"])
    assert profile.name == "standard"
    assert [o.dp for o in profile.switches] == ["1", "2", "3", "4"]
    assert profile.usb is not None
    assert {r: m.dp for r, m in profile.meters.items() if r != "energy"} == {
        "current": "18",
        "power": "19",
        "voltage": "20",
    }
    await wait_until(lambda: coordinator(entry).plug_online(STRIP_ID), within=15)
    assert coordinator(entry).plug_profile(STRIP_ID) == profile
    assert plug_keys(hass, entry, STRIP_ID) == set(CASES["strip4"].keys)
    # the old entities are the same registry entries (history, Energy dashboard)
    for platform, key, _ in OLD_ENTITIES:
        assert eid(hass, platform, STRIP_ID, key) == old_ids[key]
    # the hub was given the profile's lists (the `profile` request: no local key needed)
    inventory = coordinator(entry).client.inventory
    assert inventory is not None
    assert list(inventory.plugs[STRIP_ID].refresh or ()) == hub_profile_lists(profile)[0]
    stored = {p["id"]: p for p in json.loads(hub.plugs_path.read_text())["plugs"]}
    assert stored[STRIP_ID]["refresh"] == hub_profile_lists(profile)[0]
    assert stored[STRIP_ID]["dps"] == hub_profile_lists(profile)[1]
    assert "refresh" not in stored[PICKED_ID]  # a picked layout: the hub is left alone

    # the picked layout was not touched: not marked, not detected, and it is what is used
    assert sub_data(entry, PICKED_ID) == picked_before
    assert coordinator(entry).plug_profile(PICKED_ID) == Profile.from_wire(picked)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"unknown_layout_{PICKED_ID}") is None

    # every outlet and the USB switch work through the hub; the meters read
    for key, dp in (("switch", "1"), ("switch_3", "3"), ("usb", "7")):
        entity = eid(hass, "switch", STRIP_ID, key)
        await wait_state(hass, entity, lambda s: s.state in ("on", "off"), within=15)
        wanted = not strip.dps[dp]
        await call(hass, "switch", "turn_on" if wanted else "turn_off", entity)
        assert strip.dps[dp] is wanted
        await wait_state(hass, entity, lambda s, w=wanted: s.state == ("on" if w else "off"))
    volts = old_ids["voltage"]
    assert volts is not None
    await wait_state(hass, volts, lambda s: 200 < (number(s.state) or 0) < 260, within=15)

    # outlet names in the reconfigure step, as a direct plug's options have them
    configure = hass.config_entries.subentries.async_configure
    result = await start_reconfigure_plug(hass, entry, sub_id(entry, STRIP_ID))
    assert_layout_fields(result)
    form = {
        "name": "Old strip",
        "host": "127.0.0.1",
        "protocol_version": "3_3",
        "port": strip.port,
        "layout": "detected",
        "outlets": 4,
        "usb": True,
        "power_divisor": "10",
        "voltage_divisor": "10",
        "outlet_names": " Lamp, , TV ",
    }
    result = await configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()  # reloaded
    data = sub_data(entry, STRIP_ID)
    assert data["outlet_names"] == ["Lamp", "", "TV"]
    assert "picked_profile" not in data  # names are no layout choice

    def friendly(key: str) -> str:
        state = hass.states.get(eid(hass, "switch", STRIP_ID, key))
        return str(state.attributes.get("friendly_name")) if state is not None else ""

    await wait_until(lambda: friendly("switch") == "Old strip Lamp", within=10)
    assert friendly("switch_2") == "Old strip Outlet 2"
    assert friendly("switch_3") == "Old strip TV"
    assert friendly("switch_4") == "Old strip Outlet 4"
    assert eid(hass, "switch", STRIP_ID, "switch") == old_ids["switch"]
    # the form suggests them again; a cleared field (the frontend leaves it out) removes them
    result = await start_reconfigure_plug(hass, entry, sub_id(entry, STRIP_ID))
    marker = next(k for k in result["data_schema"].schema if k == "outlet_names")
    assert marker.description == {"suggested_value": "Lamp, , TV"}
    assert "outlet_names" not in result["data_schema"](
        {"name": "Old strip", "host": "127.0.0.1", "protocol_version": "3_3"}
    )  # a suggestion, not a default that would bring the names back
    result = await configure(
        result["flow_id"], {k: v for k, v in form.items() if k != "outlet_names"}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert "outlet_names" not in sub_data(entry, STRIP_ID)
    await wait_until(lambda: friendly("switch") == "Old strip Outlet 1", within=10)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_old_plug_offline_at_start_up_is_detected_when_it_first_reports(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """An in-wall module (meters on 20-23) from before 0.3.0, off while Home Assistant starts:
    it keeps the old entities, marked for detection; once it reports through the hub it is
    detected, its readings show on the power sensor it always had, and nothing is detected
    again after a restart of the entry."""
    port = free_port()
    plug = sim(INWALL_ID, LOCAL_KEY, "inwall", port=port)
    hub = HubProcess(tmp_path, plugs=[plug_record(plug, "Wall switch")])
    await hub.start()
    try:
        entry, power = await set_up_old_plug(hass, hub, INWALL_ID, "Wall switch")
        assert (entry.version, entry.minor_version) == (1, 3)
        assert sub_data(entry, INWALL_ID)["detect_pending"] is True
        await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
        assert not coordinator(entry).plug_online(INWALL_ID)
        assert plug_keys(hass, entry, INWALL_ID) == {key for _, key, _ in OLD_ENTITIES}
        async with plug:
            await wait_until(lambda: "profile" in sub_data(entry, INWALL_ID), within=30)
            await hass.async_block_till_done()  # reloaded with the in-wall entities
            data = sub_data(entry, INWALL_ID)
            assert "detect_pending" not in data
            assert Profile.from_wire(data["profile"]).name == "inwall"
            assert plug_keys(hass, entry, INWALL_ID) >= {key for _, key, _ in OLD_ENTITIES}
            assert eid(hass, "sensor", INWALL_ID, "power") == power
            await wait_state(hass, power, lambda s: s.state == "100.0", within=15)

            # detected once: a reload keeps the stored profile and marks nothing
            assert await hass.config_entries.async_reload(entry.entry_id)
            await hass.async_block_till_done()
            assert sub_data(entry, INWALL_ID) == data
            await wait_state(hass, power, lambda s: s.state == "100.0", within=15)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        hub.stop()
        hub.assert_no_secrets([LOCAL_KEY])


QUIET_ID = "bfoldquiet00abcdefghi"


@pytest.mark.parametrize(
    ("layout", "meters"),
    [
        ("legacy", {"current": "4", "power": "5", "voltage": "6"}),
        ("vendor", {"current": "102", "power": "103", "voltage": "104"}),
    ],
)
async def test_an_old_plug_reporting_its_meters_only_when_asked_is_detected_fully(
    hass: HomeAssistant, tmp_path: Path, layout: str, meters: dict[str, str]
) -> None:
    """A plug from before 0.3.0 whose status holds no meters: it reports them only when asked
    with UPDATEDPS, on DPs the hub's old default list (18/19/20) never asks for. The hub is
    given every candidate meter to refresh before the detection (`profile` request, no local
    key), so the layout is detected with its meters, and then the profile's own lists; the
    power sensor the plug always had reads through them."""
    plug = sim(QUIET_ID, KEYS[2], layout, power_needs_updatedps=True)
    for dp in plug.model.refresh_dps:  # nothing metered until asked
        del plug.model.dps[dp]
    async with plug:
        hub = HubProcess(tmp_path, plugs=[plug_record(plug, "Quiet plug")])
        await hub.start()
        try:
            entry, power = await set_up_old_plug(hass, hub, QUIET_ID, "Quiet plug")
            await wait_until(lambda: "profile" in sub_data(entry, QUIET_ID), within=30)
            await hass.async_block_till_done()  # reloaded with the detected entities
            data = sub_data(entry, QUIET_ID)
            assert "detect_pending" not in data
            assert data["unmatched_dps"] == []
            profile = Profile.from_wire(data["profile"])
            assert profile.name == layout
            assert {r: m.dp for r, m in profile.meters.items() if r != "energy"} == meters
            refresh, dps = hub_profile_lists(profile)
            await wait_until(lambda: coordinator(entry).client.inventory is not None, within=10)
            inventory = coordinator(entry).client.inventory
            assert inventory is not None
            assert list(inventory.plugs[QUIET_ID].refresh or ()) == refresh
            stored = json.loads(hub.plugs_path.read_text())["plugs"][0]
            assert (stored["refresh"], stored["dps"]) == (refresh, dps)
            assert eid(hass, "sensor", QUIET_ID, "power") == power
            await wait_state(hass, power, lambda s: s.state == "100.0", within=15)
            assert await hass.config_entries.async_unload(entry.entry_id)
        finally:
            hub.stop()
            hub.assert_no_secrets([KEYS[2]])


def test_only_subentries_without_any_profile_state_are_marked() -> None:
    old = {"device_id": STRIP_ID, "protocol_version": "3.3"}
    assert never_detected(old)
    wire = builtin_profile("standard").to_wire()
    for extra in (
        {"profile": wire, "dp_ids": ["1"], "unmatched_dps": []},  # detected (0.3.0)
        {"dp_ids": ["18", "19"], "unmatched_dps": ["18", "19"]},  # detected, no profile
        {"picked_profile": wire},  # the user's choice
        {"detect_pending": True},  # added while off (0.3.0)
    ):
        assert not never_detected({**old, **extra})

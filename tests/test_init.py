"""The integration end to end against the simulator: entities, switching, pushes, availability."""

from __future__ import annotations

import asyncio

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache_with_extra_data,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.diagnostics import async_get_config_entry_diagnostics
from custom_components.tuya_local_esp.sensor import PlugEnergySensor
from tuya_sim import SimulatedPlug

from .conftest import DEVICE_ID, LOCAL_KEY, entry_data, wait_for_state, wait_until
from .ha_snapshots import assert_entry_snapshot

SWITCH = "switch.desk_plug"


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for_state(hass, SWITCH, "on")


async def test_entities_and_values(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    dps = plug_sim.dps
    assert float(hass.states.get("sensor.desk_plug_voltage").state) == pytest.approx(dps["20"] / 10)
    assert float(hass.states.get("sensor.desk_plug_current").state) == pytest.approx(
        dps["18"] / 1000
    )
    assert float(hass.states.get("sensor.desk_plug_power").state) == pytest.approx(dps["19"] / 10)
    power = hass.states.get("sensor.desk_plug_power")
    assert power.attributes["unit_of_measurement"] == "W"
    assert power.attributes["device_class"] == "power"
    assert power.attributes["state_class"] == "measurement"
    energy = hass.states.get("sensor.desk_plug_energy")
    assert energy.attributes["unit_of_measurement"] == "kWh"
    assert energy.attributes["state_class"] == "total_increasing"
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, DEVICE_ID), mock_entry.entry_id
    )
    assert device is not None
    assert device.name == "Desk plug"
    assert device.manufacturer == "Tuya"
    entities = er.async_entries_for_config_entry(er.async_get(hass), mock_entry.entry_id)
    assert {e.unique_id for e in entities} == {
        f"{DEVICE_ID}_{k}" for k in ("switch", "voltage", "current", "power", "energy")
    }
    assert await hass.config_entries.async_unload(mock_entry.entry_id)
    assert mock_entry.state is ConfigEntryState.NOT_LOADED
    async with asyncio.timeout(10):
        await plug_sim.wait_connections(0)


async def test_switching_is_confirmed_by_the_plug(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    assert hass.states.get(SWITCH).state == "off"
    assert plug_sim.dps["1"] is False
    assert float(hass.states.get("sensor.desk_plug_power").state) == 0
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    assert hass.states.get(SWITCH).state == "on"
    assert plug_sim.dps["1"] is True


async def test_local_button_push_updates_state(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    plug_sim.set_dps_local({"1": False})
    await wait_for_state(hass, SWITCH, "off")
    plug_sim.set_dps_local({"1": True})
    await wait_for_state(hass, SWITCH, "on")


async def test_unavailable_while_unreachable_and_back_by_itself(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    coordinator = mock_entry.runtime_data.source
    coordinator.device.reconnect_min = 0.05
    coordinator.device.reconnect_max = 0.1
    await plug_sim.stop()
    await wait_for_state(hass, SWITCH, "unavailable")
    assert hass.states.get("sensor.desk_plug_power").state == "unavailable"
    await plug_sim.start()
    await wait_for_state(hass, SWITCH, "on")
    assert hass.states.get("sensor.desk_plug_power").state != "unavailable"
    # an unreachable plug is no reason to ask for a new key
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []


async def test_safety_poll(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    coordinator = mock_entry.runtime_data.source
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert coordinator.data[DEVICE_ID]["20"] == plug_sim.dps["20"]
    await plug_sim.stop()
    await wait_for_state(hass, SWITCH, "unavailable")
    await coordinator.async_refresh()
    assert not coordinator.last_update_success


async def test_sensors_only_for_reported_dps(hass: HomeAssistant, plug_sim: SimulatedPlug) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=DEVICE_ID, data=entry_data(plug_sim, dp_ids=["1", "9"])
    )
    await setup_entry(hass, entry)
    assert hass.states.get("sensor.desk_plug_power") is None
    assert hass.states.get("sensor.desk_plug_energy") is None


async def test_energy_integrates_power(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    sensor = next(
        e
        for e in hass.data["sensor"].entities
        if isinstance(e, PlugEnergySensor) and e.device_id == DEVICE_ID
    )
    watts = plug_sim.dps["19"] / 10
    start = sensor.native_value
    sensor._last = (0.0, watts)
    sensor._integrate(now=240.0)  # four minutes at that power
    expected = start + watts * 240 / 3_600_000
    assert sensor.native_value == pytest.approx(expected, abs=1e-6)
    sensor._integrate(now=240.0 + 1000)  # a gap too long to trust is not integrated
    assert sensor.native_value == pytest.approx(expected, abs=1e-6)


async def test_diagnostics_redact_the_local_key(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    diag = await async_get_config_entry_diagnostics(hass, mock_entry)
    assert diag["entry"]["local_key"] == "**REDACTED**"
    assert LOCAL_KEY not in repr(diag)
    assert diag["plugs"][DEVICE_ID]["online"] is True
    assert diag["connection"]["connect_count"] >= 1


async def test_setup_does_not_wait_for_an_unreachable_plug(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await plug_sim.stop()
    mock_entry.add_to_hass(hass)
    async with asyncio.timeout(5):  # the reconnect runs in the background
        assert await hass.config_entries.async_setup(mock_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_entry.state is ConfigEntryState.LOADED
    assert hass.states.get(SWITCH).state == "unavailable"
    mock_entry.runtime_data.source.device.reconnect_min = 0.05
    await plug_sim.start()
    await wait_for_state(hass, SWITCH, "on")


async def test_switch_failure_raises_translated_error(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    await setup_entry(hass, mock_entry)
    mock_entry.runtime_data.source.device.timeout = 0.3
    plug_sim.max_time_skew = -1  # the plug now ignores every command (stale timestamp)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: SWITCH}, blocking=True
        )
    assert err.value.translation_key == "set_failed"
    assert "did not confirm" in str(err.value)
    assert LOCAL_KEY not in str(err.value)
    assert hass.states.get(SWITCH).state == "on"  # nothing optimistic
    assert plug_sim.dps["1"] is True
    plug_sim.max_time_skew = 3600
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    assert hass.states.get(SWITCH).state == "off"


async def test_repaired_plug_asks_for_its_new_key(
    hass: HomeAssistant, plug_sim: SimulatedPlug, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plug was paired again: its local key changed; a reauth flow asks for the new one."""
    monkeypatch.setattr("custom_components.tuya_local_esp.coordinator.REQUEST_TIMEOUT", 0.2)
    monkeypatch.setattr("custom_components.tuya_local_esp.flow_probes.REQUEST_TIMEOUT", 0.2)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=DEVICE_ID,
        title="Desk plug",
        data=entry_data(plug_sim, local_key="old-key-01234567"),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    # no refresh is asked for: the failures themselves lead to the reauth flow, within 30 s
    await wait_until(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)), 30)
    assert entry.runtime_data.source.device.key_failures >= 2
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    flow_id = flows[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"local_key": "another-wrong-ke"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, {"local_key": LOCAL_KEY})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["local_key"] == LOCAL_KEY
    await wait_for_state(hass, SWITCH, "on")


async def test_energy_total_survives_a_restart(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.desk_plug_energy", "12.5"),
                {"native_value": 12.5, "native_unit_of_measurement": "kWh"},
            )
        ],
    )
    await setup_entry(hass, mock_entry)
    assert float(hass.states.get("sensor.desk_plug_energy").state) >= 12.5


async def test_entities_of_a_direct_plug(
    hass: HomeAssistant,
    plug_sim: SimulatedPlug,
    mock_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Device, entity registry entries and states of a plug reached directly."""
    # no power refresh: the readings stay those of the first status (seeded simulator)
    monkeypatch.setattr("custom_components.tuya_local_esp.coordinator.POWER_REFRESH_SECONDS", 0)
    await setup_entry(hass, mock_entry)
    await wait_for_state(hass, "sensor.desk_plug_power", str(plug_sim.dps["19"] / 10))
    assert_entry_snapshot(hass, mock_entry.entry_id, snapshot)


async def test_a_report_rewrites_only_the_entities_it_changes(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    """A voltage push rewrites the voltage sensor only; a repeated power value rewrites nothing."""
    await setup_entry(hass, mock_entry)
    mock_entry.runtime_data.source.device.refresh_interval = 0  # only our pushes from here on
    before = {e: hass.states.get(e) for e in (SWITCH, "sensor.desk_plug_power")}
    voltage = plug_sim.dps["20"] + 17
    plug_sim.set_dps_local({"20": voltage})
    await wait_for_state(hass, "sensor.desk_plug_voltage", str(voltage / 10))
    plug_sim.push({"19": plug_sim.dps["19"], "20": voltage + 1})  # power reported, unchanged
    await wait_for_state(hass, "sensor.desk_plug_voltage", str((voltage + 1) / 10))
    for entity_id, state in before.items():
        now = hass.states.get(entity_id)
        assert now.state == state.state
        assert now.last_reported == state.last_reported, f"{entity_id} was rewritten"
    plug_sim.set_dps_local({"1": False})  # the switch still hears its own DP
    await wait_for_state(hass, SWITCH, "off")

"""Hub mode end to end: Home Assistant talks to the real firmware (MicroPython unix port) over
loopback, and the firmware talks to simulated plugs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import (
    SOURCE_DHCP,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigEntryState,
    ConfigSubentryData,
)
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.tuya_local_esp import flow_hub_plugs, hub_coordinator
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.diagnostics import async_get_config_entry_diagnostics
from custom_components.tuya_local_esp.discovery import DISCOVERY
from custom_components.tuya_local_esp.hub_coordinator import HubCoordinator
from tuya_sim import SimulatedPlug
from tuya_sim.udp import encode_broadcast

from .conftest import wait_for_state, wait_until
from .firmware.conftest import KEYS, SECRET, HubProcess, free_port, plug_record
from .ha_snapshots import assert_entry_snapshot

HUB_ID = "testhub"


@pytest.fixture
async def plugs() -> AsyncIterator[list[SimulatedPlug]]:
    """Two simulated plugs, switched on (also used by ``test_hub_recovery_ha``)."""
    sims = [
        SimulatedPlug(
            device_id=f"bfhubplug{i:02d}abcdefghij", local_key=KEYS[i], seed=i, dps={"1": True}
        )
        for i in range(2)
    ]
    for sim in sims:
        await sim.start()
    yield sims
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def hub(tmp_path: Path, plugs: list[SimulatedPlug]) -> AsyncIterator[HubProcess]:
    """The firmware serving ``plugs`` (also used by ``test_hub_recovery_ha``)."""
    proc = HubProcess(
        tmp_path, plugs=[plug_record(s, name=f"Hub plug {i}") for i, s in enumerate(plugs)]
    )
    await proc.start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            os.kill(proc.proc.pid, signal.SIGCONT)  # a test that stopped it may have failed
        proc.stop()
    proc.assert_no_secrets()


def hub_input(hub: HubProcess, **overrides: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": hub.port, "secret": SECRET, **overrides}


def hub_plug_subentry(
    device_id: str, name: str, version: str = "3.3", **data: Any
) -> ConfigSubentryData:
    """A hub plug's subentry: device id and protocol version (as 0.2.x stored it), ``data``."""
    return ConfigSubentryData(
        data={"device_id": device_id, "protocol_version": version, **data},
        subentry_type="plug",
        title=name,
        unique_id=device_id,
    )


def entry_at(
    port: int,
    subentries: Sequence[ConfigSubentryData],
    *,
    secret: str = SECRET,
    hub_id: str = HUB_ID,
    minor_version: int = 3,
) -> MockConfigEntry:
    """A hub entry at ``127.0.0.1:port`` as the flow creates it, with ``subentries``.

    ``minor_version``: an older entry's (Home Assistant migrates it at set-up).
    """
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=hub_id,
        title=f"Tuya ESP32 hub {hub_id}",
        version=1,
        minor_version=minor_version,
        data={
            "transport": "hub",
            "host": "127.0.0.1",
            "port": port,
            "secret": secret,
            "hub_id": hub_id,
        },
        subentries_data=list(subentries),
    )


def hub_entry(
    hub: HubProcess,
    plugs: list[dict[str, str]],
    *,
    minor_version: int = 3,
    subentries: Sequence[ConfigSubentryData] = (),
) -> MockConfigEntry:
    """The entry of ``hub`` with one subentry per ``{"id", "name", "ver"}``, then ``subentries``."""
    return entry_at(
        hub.port,
        [*(hub_plug_subentry(p["id"], p["name"], p["ver"]) for p in plugs), *subentries],
        minor_version=minor_version,
    )


def plug_subentry_id(entry: ConfigEntry, device_id: str) -> str:
    return next(s.subentry_id for s in entry.subentries.values() if s.unique_id == device_id)


async def start_reconfigure_plug(hass: HomeAssistant, entry: ConfigEntry, sub_id: str) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, "plug"), context={"source": SOURCE_RECONFIGURE, "subentry_id": sub_id}
    )


async def start_add_plug(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "plug"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result


async def set_up_hub_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set up a hub entry and wait until it is loaded: a plug the hub reports without a
    subentry (or a subentry the hub lacks) changes the subentries as soon as the hub answers,
    and that change reloads the entry, which may begin before the set-up call returns."""
    if hass.config_entries.async_get_entry(entry.entry_id) is None:
        entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_until(lambda: entry.state is ConfigEntryState.LOADED, 15)


async def add_hub(hass: HomeAssistant, hub: HubProcess) -> MockConfigEntry:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "hub"}
    )
    assert result["step_id"] == "hub"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: MockConfigEntry = result["result"]
    await wait_detected(hass, entry)
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=10)
    return entry


async def wait_detected(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Wait until the plugs the hub had are detected (their subentries were made from its
    inventory, ``detect_pending``) and the entry has reloaded with their profiles."""
    await wait_until(
        lambda: all("detect_pending" not in s.data for s in entry.subentries.values()), 20
    )
    await hass.async_block_till_done()
    await wait_until(lambda: entry.state is ConfigEntryState.LOADED, 15)


async def test_hub_flow_errors_then_plugs_as_devices(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "hub"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], hub_input(hub, secret="not-the-hub-secret")
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], hub_input(hub, port=free_port())
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == HUB_ID
    entry = result["result"]
    assert "plugs" not in entry.data  # one subentry per plug instead
    assert sorted((s.unique_id, s.title) for s in entry.subentries.values()) == [
        (p.device_id, f"Hub plug {i}") for i, p in enumerate(plugs)
    ]
    await wait_detected(hass, entry)
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
    registry = dr.async_get(hass)
    hub_device = registry.async_get_device_by_identifier((DOMAIN, HUB_ID), entry.entry_id)
    assert hub_device is not None
    plug_device = registry.async_get_device_by_identifier(
        (DOMAIN, plugs[0].device_id), entry.entry_id
    )
    assert plug_device is not None
    assert plug_device.via_device_id == hub_device.id
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
    assert float(hass.states.get("sensor.hub_plug_0_voltage").state) == pytest.approx(
        plugs[0].dps["20"] / 10
    )
    firmware = hass.states.get("sensor.tuya_esp32_hub_testhub_firmware_version")
    assert firmware is not None
    assert firmware.state not in ("unknown", "unavailable")
    await entry.runtime_data.source.async_refresh()
    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert diag["entry"]["secret"] == "**REDACTED**"
    assert diag["hub"]["connected"] is True
    assert diag["hub"]["health"]["plugs_online"] == 2
    assert SECRET not in repr(diag)
    assert all(key not in repr(diag) for key in KEYS)


async def test_switching_and_pushes_through_the_hub(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    await add_hub(hass, hub)
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: "switch.hub_plug_0"}, blocking=True
    )
    assert hass.states.get("switch.hub_plug_0").state == "off"
    assert plugs[0].dps["1"] is False
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: "switch.hub_plug_0"}, blocking=True
    )
    assert plugs[0].dps["1"] is True
    plugs[1].set_dps_local({"1": False})  # the button on the plug
    await wait_for_state(hass, "switch.hub_plug_1", "off")
    # the plug also broadcasts on the LAN: it is behind the hub already, so it is not offered
    discovery = hass.data[DISCOVERY]
    info = {"ip": "127.0.0.1", "gwId": plugs[0].device_id, "version": "3.3"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, "3.3"), ("127.0.0.1", discovery.listener.bound_ports[1]))
    await wait_until(lambda: plugs[0].device_id in discovery.listener.devices)
    await hass.async_block_till_done()
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []


async def test_hub_restart_and_plug_loss(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    entry = await add_hub(hass, hub)
    coordinator = entry.runtime_data.source
    coordinator.client.backoff_max = 0.5
    uptime_id = "sensor.tuya_esp32_hub_testhub_uptime"
    # up for 2 s at least (its health read again until then): its restart is then seen as one
    async with asyncio.timeout(30):
        while coordinator.health is None or coordinator.health.uptime_s < 2:
            await asyncio.sleep(0.2)
            await coordinator.async_refresh()
    await hass.async_block_till_done()
    before = hass.states.get(uptime_id).state
    shown: list[str] = []
    async_track_state_change_event(
        hass, uptime_id, lambda event: shown.append(event.data["new_state"].state)
    )
    hub.stop()
    await wait_for_state(hass, "switch.hub_plug_0", "unavailable")
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "off")
    await hub.start()
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=15)
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
    # the start time: unavailable while the hub is away, then its new start time (seconds
    # after the first: the uptime went down), never the old one again (found in a UI walk)
    await wait_until(lambda: bool(shown) and shown[-1] != "unavailable", 15)
    assert shown[0] == "unavailable"
    assert before not in shown
    assert len(shown) == 2
    # one plug goes away: only its entities go unavailable, and come back with it
    await plugs[1].stop()
    await wait_for_state(hass, "switch.hub_plug_1", "unavailable", within=10)
    assert hass.states.get("switch.hub_plug_0").state == "on"
    await plugs[1].start()
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=15)


async def test_plug_subentries_add_reconfigure_and_remove(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """ "Add plug" on the hub's page, then change the plug, then delete its subentry."""
    entry = await add_hub(hass, hub)
    async with SimulatedPlug(  # a 3.5 plug: the firmware does AES-GCM itself
        device_id="bfnewplug00abcdefghij", local_key=KEYS[5], version="3.5", dps={"1": True}
    ) as new:
        result = await start_add_plug(hass, entry)
        form = {
            "device_id": new.device_id,
            "local_key": "short",
            "host": "127.0.0.1",
            "protocol_version": "3_5",
            "port": new.port,
            "name": "New plug",
        }
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
        assert result["errors"] == {"local_key": "invalid_local_key"}
        form["local_key"] = KEYS[5]
        form["device_id"] = plugs[0].device_id
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
        assert result["errors"] == {"base": "already_on_hub"}
        form["device_id"] = new.device_id
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["title"] == "New plug"
        await wait_for_state(hass, "switch.new_plug", "on", within=15)
        sub_id = plug_subentry_id(entry, new.device_id)
        data = entry.subentries[sub_id].data
        assert (data["device_id"], data["protocol_version"]) == (new.device_id, "3.5")
        assert data["profile"]["name"] == "standard"  # detected: tests/test_profiles_hub_ha.py
        assert new.device_id in hub.plugs_path.read_text()  # the hub persisted it
        # its entities and device belong to its subentry
        ent = er.async_get(hass).async_get("switch.new_plug")
        assert ent is not None
        assert ent.config_subentry_id == sub_id
        device = dr.async_get(hass).async_get_device_by_identifier(
            (DOMAIN, new.device_id), entry.entry_id
        )
        assert device is not None
        assert device.config_subentry_id == sub_id

        # reconfigure: a wrong local key, a version without the key, then a new name
        result = await start_reconfigure_plug(hass, entry, sub_id)
        assert result["step_id"] == "reconfigure"
        change = {"name": "Renamed plug", "host": "127.0.0.1", "protocol_version": "3_5"}
        change["port"] = new.port
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**change, "local_key": "short"}
        )
        assert result["errors"] == {"local_key": "invalid_local_key"}
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**change, "protocol_version": "3_4"}
        )
        assert result["errors"] == {"local_key": "key_required"}
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], change)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.subentries[sub_id].title == "Renamed plug"
        registry = dr.async_get(hass)
        await wait_until(  # the entry reloads; entity ids stay, the device takes the name
            lambda: (
                (
                    d := registry.async_get_device_by_identifier(
                        (DOMAIN, new.device_id), entry.entry_id
                    )
                )
                is not None
                and d.name == "Renamed plug"
            ),
            10,
        )
        await wait_for_state(hass, "switch.new_plug", "on", within=15)
        # a new local key re-adds the plug on the hub
        result = await start_reconfigure_plug(hass, entry, sub_id)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**change, "local_key": KEYS[5]}
        )
        assert result["reason"] == "reconfigure_successful"
        assert plug_subentry_id(entry, new.device_id) == sub_id
        assert new.device_id in hub.plugs_path.read_text()
        await wait_for_state(hass, "switch.new_plug", "on", within=15)

        # heard on the LAN while the hub serves it: not offered
        assert await async_setup_component(hass, DOMAIN, {})
        discovery = hass.data[DISCOVERY]
        info = {"ip": "127.0.0.1", "gwId": new.device_id, "version": "3.5"}

        def broadcast() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(
                    encode_broadcast(info, "3.5"), ("127.0.0.1", discovery.listener.bound_ports[1])
                )

        broadcast()
        await wait_until(lambda: new.device_id in discovery.listener.devices)
        await hass.async_block_till_done()
        assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []

        # deleting the subentry removes the plug from the hub, its device and entities, with
        # one reload of the hub entry (one new hub connection)
        connections = hub.log().count(" authenticated")
        assert hass.config_entries.async_remove_subentry(entry, sub_id)
        await wait_until(lambda: new.device_id not in hub.plugs_path.read_text(), 15)
        await hass.async_block_till_done()
        assert hass.states.get("switch.new_plug") is None
        assert (
            registry.async_get_device_by_identifier((DOMAIN, new.device_id), entry.entry_id) is None
        )
        await wait_until(lambda: not entry.data.get("removing"), 10)
        await hass.async_block_till_done()
        await wait_until(lambda: entry.runtime_data.hub.hub_connected, 10)
        assert hub.log().count(" authenticated") == connections + 1
        assert {s.unique_id for s in entry.subentries.values()} == {p.device_id for p in plugs}
        # no longer served: its next broadcast offers it under "Discovered"
        broadcast()
        await wait_until(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert [f["context"]["unique_id"] for f in flows] == [new.device_id]


async def test_dhcp_discovery_of_the_hub(hass: HomeAssistant, hub: HubProcess) -> None:
    info = DhcpServiceInfo(
        ip="127.0.0.1", hostname=f"tuya-esp-hub-{HUB_ID}", macaddress="246f28aabbcc"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=info
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hub"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": hub.port, "secret": SECRET}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()
    # the hub got a new address: DHCP tells us, the entry follows
    moved = DhcpServiceInfo(
        ip="127.0.0.9", hostname=f"tuya-esp-hub-{HUB_ID}", macaddress="246f28aabbcc"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=moved
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data["host"] == "127.0.0.9"


NEW_PLUG = {
    "device_id": "bfnewplug00abcdefghij",
    "local_key": KEYS[6],
    "host": "127.0.0.1",
    "protocol_version": "3_3",
    "port": 6668,
    "name": "New plug",
}


async def test_plug_subentry_errors(
    hass: HomeAssistant, tmp_path: Path, plugs: list[SimulatedPlug], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refusal of the hub is shown on the form, and a retry succeeds."""
    monkeypatch.setattr(flow_hub_plugs, "HUB_WAIT_S", 0.5)  # the hub will be away
    hub = HubProcess(tmp_path, max_plugs=2, plugs=[plug_record(plugs[0], name="Hub plug 0")])
    await hub.start()
    try:
        entry = hub_entry(hub, [{"id": plugs[0].device_id, "name": "Hub plug 0", "ver": "3.3"}])
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
        configure = hass.config_entries.subentries.async_configure
        result = await start_add_plug(hass, entry)
        result = await configure(result["flow_id"], {**NEW_PLUG, "host": "not-an-address"})
        assert result["errors"] == {"base": "invalid_plug"}
        second = {
            **NEW_PLUG,
            "device_id": plugs[1].device_id,
            "local_key": KEYS[1],
            "port": plugs[1].port,
        }
        result = await configure(result["flow_id"], second)
        assert result["type"] is FlowResultType.CREATE_ENTRY  # the second of two plugs
        await wait_for_state(hass, "switch.new_plug", "on", within=10)  # reloaded
        result = await start_add_plug(hass, entry)
        result = await configure(result["flow_id"], NEW_PLUG)
        assert result["errors"] == {"base": "hub_full"}
        # a refused re-add (bad address) says the hub no longer has the plug; a retry fixes it
        sub_id = plug_subentry_id(entry, plugs[1].device_id)
        result = await start_reconfigure_plug(hass, entry, sub_id)
        change = {**second, "name": "New plug"}
        del change["device_id"]
        result = await configure(result["flow_id"], {**change, "host": "not-an-address"})
        assert result["errors"] == {"base": "readd_failed"}
        result = await configure(result["flow_id"], change)
        assert result["reason"] == "reconfigure_successful"
        await wait_for_state(hass, "switch.new_plug", "on", within=10)
        # the plug moved: only its address is sent
        result = await start_reconfigure_plug(hass, entry, sub_id)
        assert result["data_schema"]({**change, "local_key": ""})["host"] == "127.0.0.1"
        moved = {k: v for k, v in change.items() if k != "local_key"}
        result = await configure(result["flow_id"], {**moved, "host": "127.0.0.9"})
        assert result["reason"] == "reconfigure_successful"
        await wait_until(lambda: "127.0.0.9" in hub.plugs_path.read_text(), 10)
        # the hub goes away: adding and changing say so, nothing is lost
        hub.stop()
        await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "off")
        result = await start_add_plug(hass, entry)
        result = await configure(result["flow_id"], NEW_PLUG)
        assert result["errors"] == {"base": "cannot_connect"}
        result = await start_reconfigure_plug(hass, entry, sub_id)
        result = await configure(result["flow_id"], {**moved, "host": "127.0.0.1"})
        assert result["errors"] == {"base": "cannot_connect"}
        # a subentry deleted while the hub is away: the plug is removed when it is back
        assert hass.config_entries.async_remove_subentry(entry, sub_id)
        await wait_until(lambda: entry.data.get("removing") == [plugs[1].device_id], 10)
        with pytest.raises(HomeAssistantError):
            await entry.runtime_data.source.async_set_dps(plugs[0].device_id, {"1": False})
        await entry.runtime_data.source.async_refresh()
        assert not entry.runtime_data.source.last_update_success
        await hub.start()
        await wait_until(lambda: plugs[1].device_id not in hub.plugs_path.read_text(), 20)
        await wait_until(lambda: not entry.data.get("removing"), 10)
        assert [s.unique_id for s in entry.subentries.values()] == [plugs[0].device_id]
    finally:
        hub.stop()


async def test_subentry_flows_of_a_hub_entry_that_is_not_loaded(
    hass: HomeAssistant,
    hub: HubProcess,
    plugs: list[SimulatedPlug],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flow_hub_plugs, "HUB_WAIT_S", 0.5)
    entry = hub_entry(hub, [{"id": plugs[0].device_id, "name": "Hub plug 0", "ver": "3.3"}])
    entry.add_to_hass(hass)  # e.g. disabled: the hub cannot be asked
    result = await start_add_plug(hass, entry)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], NEW_PLUG)
    assert result["errors"] == {"base": "cannot_connect"}
    sub_id = plug_subentry_id(entry, plugs[0].device_id)
    result = await start_reconfigure_plug(hass, entry, sub_id)
    assert result["type"] is FlowResultType.FORM
    change = {"name": "Hub plug 0", "host": "127.0.0.1", "protocol_version": "3_3", "port": 1}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], change)
    assert result["errors"] == {"base": "cannot_connect"}


async def test_migration_turns_cached_plugs_into_subentries(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """A hub entry of version 1.1 (plugs cached in its data) gets one subentry per plug; the
    plugs' devices and entities move to their subentries, keeping their entity ids."""
    cached = [
        {"id": p.device_id, "name": f"Hub plug {i}", "ver": "3.3"} for i, p in enumerate(plugs)
    ]
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=HUB_ID,
        title="Tuya ESP32 hub testhub",
        version=1,
        minor_version=1,
        data={**hub_entry(hub, []).data, "plugs": cached},
    )
    entry.add_to_hass(hass)
    # the registry as version 1.1 left it: the plug's device and switch on the entry itself
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, plugs[0].device_id)}
    )
    er.async_get(hass).async_get_or_create(
        "switch",
        DOMAIN,
        f"{plugs[0].device_id}_switch",
        config_entry=entry,
        device_id=device.id,
        suggested_object_id="old_switch",
    )
    await set_up_hub_entry(hass, entry)  # the detections reload it
    assert (entry.version, entry.minor_version) == (1, 3)
    assert "plugs" not in entry.data
    sub_id = plug_subentry_id(entry, plugs[0].device_id)
    assert entry.subentries[sub_id].title == "Hub plug 0"
    assert entry.subentries[sub_id].data["protocol_version"] == "3.3"
    moved = er.async_get(hass).async_get("switch.old_switch")
    assert moved is not None
    assert moved.config_subentry_id == sub_id
    device = dr.async_get(hass).async_get(device.id)
    assert device is not None
    assert device.config_subentry_id == sub_id
    await wait_for_state(hass, "switch.old_switch", "on", within=10)
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=10)
    # 1.2 -> 1.3: the new subentries have no profile: detected once the hub reports the plugs
    await wait_until(
        lambda: all("profile" in sub.data for sub in entry.subentries.values()), within=30
    )
    await hass.async_block_till_done()
    assert er.async_get(hass).async_get("switch.old_switch") is not None
    await wait_for_state(hass, "switch.old_switch", "on", within=10)


async def test_migration_of_direct_entries_and_refused_downgrade(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    old = MockConfigEntry(
        domain=DOMAIN, unique_id=mock_entry.unique_id, data=dict(mock_entry.data), minor_version=1
    )
    old.add_to_hass(hass)
    assert await hass.config_entries.async_setup(old.entry_id)
    assert (old.version, old.minor_version) == (1, 3)
    for key in ("transport", "host", "port", "device_id", "local_key", "name"):
        assert old.data[key] == mock_entry.data[key]  # kept as they were (the plug may add some)
    newer = MockConfigEntry(domain=DOMAIN, unique_id="other", data={}, version=2)
    newer.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(newer.entry_id)
    assert newer.state is ConfigEntryState.MIGRATION_ERROR


async def test_hub_without_plugs_and_direct_entries_without_subentries(
    hass: HomeAssistant, tmp_path: Path, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    hub = HubProcess(tmp_path)
    await hub.start()
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "hub"}
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
        entry = result["result"]
        assert entry.subentries == {}
        assert entry.supported_subentry_types == {"plug": {"supports_reconfigure": True}}
        mock_entry.add_to_hass(hass)
        assert mock_entry.supports_options  # a direct plug: its layout (profile)
        assert not entry.supports_options  # a hub: its plugs are subentries
        assert mock_entry.supported_subentry_types == {}
    finally:
        hub.stop()


async def test_hub_health_sensors_and_failed_commands(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    entry = await add_hub(hass, hub)
    coordinator = entry.runtime_data.source
    # read when the hub connected, not at the first poll a minute later
    await wait_until(lambda: coordinator.health is not None, 10)
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert coordinator.health.plugs == 2
    # free memory and Wi-Fi signal are there for diagnosis only: disabled by default
    for sensor in ("free_memory", "wi_fi_signal"):
        registered = er.async_get(hass).async_get(f"sensor.tuya_esp32_hub_testhub_{sensor}")
        assert registered is not None
        assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert hass.states.get(f"sensor.tuya_esp32_hub_testhub_{sensor}") is None
    # uptime is the hub's start time, known as soon as the hub is connected (no poll awaited)
    # and it stays put from poll to poll
    uptime = hass.states.get("sensor.tuya_esp32_hub_testhub_uptime")
    assert uptime.attributes["device_class"] == "timestamp"
    started = dt_util.parse_datetime(uptime.state)
    assert started is not None
    assert started <= dt_util.utcnow()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.tuya_esp32_hub_testhub_uptime").state == uptime.state
    # the hub's device shows its maker, model and the firmware it reported
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, HUB_ID), entry.entry_id)
    assert device is not None
    assert (device.manufacturer, device.model) == ("Espressif", "ESP32 hub")
    assert device.sw_version == coordinator.firmware is not None
    diag = await async_get_config_entry_diagnostics(hass, entry)
    for member in ("reset_cause", "mp_heap_free", "idf_heap_free"):
        assert member in diag["hub"]["health"]
    assert diag["hub"]["boot_time"] == started.isoformat()
    await plugs[0].stop()
    await wait_for_state(hass, "switch.hub_plug_0", "unavailable", within=10)
    with pytest.raises(HomeAssistantError, match="offline") as err:
        await coordinator.async_set_dps(plugs[0].device_id, {"1": False})
    assert err.value.translation_key == "set_failed"


async def test_unexpected_error_in_the_hub_step(hass: HomeAssistant, hub: HubProcess) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "hub"}
    )
    with patch("custom_components.tuya_local_esp.flow_probes.probe_hub", side_effect=RuntimeError):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reconfigure_the_hub(hass: HomeAssistant, hub: HubProcess, tmp_path: Path) -> None:
    entry = await add_hub(hass, hub)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["step_id"] == "reconfigure_hub"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], hub_input(hub, secret="wrong-secret")
    )
    assert result["errors"] == {"base": "invalid_auth"}
    other = HubProcess(tmp_path / "other", hub_id="otherhub")
    (tmp_path / "other").mkdir()
    await other.start()
    try:
        result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(other))
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "wrong_hub"
    finally:
        other.stop()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], hub_input(hub, host="localhost")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["host"] == "localhost"
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
    # saved without a change: the entry is reloaded all the same (e.g. to retry now)
    hub_coordinator = entry.runtime_data.hub
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], hub_input(hub, host="localhost")
    )
    assert result["reason"] == "reconfigure_successful"
    await wait_until(lambda: entry.runtime_data.hub is not hub_coordinator, 10)
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)


async def test_changed_hub_secret_asks_for_the_new_one(
    hass: HomeAssistant, tmp_path: Path, plugs: list[SimulatedPlug]
) -> None:
    hub = HubProcess(tmp_path, secret="the-new-hub-secret-0123456789ab")
    await hub.start()
    try:
        entry = hub_entry(hub, [])  # configured with the old secret
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        client = entry.runtime_data.source.client
        await wait_until(lambda: client.last_error is not None, 10)
        await entry.runtime_data.source.async_refresh()
        await hass.async_block_till_done()
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert [f["context"]["source"] for f in flows] == ["reauth"]
        result = await hass.config_entries.flow.async_configure(
            flows[0]["flow_id"], {"secret": "still-not-the-secret"}
        )
        assert result["errors"] == {"base": "invalid_auth"}
        result = await hass.config_entries.flow.async_configure(
            flows[0]["flow_id"], {"secret": "the-new-hub-secret-0123456789ab"}
        )
        assert result["reason"] == "reauth_successful"
        await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
        hub.assert_no_secrets(["the-new-hub-secret-0123456789ab"])
    finally:
        hub.stop()


async def test_adding_the_hub_ends_discovery_of_its_plugs(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """Plugs heard on the LAN before their hub was added stop being offered once it is."""
    assert await async_setup_component(hass, DOMAIN, {})
    discovery = hass.data[DISCOVERY]
    info = {"ip": "127.0.0.1", "gwId": plugs[0].device_id, "version": "3.3"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, "3.3"), ("127.0.0.1", discovery.listener.bound_ports[1]))
    await wait_until(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    await add_hub(hass, hub)
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []


async def test_plugs_of_a_hub_entry_not_loaded_yet_are_not_offered(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """At Home Assistant's start a plug's broadcast can come while its hub's entry is still being
    set up (seen with scripts/develop --demo: the hub's plugs stayed in "Discovered"): a plug
    subentry of any hub entry, loaded or not, is configured and never offered."""
    assert await async_setup_component(hass, DOMAIN, {})
    discovery = hass.data[DISCOVERY]
    device_id = plugs[0].device_id
    entry = hub_entry(hub, [{"id": device_id, "name": "Hub plug 0", "ver": "3.3"}])
    entry.add_to_hass(hass)  # not set up yet
    assert entry.state is ConfigEntryState.NOT_LOADED
    info = {"ip": "127.0.0.1", "gwId": device_id, "version": "3.3"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, "3.3"), ("127.0.0.1", discovery.listener.bound_ports[1]))
    await wait_until(lambda: device_id in discovery.listener.devices)
    await hass.async_block_till_done()
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
    assert discovery.unconfigured() == []


async def test_entities_of_a_hub_and_its_plugs(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug], snapshot: SnapshotAssertion
) -> None:
    """Devices, entity registry entries and states of a hub entry: the hub and two plugs (the
    hub had them already: their profiles are detected once it reports them)."""
    entry = await add_hub(hass, hub)
    await wait_until(
        lambda: all("profile" in sub.data for sub in entry.subentries.values()), within=30
    )
    await hass.async_block_till_done()  # reloaded with the detected entities
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
    for i in range(len(plugs)):
        await wait_for_state(hass, f"switch.hub_plug_{i}", "on", within=15)
    await entry.runtime_data.source.async_refresh()  # the hub's health
    await hass.async_block_till_done()
    # readings come from the hub's own refreshes, the hub's figures from the running firmware
    varying = {
        f"sensor.hub_plug_{i}_{kind}"
        for i in range(2)
        for kind in ("current", "power", "voltage", "energy")
    }
    varying |= {
        "sensor.tuya_esp32_hub_testhub_free_memory",
        "sensor.tuya_esp32_hub_testhub_uptime",
        "sensor.tuya_esp32_hub_testhub_firmware_version",
    }
    assert_entry_snapshot(hass, entry.entry_id, snapshot, varying=frozenset(varying))
    for i in range(len(plugs)):  # the readings themselves are those the plugs report
        state = hass.states.get(f"sensor.hub_plug_{i}_voltage")
        assert state is not None
        assert float(state.state) > 0


async def test_a_moved_plug_behind_the_hub_is_followed(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """The plug's broadcast from a new address reaches the hub (``host`` request): the hub
    stores it and reconnects there."""
    assert await async_setup_component(hass, DOMAIN, {})
    await add_hub(hass, hub)
    old = plugs[0]
    await old.stop()
    await wait_for_state(hass, "switch.hub_plug_0", "unavailable", within=10)
    async with SimulatedPlug(
        device_id=old.device_id,
        local_key=KEYS[0],
        seed=0,
        dps={"1": True},
        host="127.0.0.7",
        port=old.port,
    ):
        discovery = hass.data[DISCOVERY]
        info = {"ip": "127.0.0.7", "gwId": old.device_id, "version": "3.3"}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                encode_broadcast(info, "3.3"), ("127.0.0.1", discovery.listener.bound_ports[1])
            )
        await wait_for_state(hass, "switch.hub_plug_0", "on", within=15)
        assert "127.0.0.7" in hub.plugs_path.read_text()
        assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []


def test_boot_time_moves_only_when_the_hub_restarts() -> None:
    """The start time derived from the uptime ignores poll latency, follows a restart."""
    coordinator = object.__new__(HubCoordinator)  # only the boot-time bookkeeping is used
    coordinator.boot_time = None
    coordinator._last_uptime_s = None
    now = datetime(2026, 11, 27, 12, 0, 0, 400000, tzinfo=UTC)
    coordinator._update_boot_time(3600, now)
    first = coordinator.boot_time
    assert first == datetime(2026, 11, 27, 11, 0, 0, tzinfo=UTC)
    coordinator._update_boot_time(3661, now + timedelta(seconds=62))  # one poll later, 1 s slow
    assert coordinator.boot_time == first
    coordinator._update_boot_time(5, now + timedelta(minutes=2))  # the hub restarted
    assert coordinator.boot_time == datetime(2026, 11, 27, 12, 1, 55, tzinfo=UTC)
    # restarted again 20 s later: within the tolerance, but its uptime went down
    coordinator._update_boot_time(1, now + timedelta(minutes=2, seconds=20))
    assert coordinator.boot_time == datetime(2026, 11, 27, 12, 2, 19, tzinfo=UTC)


async def test_subentries_follow_the_hubs_inventory(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """A plug the hub has without a subentry gets one (and its entities); a subentry whose plug
    the hub no longer has is removed, with its device."""
    ghost = "bfghostplug000000000"
    entry = hub_entry(
        hub,
        [
            {"id": plugs[0].device_id, "name": "Hub plug 0", "ver": "3.3"},
            {"id": ghost, "name": "Ghost", "ver": "3.3"},
        ],
    )
    await set_up_hub_entry(hass, entry)
    await wait_until(
        lambda: {s.unique_id for s in entry.subentries.values()} == {p.device_id for p in plugs},
        15,
    )
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=15)
    sub_id = plug_subentry_id(entry, plugs[1].device_id)
    assert entry.subentries[sub_id].title == "Hub plug 1"
    # added on the hub by other means: its profile is detected once the hub reports it
    await wait_until(lambda: "profile" in entry.subentries[sub_id].data, 30)
    assert entry.subentries[sub_id].data["profile"]["name"] == "standard"
    assert "detect_pending" not in entry.subentries[sub_id].data
    await hass.async_block_till_done()
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=15)
    assert hass.states.get("select.hub_plug_1_power_on_behaviour") is not None
    assert hass.states.get("switch.ghost") is None
    registry = dr.async_get(hass)
    assert registry.async_get_device_by_identifier((DOMAIN, ghost), entry.entry_id) is None


async def test_a_plug_form_waits_for_the_hub_entry_to_load(
    hass: HomeAssistant,
    hub: HubProcess,
    plugs: list[SimulatedPlug],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent while the hub entry is (re)loading, e.g. right after the previous plug was added:
    the form waits for the entry and the hub instead of failing."""
    monkeypatch.setattr(hub_coordinator, "DETECT_ONLINE_S", 0.5)  # no plug answers at NEW_PLUG
    entry = hub_entry(
        hub,
        [{"id": p.device_id, "name": f"Hub plug {i}", "ver": "3.3"} for i, p in enumerate(plugs)],
    )
    entry.add_to_hass(hass)
    result = await start_add_plug(hass, entry)
    pending = hass.async_create_task(
        hass.config_entries.subentries.async_configure(result["flow_id"], NEW_PLUG),
        eager_start=True,
    )
    assert not pending.done()  # waiting for the entry
    assert await hass.config_entries.async_setup(entry.entry_id)
    result = await pending
    assert result.get("errors") is None
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert NEW_PLUG["device_id"] in {s.unique_id for s in entry.subentries.values()}
    assert NEW_PLUG["device_id"] in hub.plugs_path.read_text()

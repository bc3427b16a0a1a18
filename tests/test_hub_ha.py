"""Hub mode end to end: Home Assistant talks to the real firmware (MicroPython unix port) over
loopback, and the firmware talks to simulated plugs."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import SOURCE_DHCP, SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.diagnostics import async_get_config_entry_diagnostics
from custom_components.tuya_local_esp.discovery import DISCOVERY
from tuya_sim import SimulatedPlug
from tuya_sim.udp import encode_broadcast

from .conftest import wait_for_state, wait_until
from .firmware.conftest import KEYS, SECRET, HubProcess, free_port, plug_record
from .ha_snapshots import assert_entry_snapshot

HUB_ID = "testhub"


@pytest.fixture
async def plugs() -> AsyncIterator[list[SimulatedPlug]]:
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
    proc = HubProcess(
        tmp_path, plugs=[plug_record(s, name=f"Hub plug {i}") for i, s in enumerate(plugs)]
    )
    await proc.start()
    yield proc
    proc.stop()
    proc.assert_no_secrets()


def hub_input(hub: HubProcess, **overrides: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": hub.port, "secret": SECRET, **overrides}


def hub_entry(hub: HubProcess, plugs: list[dict[str, str]]) -> MockConfigEntry:
    """A hub entry as the flow creates it, with ``plugs`` as the cached inventory."""
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=HUB_ID,
        title="Tuya ESP32 hub testhub",
        data={
            "transport": "hub",
            "host": "127.0.0.1",
            "port": hub.port,
            "secret": SECRET,
            "hub_id": HUB_ID,
            "plugs": plugs,
        },
    )


async def add_hub(hass: HomeAssistant, hub: HubProcess) -> MockConfigEntry:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "hub"}
    )
    assert result["step_id"] == "hub"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], hub_input(hub))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: MockConfigEntry = result["result"]
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=10)
    return entry


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
    assert [p["id"] for p in result["data"]["plugs"]] == sorted(p.device_id for p in plugs)
    entry = result["result"]
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
    entry.runtime_data.source.client.backoff_max = 0.5
    hub.stop()
    await wait_for_state(hass, "switch.hub_plug_0", "unavailable")
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "off")
    await hub.start()
    await wait_for_state(hass, "switch.hub_plug_0", "on", within=15)
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
    # one plug goes away: only its entities go unavailable, and come back with it
    await plugs[1].stop()
    await wait_for_state(hass, "switch.hub_plug_1", "unavailable", within=10)
    assert hass.states.get("switch.hub_plug_0").state == "on"
    await plugs[1].start()
    await wait_for_state(hass, "switch.hub_plug_1", "on", within=15)


async def test_options_flow_adds_and_removes_plugs(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    entry = await add_hub(hass, hub)
    async with SimulatedPlug(  # a 3.5 plug: the firmware does AES-GCM itself
        device_id="bfnewplug00abcdefghij", local_key=KEYS[5], version="3.5", dps={"1": True}
    ) as new:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        assert result["type"] is FlowResultType.MENU
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "add_plug"}
        )
        form = {
            "device_id": new.device_id,
            "local_key": "short",
            "host": "127.0.0.1",
            "protocol_version": "3_5",
            "port": new.port,
            "name": "New plug",
        }
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["errors"] == {"local_key": "invalid_local_key"}
        form["local_key"] = KEYS[5]
        form["device_id"] = plugs[0].device_id
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["errors"] == {"base": "already_on_hub"}
        form["device_id"] = new.device_id
        result = await hass.config_entries.options.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await wait_for_state(hass, "switch.new_plug", "on", within=15)
        assert new.device_id in {p["id"] for p in entry.data["plugs"]}
        # the hub persisted it
        assert new.device_id in hub.plugs_path.read_text()

        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "remove_plug"}
        )
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"device_id": new.device_id}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await wait_until(
            lambda: (
                hass.states.get("switch.new_plug") is None
                or hass.states.get("switch.new_plug").state == "unavailable"
            ),
            10,
        )
        await hass.async_block_till_done()
        registry = dr.async_get(hass)
        await wait_until(
            lambda: (
                registry.async_get_device_by_identifier((DOMAIN, new.device_id), entry.entry_id)
                is None
            ),
            10,
        )
        assert new.device_id not in hub.plugs_path.read_text()


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


async def open_options(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


NEW_PLUG = {
    "device_id": "bfnewplug00abcdefghij",
    "local_key": KEYS[6],
    "host": "127.0.0.1",
    "protocol_version": "3_3",
    "port": 6668,
    "name": "New plug",
}


async def test_options_flow_errors(
    hass: HomeAssistant, tmp_path: Path, plugs: list[SimulatedPlug]
) -> None:
    hub = HubProcess(tmp_path, max_plugs=2, plugs=[plug_record(plugs[0], name="Hub plug 0")])
    await hub.start()
    try:
        entry = hub_entry(hub, [{"id": plugs[0].device_id, "name": "Hub plug 0", "ver": "3.3"}])
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for_state(hass, "switch.hub_plug_0", "on", within=10)
        result = await open_options(hass, entry, "add_plug")
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {**NEW_PLUG, "host": "not-an-address"}
        )
        assert result["errors"] == {"base": "invalid_plug"}
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {
                **NEW_PLUG,
                "device_id": plugs[1].device_id,
                "local_key": KEYS[1],
                "port": plugs[1].port,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY  # the second of two plugs
        await wait_until(lambda: len(entry.data["plugs"]) == 2, 10)
        await wait_for_state(hass, "switch.new_plug", "on", within=10)  # reloaded
        result = await open_options(hass, entry, "add_plug")
        result = await hass.config_entries.options.async_configure(result["flow_id"], NEW_PLUG)
        assert result["errors"] == {"base": "hub_full"}
        # the hub goes away: both actions say so, nothing is lost
        hub.stop()
        await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "off")
        result = await hass.config_entries.options.async_configure(result["flow_id"], NEW_PLUG)
        assert result["errors"] == {"base": "cannot_connect"}
        result = await open_options(hass, entry, "remove_plug")
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"device_id": plugs[0].device_id}
        )
        assert result["errors"] == {"base": "cannot_connect"}
        with pytest.raises(HomeAssistantError):
            await entry.runtime_data.source.async_set_dps(plugs[0].device_id, {"1": False})
        await entry.runtime_data.source.async_refresh()
        assert not entry.runtime_data.source.last_update_success
    finally:
        hub.stop()


async def test_hub_without_plugs_and_direct_entries_without_options(
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
        assert entry.data["plugs"] == []
        result = await open_options(hass, entry, "remove_plug")
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "no_plugs"
        mock_entry.add_to_hass(hass)
        assert not mock_entry.supports_options
    finally:
        hub.stop()


async def test_hub_health_sensors_and_failed_commands(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    entry = await add_hub(hass, hub)
    coordinator = entry.runtime_data.source
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert coordinator.health is not None
    assert coordinator.health.plugs == 2
    heap = hass.states.get("sensor.tuya_esp32_hub_testhub_free_memory")
    assert float(heap.state) > 0
    uptime = hass.states.get("sensor.tuya_esp32_hub_testhub_uptime")
    assert float(uptime.state) >= 0
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


async def test_entities_of_a_hub_and_its_plugs(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug], snapshot: SnapshotAssertion
) -> None:
    """Devices, entity registry entries and states of a hub entry: the hub and two plugs."""
    entry = await add_hub(hass, hub)
    await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
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

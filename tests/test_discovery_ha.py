"""Discovery in Home Assistant: discovered plugs need only their local key; moved plugs are
followed. Real UDP datagrams on loopback, built by the library's encoder."""

from __future__ import annotations

import contextlib
import random
import socket

import pytest
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_USER,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.discovery import (
    DISCOVERY,
    TARGETS_ENV,
    TuyaDiscovery,
    _request_targets,
)
from tuya_sim import SimulatedPlug
from tuya_sim.udp import encode_broadcast

from .conftest import DEVICE_ID, LOCAL_KEY, entry_data, wait_for_state, wait_until


def announce(discovery: TuyaDiscovery, ip: str, version: str = "3.3") -> None:
    """Send a plug's broadcast, as the plug would, to the listener's encrypted port."""
    info = {
        "ip": ip,
        "gwId": DEVICE_ID,
        "active": 2,
        "encrypt": True,
        "productKey": "keyabcdefghijklm",
        "version": version,
    }
    port = discovery.listener.bound_ports[0 if version == "3.1" else 1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, version), ("127.0.0.1", port))


def loopback_host_with_free_tuya_port() -> str:
    """A random 127.x.y.z whose port 6668 is free.

    A discovered plug is reached at its broadcast address on the Tuya port 6668, so the simulated
    plug must listen there; a fixed address would collide with another test run on the machine.
    """
    rng = random.Random()
    for _ in range(50):
        host = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind((host, 6668))
            return host
    pytest.fail("no loopback address with a free port 6668")


async def start_discovery(hass: HomeAssistant) -> TuyaDiscovery:
    assert await async_setup_component(hass, DOMAIN, {})
    return hass.data[DISCOVERY]


def discovery_flows(hass: HomeAssistant) -> list[dict]:  # type: ignore[type-arg]
    return [
        f
        for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if f["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    ]


@pytest.mark.parametrize("version", ["3.1", "3.3", "3.4", "3.5"])
async def test_discovered_plug_needs_only_the_local_key(hass: HomeAssistant, version: str) -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version=version,
        host=loopback_host_with_free_tuya_port(),
        port=6668,
        dps={"1": True},
    ) as sim:
        discovery = await start_discovery(hass)
        announce(discovery, sim.host, version)
        await wait_until(lambda: bool(discovery_flows(hass)))
        flow = discovery_flows(hass)[0]
        assert flow["context"]["unique_id"] == DEVICE_ID
        assert flow["step_id"] == "discovery_confirm"
        if version != "3.1":  # 3.1 cannot check a key before a command (spec §2.2)
            result = await hass.config_entries.flow.async_configure(
                flow["flow_id"], {"local_key": "fedcba9876543210", "name": "Found plug"}
            )
            assert result["errors"] == {"base": "invalid_auth"}
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {"local_key": LOCAL_KEY, "name": "Found plug"}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"]["host"] == sim.host
        assert result["data"]["device_id"] == DEVICE_ID
        assert result["data"]["detected_version"] == version
        await wait_for_state(hass, "switch.found_plug", "on")
        # announcing again starts no new flow
        announce(discovery, sim.host, version)
        await hass.async_block_till_done()
        assert discovery_flows(hass) == []
        assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_moved_plug_is_followed(hass: HomeAssistant) -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, host="127.0.0.2", dps={"1": True}
    ) as sim:
        # configured at its old address, where nothing answers now
        entry = MockConfigEntry(
            domain=DOMAIN,
            unique_id=DEVICE_ID,
            data=entry_data(sim, host="127.0.0.1", name="Desk plug"),
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get("switch.desk_plug").state == "unavailable"
        entry.runtime_data.source.device.reconnect_min = 30  # only the announcement can help now
        announce(hass.data[DISCOVERY], "127.0.0.2")
        await wait_for_state(hass, "switch.desk_plug", "on")
        assert entry.data["host"] == "127.0.0.2"
        assert discovery_flows(hass) == []


async def test_ignored_plug_is_not_rediscovered(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=DEVICE_ID, source=SOURCE_IGNORE).add_to_hass(hass)
    discovery = await start_discovery(hass)
    announce(discovery, "127.0.0.5")
    await wait_until(lambda: DEVICE_ID in discovery.listener.devices)
    await hass.async_block_till_done()
    assert discovery_flows(hass) == []
    assert [d.device_id for d in discovery.seen()] == [DEVICE_ID]


async def test_discovery_of_a_configured_plug_aborts(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    mock_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={"device_id": DEVICE_ID, "host": "127.0.0.1", "version": "3.3", "product_key": None},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_announcement_updates_the_detected_version(
    hass: HomeAssistant, plug_sim: SimulatedPlug
) -> None:
    await plug_sim.stop()  # unreachable: only the announcement tells the version
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=DEVICE_ID,
        data=entry_data(plug_sim, protocol_version="auto", detected_version="3.3"),
    )
    entry.add_to_hass(hass)
    discovery = await start_discovery(hass)
    announce(discovery, "127.0.0.1", "3.4")  # e.g. after a firmware update
    await wait_until(lambda: entry.data["detected_version"] == "3.4")
    assert entry.data["host"] == "127.0.0.1"
    assert discovery_flows(hass) == []


async def test_requests_go_to_the_adapters_broadcast_addresses(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TARGETS_ENV)
    assert await async_setup_component(hass, "network", {})
    targets = await _request_targets(hass)
    assert ("255.255.255.255", 7000) in targets
    assert all(port == 7000 for _, port in targets)


async def test_first_plug_picked_from_those_heard(hass: HomeAssistant) -> None:
    """Before any entry exists, opening the flow starts listening; heard plugs are offered."""
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version="3.4",
        host=loopback_host_with_free_tuya_port(),
        port=6668,
    ) as sim:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        discovery = hass.data[DISCOVERY]
        announce(discovery, sim.host, "3.4")
        await wait_until(lambda: DEVICE_ID in discovery.listener.devices)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "plug"}
        )
        assert result["step_id"] == "pick_plug"
        # "enter the details myself" leads to the usual form
        manual = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device_id": "manual"}
        )
        assert manual["step_id"] == "plug"
        hass.config_entries.flow.async_abort(manual["flow_id"])
        assert discovery_flows(hass)  # the listener offers the plug too, meanwhile
        # a new flow: pick the plug that was heard; only its local key is asked
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "plug"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device_id": DEVICE_ID}
        )
        assert result["step_id"] == "discovery_confirm"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"local_key": LOCAL_KEY, "name": "Picked plug"}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"]["host"] == sim.host
        assert result["data"]["detected_version"] == "3.4"
        # connected before unloading: a connection still opening when the simulator stops
        # makes asyncio's server fail on the late accept
        await wait_for_state(hass, "switch.picked_plug", "off")
        assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_typing_in_a_plug_that_is_also_discovered(hass: HomeAssistant) -> None:
    """The discovery flow of a plug does not block adding the same plug by hand."""
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        host=loopback_host_with_free_tuya_port(),
        port=6668,
    ) as sim:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        announce(hass.data[DISCOVERY], sim.host)
        await wait_until(lambda: bool(discovery_flows(hass)))
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "plug"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device_id": "manual"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                "host": sim.host,
                "device_id": DEVICE_ID,
                "local_key": LOCAL_KEY,
                "protocol_version": "auto",
                "port": 6668,
                "name": "Typed plug",
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert discovery_flows(hass) == []  # the discovery offer ended with it
        await wait_for_state(hass, "switch.typed_plug", "off")  # see test_first_plug_picked...
        assert await hass.config_entries.async_unload(result["result"].entry_id)

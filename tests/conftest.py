"""Shared fixtures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp import discovery
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.tuya import device as tuya_client
from tuya_sim import SimulatedPlug

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> dict[str, Any]:
    """Load one vector file copied from ../shared/vectors (sources named inside)."""
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ in every test."""


@pytest.fixture(autouse=True)
def discovery_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The integration's discovery listens on free ports and asks only 127.0.0.1."""
    monkeypatch.setattr(discovery, "LISTEN_PORTS", (0, 0, 0))
    # loopback plugs answer in microseconds; a silent one should not cost 2 s per version
    monkeypatch.setattr(tuya_client, "PROBE_TIMEOUT", 0.5)
    monkeypatch.setenv(discovery.TARGETS_ENV, "127.0.0.1")


@pytest.fixture(autouse=True)
def loopback_sockets(socket_enabled: None) -> None:
    """Allow real sockets: every protocol test runs over TCP/UDP on 127.0.0.0/8."""
    pytest_socket.socket_allow_hosts(["127.0.0.0/8"], allow_unix_socket=True)


DEVICE_ID = "bf7a3c9e2d14f8b6ac01"
LOCAL_KEY = "0123456789abcdef"


@pytest.fixture
async def plug_sim() -> AsyncIterator[SimulatedPlug]:
    """A simulated 3.3 plug on a free loopback port, switched on."""
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.3", seed=7, dps={"1": True}
    ) as sim:
        yield sim


def entry_data(sim: SimulatedPlug, **overrides: Any) -> dict[str, Any]:
    """Config entry data of a directly connected plug served by ``sim``."""
    data: dict[str, Any] = {
        "transport": "direct",
        "host": "127.0.0.1",
        "port": sim.port,
        "device_id": sim.device_id,
        "local_key": LOCAL_KEY,
        "protocol_version": sim.version,
        "name": "Desk plug",
        "dp_ids": sorted(sim.dps),
    }
    data.update(overrides)
    return data


@pytest.fixture
def mock_entry(plug_sim: SimulatedPlug) -> MockConfigEntry:
    """A config entry for ``plug_sim``."""
    return MockConfigEntry(
        domain=DOMAIN, title="Desk plug", unique_id=DEVICE_ID, data=entry_data(plug_sim)
    )


async def wait_until(condition: Callable[[], object], within: float = 3) -> None:
    """Poll ``condition`` until it is true; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the conditions are plain attributes
            await asyncio.sleep(0.01)


async def wait_for_state(
    hass: HomeAssistant, entity_id: str, state: str, within: float = 5
) -> None:
    """Wait until ``entity_id`` has ``state`` (the plug connects in the background)."""
    async with asyncio.timeout(within):
        while (current := hass.states.get(entity_id)) is None or current.state != state:
            await asyncio.sleep(0.01)
            await hass.async_block_till_done()

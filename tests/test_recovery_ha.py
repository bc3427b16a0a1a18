"""What Home Assistant does when a plug cannot be used: another client holds it (repair issue),
its broadcast is heard while it waits to reconnect (wake). Real TCP and UDP on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp import coordinator as coordinator_module
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.discovery import DISCOVERY
from custom_components.tuya_local_esp.tuya import TuyaDevice, TuyaError
from tuya_sim import SimulatedPlug
from tuya_sim.udp import encode_broadcast

from .conftest import DEVICE_ID, LOCAL_KEY, entry_data, wait_for_state, wait_until

SWITCH = "switch.desk_plug"
ISSUE_ID = f"plug_busy_{DEVICE_ID}"


class _HeldPlug:
    """A plug whose only connection another client holds: it accepts, then closes at once."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def _on_client(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def held() -> AsyncIterator[_HeldPlug]:
    plug = _HeldPlug()
    yield plug
    await plug.stop()


async def test_a_plug_held_by_another_client_raises_a_repair_issue(
    hass: HomeAssistant, held: _HeldPlug, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = await held.start()
    sim = SimulatedPlug(device_id=DEVICE_ID, local_key=LOCAL_KEY, dps={"1": True}, port=port)
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=DEVICE_ID, title="Desk plug", data=entry_data(sim)
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    entry.runtime_data.source.device.reconnect_min = 0.05
    entry.runtime_data.source.device.reconnect_max = 0.1
    registry = ir.async_get(hass)
    await wait_until(lambda: registry.async_get_issue(DOMAIN, ISSUE_ID) is not None, 30)
    issue = registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_key == "plug_busy"
    assert issue.translation_placeholders == {
        "name": "Desk plug",
        "device_id": DEVICE_ID,
        "host": "127.0.0.1",
    }
    assert hass.states.get(SWITCH).state == "unavailable"
    # a held plug is no reason to ask for a new key
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
    # the other client lets go: the plug answers again, the issue goes away by itself
    await held.stop()
    await sim.start()
    try:
        await wait_for_state(hass, SWITCH, "on", within=30)
        assert registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    finally:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await sim.stop()


async def test_the_busy_issue_is_translated(hass: HomeAssistant) -> None:
    """The issue's text names the plug and the cause (strings.json ``issues.plug_busy``)."""
    from homeassistant.helpers.translation import async_get_translations

    assert await async_setup_component(hass, DOMAIN, {})
    strings = await async_get_translations(hass, "en", "issues", [DOMAIN])
    title = strings[f"component.{DOMAIN}.issues.plug_busy.title"]
    description = strings[f"component.{DOMAIN}.issues.plug_busy.description"]
    assert "{name}" in title
    assert "{device_id}" in description
    assert "phone app" in description


class _PatientDevice(TuyaDevice):
    """The integration's client with a ten-minute reconnection wait: only a wake helps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reconnect_min = self.reconnect_max = 600


def _broadcast(port: int) -> None:
    info = {"ip": "127.0.0.1", "gwId": DEVICE_ID, "version": "3.3", "productKey": "k"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, "3.3"), ("127.0.0.1", port))


async def test_a_plug_heard_on_the_lan_is_reconnected_at_once(
    hass: HomeAssistant, plug_sim: SimulatedPlug, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every broadcast of a configured plug that waits to reconnect cuts the wait short,
    the first one heard and the repeats alike."""
    monkeypatch.setattr(coordinator_module, "TuyaDevice", _PatientDevice)
    await plug_sim.stop()  # the plug is off when Home Assistant starts
    assert await async_setup_component(hass, DOMAIN, {})
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=DEVICE_ID, title="Desk plug", data=entry_data(plug_sim)
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    device = entry.runtime_data.source.device
    failures: list[TuyaError] = []
    device.subscribe_failure(failures.append)
    port = hass.data[DISCOVERY].listener.bound_ports[1]
    await wait_until(lambda: device.last_error is not None, 10)
    # heard while still off: one more attempt at once, which fails
    seen = len(failures)
    _broadcast(port)
    await wait_until(lambda: len(failures) > seen, 10)
    # the plug is back; its next broadcast (the same as before) reconnects it
    await plug_sim.start()
    _broadcast(port)
    await wait_for_state(hass, SWITCH, "on", within=10)
    assert device.connect_count == 1

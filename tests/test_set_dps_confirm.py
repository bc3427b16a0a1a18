"""How ``TuyaDevice.set_dps`` gets its confirmation: the ACK, STATUS pushes around it, their loss.

Against the scripted plug of ``test_client_faults`` (real TCP on loopback, 3.3 frames from the
simulator's device codec). A CONTROL is answered by an empty ACK and then a STATUS push with the
changed DPs (spec §2.4); these tests move, split, break and drop those frames.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.tuya import Command, TuyaConnectionError, device

from .conftest import wait_for_state, wait_until
from .test_client_faults import DEV, KEY, FaultyPlug, client
from .test_client_faults import faulty as faulty  # noqa: PLC0414 - the fixture, re-exported

DPS = b'{"dps":{"1":true,"9":0}}'


def waiting_for_push(dev: Any) -> bool:
    """The set_dps in progress got its ACK and now waits for the STATUS push."""
    return any(w._wakeup is not None for w in dev._set_waiters)


async def test_a_push_before_a_lost_ack_confirms_at_once(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:  # the ACK is lost, the STATUS push arrives
            return plug.frame(0, Command.STATUS, b'{"dps":{"1":false}}')
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    # the client would wait 30 s for the ACK: the push must end the wait instead
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        async with asyncio.timeout(10):
            assert (await dev.set_dps({"1": False}))["1"] is False
        assert plug.count == 2  # the first status query and the CONTROL: no query afterwards
        assert not dev._set_waiters


async def test_pushes_around_the_ack_are_combined(
    faulty: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device, "PUSH_WAIT", 30.0)  # the late push is sent when the test says

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return (
                plug.frame(0, Command.STATUS, b"not json")  # neither confirms nor breaks it
                + plug.frame(0, Command.STATUS, b"{broken")
                + plug.frame(0, Command.STATUS, b'{"dps":{"1":false}}')  # one of the two DPs
                + plug.frame(seqno, msg.cmd, b"")
            )
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        task = asyncio.create_task(dev.set_dps({"1": False, "9": 60}))
        await wait_until(lambda: waiting_for_push(dev) or task.done())
        assert not task.done()
        plug.writers[-1].write(plug.frame(0, Command.STATUS, b'{"dps":{"9":60}}'))
        async with asyncio.timeout(10):
            confirmed = await task
        assert confirmed == {"1": False, "9": 60}
        assert plug.count == 2  # confirmed by the pushes alone
        assert dev.dps["9"] == 60


async def test_an_ack_carrying_the_dps_confirms(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return plug.frame(seqno, msg.cmd, b'{"dps":{"1":false}}')
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        async with asyncio.timeout(10):
            assert (await dev.set_dps({"1": False}))["1"] is False
        assert plug.count == 2


async def test_connection_lost_while_waiting_for_the_push_fails_the_set(
    faulty: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device, "PUSH_WAIT", 30.0)

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return plug.frame(seqno, msg.cmd, b"")  # ACK, then the plug hangs up
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        task = asyncio.create_task(dev.set_dps({"1": False}))
        await wait_until(lambda: waiting_for_push(dev) or task.done())
        assert not task.done()
        plug.writers[-1].close()
        async with asyncio.timeout(10):
            with pytest.raises(TuyaConnectionError):
                await task
        assert not dev._set_waiters


async def test_a_push_after_the_confirming_one_is_not_part_of_it(faulty: Any) -> None:
    """A button pressed right after the command: the next state, not this command's answer."""

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return (
                plug.frame(seqno, msg.cmd, b"")
                + plug.frame(0, Command.STATUS, b'{"dps":{"1":false,"9":0}}')
                + plug.frame(0, Command.STATUS, b'{"dps":{"1":true}}')
            )
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        assert await dev.set_dps({"1": False}) == {"1": False, "9": 0}
        await wait_until(lambda: dev.dps["1"] is True)  # the later push still updates the state


async def test_a_push_right_behind_a_status_answer_is_not_undone(faulty: Any) -> None:
    """The plug answers a status query and pushes a change at once (one TCP segment, e.g.
    the phone app switched it): the push is read before ``status()`` resumes, and the stale
    answer must not overwrite it, in what ``status()`` returns or in ``dev.dps``."""

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if count >= 2:  # after the connect's own query
            return plug.frame(seqno, msg.cmd, b'{"dps":{"1":true,"9":0}}') + plug.frame(
                0, Command.STATUS, b'{"dps":{"1":false}}'
            )
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    pushed: list[dict[str, Any]] = []
    async with client(plug, auto_reconnect=False, timeout=30) as dev:
        dev.subscribe(pushed.append)
        assert await dev.status() == {"1": False, "9": 0}
        assert pushed == [{"1": False}]  # read before status() resumed
        assert dev.dps == {"1": False, "9": 0}


async def test_home_assistant_keeps_a_push_read_behind_the_confirmation(
    hass: HomeAssistant, faulty: Any
) -> None:
    """The same plug as above under Home Assistant: the switch turned off, the plug's button
    switched it on again at once (both in one TCP segment). The coordinator already has the
    later push when the set returns; the set's confirmation must not undo it."""

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return (
                plug.frame(seqno, msg.cmd, b"")
                + plug.frame(0, Command.STATUS, b'{"dps":{"1":false,"9":0}}')
                + plug.frame(0, Command.STATUS, b'{"dps":{"1":true}}')
            )
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    data = {
        "transport": "direct",
        "host": "127.0.0.1",
        "port": plug.port,
        "device_id": DEV,
        "local_key": KEY,
        "protocol_version": "3.3",
        "name": "Desk plug",
        "dp_ids": ["1", "9"],
    }
    entry = MockConfigEntry(domain=DOMAIN, title="Desk plug", unique_id=DEV, data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for_state(hass, "switch.desk_plug", "on")
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.desk_plug"}, blocking=True
    )
    coordinator = entry.runtime_data.source
    assert coordinator.device.dps["1"] is True
    assert coordinator.data[DEV]["1"] is True
    assert hass.states.get("switch.desk_plug").state == "on"
    assert await hass.config_entries.async_unload(entry.entry_id)

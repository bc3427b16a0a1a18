"""The simulator validated by an independent client: tinytuya 1.20 on loopback.

tinytuya is synchronous, so every client call runs in a worker thread (``asyncio.to_thread``) while
the simulator serves from the test's event loop. pytest-homeassistant-custom-component blocks
sockets in every test (``pytest_socket.disable_socket``); requesting pytest-socket's
``socket_enabled`` fixture (module-wide ``usefixtures`` below) re-enables them for these tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import tinytuya

from tuya_sim import SimulatedPlug

pytestmark = pytest.mark.usefixtures("socket_enabled")

DEVICE_ID = "bf0123456789abcdefgh"
KEY = "0123456789abcdef"
WRONG_KEY = "fedcba9876543210"
VERSIONS = ["3.1", "3.3", "3.4", "3.5"]
SESSION_VERSIONS = ["3.4", "3.5"]


def client(
    plug: SimulatedPlug, *, key: str = KEY, version: str | None = None, retries: int = 1
) -> tinytuya.OutletDevice:
    """A persistent tinytuya client for ``plug`` with short timeouts."""
    dev = tinytuya.OutletDevice(
        plug.device_id,
        "127.0.0.1",
        key,
        version=float(version or plug.version),
        port=plug.port,
        connection_timeout=1,
        connection_retry_limit=retries,
        connection_retry_delay=0,
        persist=True,
    )
    dev.set_socketTimeout(1)
    dev.set_socketRetryLimit(retries)
    return dev


async def in_thread[T](fn: Callable[[], T]) -> T:
    """Run blocking tinytuya code, bounded to a few seconds."""
    async with asyncio.timeout(15):
        return await asyncio.to_thread(fn)


def new_plug(version: str, **kwargs: Any) -> SimulatedPlug:
    kwargs.setdefault("profile", "aubess")  # the original layout (DPs 21-25, energy total)
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("idle_timeout", 5.0)
    return SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version=version, **kwargs)


def dps_of(reply: Any) -> dict[str, Any]:
    assert isinstance(reply, dict), reply
    assert "Error" not in reply, reply
    dps = reply["dps"]
    assert isinstance(dps, dict)
    return dps


@pytest.mark.parametrize("version", VERSIONS)
async def test_status_and_switching(version: str) -> None:
    """status, turn_on/turn_off/set_value and the STATUS push answering each of them."""
    async with new_plug(version, load_w=500.0) as plug:
        dev = client(plug)

        def session() -> list[Any]:
            try:
                return [
                    dev.status(),
                    dev.turn_on(),
                    dev.status(),
                    dev.set_value(21, "on"),
                    dev.turn_off(),
                    dev.status(),
                ]
            finally:
                dev.close()

        first, on, after_on, set21, off, after_off = await in_thread(session)

    dps = dps_of(first)
    assert set(dps) == {"1", "9", "17", "18", "19", "20", "21", "22", "23", "24", "25"}
    assert dps["1"] is False
    assert dps["18"] == 0
    assert dps["19"] == 0
    assert 2200 <= dps["20"] <= 2400
    assert dps["21"] == "memory"

    pushed = dps_of(on)
    assert pushed["1"] is True
    assert 4000 <= pushed["19"] <= 6000  # 500 W +- noise, in W x 10
    assert 1700 <= pushed["18"] <= 2600  # mA at ~230 V

    dps = dps_of(after_on)
    assert dps["1"] is True
    assert dps["19"] > 0

    assert dps_of(set21) == {"21": "on"}
    assert dps_of(off) == {"1": False, "18": 0, "19": 0}

    dps = dps_of(after_off)
    assert dps["1"] is False
    assert dps["19"] == 0
    assert dps["21"] == "on"
    assert plug.dps["1"] is False
    assert plug.stats.accepted == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_heartbeat_keeps_connection_alive(version: str) -> None:
    """A heartbeat gets an empty cmd 9 reply and resets the idle timer."""
    async with new_plug(version, idle_timeout=2.0) as plug:
        dev = client(plug)
        dev.set_retry(False)  # do not wait for a second frame after the empty reply

        def session() -> tuple[list[tuple[int, bytes]], Any]:
            try:
                replies = []
                assert dps_of(dev.status())
                for _ in range(6):  # 6 x 0.6 s spans the idle timeout (2 s) with margin
                    time.sleep(0.6)
                    dev.heartbeat(nowait=False)
                    replies.extend((m.cmd, m.payload) for m in dev.raw_recv)
                return replies, dev.status()
            finally:
                dev.close()

        replies, last = await in_thread(session)
        assert replies == [(9, b"")] * 6
        assert dps_of(last)["1"] is False
        assert plug.stats.accepted == 1
        assert plug.stats.idle_drops == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_updatedps_refreshes_power(version: str) -> None:
    """With the UPDATEDPS quirk, power DPs stay stale until 0x12 asks for 18/19/20."""
    async with new_plug(
        version, power_needs_updatedps=True, dps={"1": True}, load_w=1000.0
    ) as plug:
        dev = client(plug)

        def session() -> tuple[Any, Any, Any]:
            try:
                return dev.status(), dev.updatedps([18, 19, 20]), dev.status()
            finally:
                dev.close()

        before, refreshed, after = await in_thread(session)

    assert dps_of(before)["19"] == 0  # stale: never refreshed
    fresh = dps_of(refreshed)
    assert set(fresh) == {"18", "19", "20"}
    assert 8500 <= fresh["19"] <= 11500
    assert 3700 <= fresh["18"] <= 5000
    assert 2200 <= fresh["20"] <= 2400
    # the refreshed values are what later queries report
    assert {k: dps_of(after)[k] for k in fresh} == fresh
    assert plug.stats.commands.count(0x12) == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_local_change_is_pushed(version: str) -> None:
    """A button press on the plug reaches a connected client as an unsolicited STATUS."""
    async with new_plug(version) as plug:
        dev = client(plug)
        try:
            assert dps_of(await in_thread(dev.status))["1"] is False
            pushed = plug.set_dps_local({"1": True})
            assert pushed["1"] is True
            received = await in_thread(dev.receive)
        finally:
            dev.close()
    dps = dps_of(received)
    assert dps["1"] is True
    assert dps["19"] == pushed["19"] > 0


@pytest.mark.parametrize("version", ["3.3", *SESSION_VERSIONS])
async def test_wrong_key_gets_no_data(version: str) -> None:
    """A client with the wrong key never gets DPs (no answer; 3.4/3.5 also close)."""
    async with new_plug(version) as plug:
        dev = client(plug, key=WRONG_KEY)

        def session() -> Any:
            try:
                return dev.status()
            finally:
                dev.close()

        reply = await in_thread(session)
    assert isinstance(reply, dict)
    assert "dps" not in reply
    # 3.3: silence -> 902 "Timeout Waiting for Device", or 904 when tinytuya's retry connects
    # before the plug saw the first socket close (one connection at a time: the retry is
    # closed at once, tinytuya reads EOF); 3.4/3.5: the plug closes during the handshake ->
    # 914 "Check device key or version"
    assert reply.get("Err") in (("902", "904") if version == "3.3" else ("914",)), reply
    assert plug.stats.bad_key >= 1


async def test_wrong_key_v31_reads_but_cannot_control() -> None:
    """3.1 status is plaintext (readable without the key); CONTROL with a wrong key is ignored."""
    async with new_plug("3.1") as plug:
        dev = client(plug, key=WRONG_KEY)

        def session() -> tuple[Any, Any]:
            try:
                return dev.status(), dev.turn_on()
            finally:
                dev.close()

        status, control = await in_thread(session)
    assert dps_of(status)["1"] is False
    assert not (isinstance(control, dict) and "dps" in control)
    assert plug.dps["1"] is False
    assert plug.stats.bad_key >= 1  # tinytuya resends once after its timeout


@pytest.mark.parametrize("version", VERSIONS)
async def test_second_connection_refused(version: str) -> None:
    """One TCP connection at a time: a second client is reset while the first is open."""
    async with new_plug(version) as plug:
        first = client(plug)
        second = client(plug)
        try:
            assert dps_of(await in_thread(first.status))["1"] is False
            refused = await in_thread(second.status)
            assert isinstance(refused, dict)
            assert "Error" in refused
            assert plug.stats.refused >= 1
            assert plug.connections == 1
            # the first connection is unaffected
            assert dps_of(await in_thread(first.turn_on))["1"] is True
            # once it is gone the other client gets in
            first.close()
            async with asyncio.timeout(3):
                await plug.wait_connections(0)
            assert dps_of(await in_thread(second.status))["1"] is True
        finally:
            first.close()
            second.close()


def assert_dropped(reply: Any) -> None:
    """tinytuya's answer to the first command on a socket the plug has closed.

    tinytuya sends on the dead persistent socket, reads EOF and gives up with error 904 without
    resending; it opens a new socket on the next call (tinytuya 1.20 ``_send_receive``).
    """
    assert isinstance(reply, dict)
    assert reply.get("Err") == "904", reply


@pytest.mark.parametrize("version", VERSIONS)
async def test_idle_connection_dropped(version: str) -> None:
    """Without any frame for idle_timeout seconds the plug closes; the client reconnects."""
    async with new_plug(version, idle_timeout=0.4) as plug:
        dev = client(plug)
        try:
            assert dps_of(await in_thread(dev.status))["1"] is False
            assert plug.connections == 1
            async with asyncio.timeout(3):
                await plug.wait_connections(0)
            assert plug.stats.idle_drops == 1
            assert_dropped(await in_thread(dev.turn_on))
            assert plug.dps["1"] is False
            # the next call opens a new connection (and negotiates again on 3.4/3.5)
            assert dps_of(await in_thread(dev.turn_on))["1"] is True
            assert plug.stats.accepted == 2
        finally:
            dev.close()


@pytest.mark.parametrize("version", ["3.3", "3.5"])
async def test_power_zero_when_off_and_energy_accrues(version: str) -> None:
    """Power, current and energy follow the relay: 0 W when off, energy grows while on."""
    async with new_plug(version, load_w=1500.0, energy_speedup=3600.0) as plug:
        dev = client(plug)

        def session() -> tuple[list[Any], float]:
            try:
                out = [dev.status()]
                t0 = time.monotonic()
                out.append(dev.turn_on())
                time.sleep(0.5)  # 1500 W for 0.5 s x 3600 = 750 Wh
                out.append(dev.status())
                on_for = time.monotonic() - t0  # the relay was on at most this long by then
                out += [dev.turn_off(), dev.status()]
                time.sleep(0.3)
                out.append(dev.status())
                return out, on_for
            finally:
                dev.close()

        (off0, on, on_status, off, off_status, later), on_for = await in_thread(session)
    assert dps_of(off0)["19"] == 0
    assert dps_of(off0)["17"] == 0
    assert 13000 <= dps_of(on)["19"] <= 17000
    assert 5500 <= dps_of(on)["18"] <= 7500
    energy = dps_of(on_status)["17"]
    # DP 17 in Wh (scale 3 of kWh): 1500 W for on_for s at 3600x, +1 for rounding
    assert 600 <= energy <= 1500 * on_for + 1
    assert dps_of(off) == {"1": False, "18": 0, "19": 0}
    final = dps_of(off_status)
    assert final["18"] == final["19"] == 0
    assert final["17"] >= energy
    assert dps_of(later)["17"] == final["17"]  # nothing accrues while off


@pytest.mark.parametrize("version", ["3.3", "3.4"])
async def test_plug_restart_and_kick(version: str) -> None:
    """stop()/start() on the same port and kick(): tinytuya fails once, then reconnects."""
    async with new_plug(version) as plug:
        port = plug.port
        dev = client(plug)
        try:
            assert dps_of(await in_thread(dev.turn_on))["1"] is True
            await plug.stop()
            assert plug.connections == 0
            assert not plug.running
            assert_dropped(await in_thread(dev.status))
            refused = await in_thread(dev.status)  # nobody listening now
            assert refused.get("Err") == "901", refused
            await plug.start()
            assert plug.port == port
            assert dps_of(await in_thread(dev.status))["1"] is True  # state survives a restart
            plug.kick()
            async with asyncio.timeout(3):
                await plug.wait_connections(0)
            assert_dropped(await in_thread(dev.turn_off))
            assert dps_of(await in_thread(dev.turn_off))["1"] is False
            assert plug.stats.accepted == 3
        finally:
            dev.close()


async def test_device22_detected_by_tinytuya() -> None:
    """A device22 plug refuses DP_QUERY; tinytuya switches to CONTROL_NEW null queries."""
    async with new_plug("3.3", device22=True) as plug:
        dev = client(plug)

        def session() -> tuple[Any, str, Any, Any]:
            try:
                first = dev.status()
                return first, dev.dev_type, dev.turn_on(), dev.status()
            finally:
                dev.close()

        first, dev_type, on, after = await in_thread(session)
    assert dev_type == "device22"
    assert dps_of(first) == {"1": False}
    assert dps_of(on)["1"] is True
    assert dps_of(after) == {"1": True}
    assert 0x0A in plug.stats.commands
    assert 0x0D in plug.stats.commands


@pytest.mark.parametrize("version", ["3.3", "3.5"])
async def test_periodic_power_push(version: str) -> None:
    """With push_interval the plug pushes meter updates on its own."""
    async with new_plug(version, push_interval=0.2, dps={"1": True}, load_w=800.0) as plug:
        dev = client(plug)
        try:
            assert dps_of(await in_thread(dev.status))["1"] is True
            pushed = dps_of(await in_thread(dev.receive))
        finally:
            dev.close()
    assert "19" in pushed
    assert 6500 <= pushed["19"] <= 9500


async def test_countdown_toggles_relay() -> None:
    """DP 9 countdown: the relay toggles when it expires and the plug pushes the change."""
    async with new_plug("3.3", dps={"1": True}) as plug:
        dev = client(plug)

        def session() -> tuple[Any, Any]:
            try:
                return dev.set_value(9, 1), dev.receive()
            finally:
                dev.close()

        started = time.monotonic()
        armed, fired = await in_thread(session)
        elapsed = time.monotonic() - started
    assert dps_of(armed) == {"9": 1}
    assert dps_of(fired) == {"1": False, "9": 0, "18": 0, "19": 0}
    assert elapsed >= 0.8  # the relay waited for its countdown (no upper bound: CI is loaded)
    assert plug.dps["1"] is False


async def test_v32_tinytuya_polls_with_null_dps() -> None:
    """tinytuya treats 3.2 as device22: it finds the DPs with CONTROL_NEW null reads (spec §2.3)."""
    async with new_plug("3.2", load_w=200.0) as plug:

        def session() -> tuple[str, Any, Any, Any]:
            dev = client(plug)  # set_version(3.2) already talks to the device: not in the loop
            try:
                return dev.dev_type, dev.status(), dev.turn_on(), dev.updatedps([18, 19, 20])
            finally:
                dev.close()

        dev_type, status, on, refreshed = await in_thread(session)
    assert dev_type == "device22"
    assert set(dps_of(status)) == set(plug.dps)
    assert dps_of(on)["1"] is True
    assert 1500 <= dps_of(refreshed)["19"] <= 2500
    assert 0x0A not in plug.stats.commands  # never a DP_QUERY
    assert plug.stats.commands.count(0x07) == 1


@pytest.mark.parametrize("version", ["3.3", "3.5"])
async def test_non_persistent_client_one_connection_per_call(version: str) -> None:
    """tinytuya's default mode (connect, [negotiate,] ask, close) works call after call."""
    async with new_plug(version) as plug:

        def session() -> list[Any]:
            dev = tinytuya.OutletDevice(
                plug.device_id,
                "127.0.0.1",
                KEY,
                version=float(version),
                port=plug.port,
                connection_timeout=1,
                connection_retry_limit=3,
                connection_retry_delay=0,
            )
            dev.set_socketTimeout(1)
            out = []
            for on in (True, False, True):
                out += [dev.set_value(1, on), dev.status()]
            return out

        replies = await in_thread(session)
    assert [dps_of(r)["1"] for r in replies] == [True, True, False, False, True, True]
    assert plug.stats.accepted >= 6

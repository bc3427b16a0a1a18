"""TuyaDevice against a scripted misbehaving plug: junk, broken frames, errors, silence.

The plug here is a small asyncio server written for these faults (the simulator behaves well);
it frames its answers with the device-role codec, the client is what is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import (
    Command,
    FrameParser,
    RawFrame,
    TuyaDevice,
    TuyaDeviceError,
    TuyaTimeoutError,
)
from tuya_sim.codec import DeviceCodec

from .conftest import wait_until

KEY = "0123456789abcdef"
DEV = "bf7a3c9e2d14f8b6ac01"
DPS = b'{"devId":"' + DEV.encode() + b'","dps":{"1":true,"19":1234}}'

Script = Callable[[Any, int, int, "FaultyPlug"], bytes]


class FaultyPlug:
    """Answers each decoded request with whatever ``script(msg, seqno, count)`` returns."""

    def __init__(self, script: Script) -> None:
        self.codec = DeviceCodec("3.3", KEY.encode())
        self.script = script
        self.count = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def frame(self, seqno: int, cmd: int, payload: bytes, retcode: int = 0) -> bytes:
        return self.codec.encode(seqno, cmd, payload, retcode=retcode)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        parser = FrameParser()
        try:
            while data := await reader.read(4096):
                for item in parser.feed(data):
                    assert isinstance(item, RawFrame)
                    msg = self.codec.decode(item)
                    self.count += 1
                    writer.write(self.script(msg, msg.seqno, self.count, self))
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def faulty() -> AsyncIterator[Callable[[Script], Any]]:
    plugs: list[FaultyPlug] = []

    async def start(script: Script) -> FaultyPlug:
        plug = FaultyPlug(script)
        plug.server = await asyncio.start_server(plug._serve, "127.0.0.1", 0)
        plugs.append(plug)
        return plug

    yield start
    for plug in plugs:
        assert plug.server is not None
        plug.server.close()
        for writer in plug.writers:
            writer.close()
        await plug.server.wait_closed()


def client(plug: FaultyPlug, **kw: Any) -> TuyaDevice:
    kw.setdefault("timeout", 0.5)
    return TuyaDevice("127.0.0.1", DEV, KEY, port=plug.port, **kw)


async def test_junk_broken_frames_and_bad_pushes_are_skipped(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.DP_QUERY:
            bad_crc = bytearray(plug.frame(seqno, msg.cmd, DPS))
            bad_crc[20] ^= 0xFF
            return (
                b"\x00\x01junk"
                + bytes(bad_crc)
                + plug.frame(0, Command.STATUS, b"not json at all")
                + plug.frame(seqno, msg.cmd, DPS)
                + plug.frame(0, Command.STATUS, b'{"dps":{"19":999}}')
            )
        return plug.frame(seqno, msg.cmd, b"")

    plug = await faulty(script)
    seen: list[dict[str, Any]] = []

    def broken_callback(dps: dict[str, Any]) -> None:
        raise RuntimeError("a subscriber's bug")

    dev = client(plug, auto_reconnect=False)
    dev.subscribe(broken_callback)
    dev.subscribe(seen.append)
    dev.subscribe_connection(lambda up: (_ for _ in ()).throw(RuntimeError("bug")))
    async with dev:
        assert (await dev.status())["1"] is True
        assert dev.bad_frames >= 1
        # the good subscriber gets the push despite the broken one before it
        await wait_until(lambda: {"19": 999} in seen)
        await dev.heartbeat()


async def test_device_errors_are_raised_clearly(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return plug.frame(seqno, msg.cmd, b"data format error", retcode=1)
        if msg.cmd == Command.DP_QUERY and count > 1:
            return plug.frame(seqno, msg.cmd, b"something else")
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False) as dev:
        with pytest.raises(TuyaDeviceError, match="data format error"):
            await dev.set_dps({"1": False})
        with pytest.raises(TuyaDeviceError, match="unexpected status answer"):
            await dev.status()


async def test_ack_without_status_is_confirmed_by_a_query(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return plug.frame(seqno, msg.cmd, b"")  # ACK, and no STATUS ever
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False) as dev:
        assert (await dev.set_dps({"1": True}))["1"] is True


async def test_silent_heartbeats_drop_the_connection(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if count > 1:
            return b""  # the plug hangs after the first query: no heartbeat, no query answered
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    states: list[bool] = []
    dev = client(plug, heartbeat_interval=0.05, auto_reconnect=False)
    dev.subscribe_connection(states.append)
    async with dev:
        # silence for heartbeat_interval + LIVENESS_GRACE (2 s) drops the connection
        await wait_until(lambda: states == [True, False], 10)
        assert not dev.connected


async def test_a_plug_ignoring_heartbeats_is_kept_alive_by_queries(faulty: Any) -> None:
    """Issue 7 item 3: a plug that answers queries but not heartbeats is not dropped."""

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.HEART_BEAT:
            return b""
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    states: list[bool] = []
    dev = client(plug, heartbeat_interval=0.05, auto_reconnect=False)
    dev.subscribe_connection(states.append)
    async with dev:
        await wait_until(lambda: dev.ignores_heartbeat, 10)
        queries = plug.count
        await wait_until(lambda: plug.count >= queries + 3, 10)  # liveness by status queries
        assert states == [True]
        assert dev.connected


async def test_set_host_reconnects_at_once(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    # the plug listens on 127.0.0.1 only: the first address is refused
    dev = TuyaDevice("127.0.0.7", DEV, KEY, port=plug.port, timeout=0.5, reconnect_min=30)
    await dev.start()
    await wait_until(lambda: dev.last_error is not None)
    dev.set_host("127.0.0.1")  # the 30 s backoff is cut short
    dev.set_host("127.0.0.1")  # the same address again changes nothing
    try:
        await dev.wait_connected(3)
    finally:
        await dev.close()


async def test_set_dps_times_out_without_ack(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        return b"" if msg.cmd == Command.CONTROL else plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False) as dev:
        with pytest.raises(TuyaTimeoutError):
            await dev.set_dps({"1": False})
        assert (await dev.status())["1"] is True  # the connection is still usable


async def test_a_meter_push_does_not_answer_a_status_query(faulty: Any) -> None:
    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.DP_QUERY:  # a meter push crosses the query on the wire
            push = plug.frame(0, Command.STATUS, b'{"dps":{"19":5}}')
            return push + plug.frame(seqno, msg.cmd, DPS)
        return plug.frame(seqno, msg.cmd, b"")

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False) as dev:
        assert (await dev.status())["19"] == 1234


async def test_set_dps_leaves_nothing_behind(faulty: Any) -> None:
    """Regression: every set_dps used to leave a finished future in a list (benchmarks)."""

    def script(msg: Any, seqno: int, count: int, plug: FaultyPlug) -> bytes:
        if msg.cmd == Command.CONTROL:
            return plug.frame(seqno, msg.cmd, b"") + plug.frame(
                0, Command.STATUS, b'{"dps":{"1":false}}'
            )
        return plug.frame(seqno, msg.cmd, DPS)

    plug = await faulty(script)
    async with client(plug, auto_reconnect=False) as dev:
        for _ in range(50):
            assert (await dev.set_dps({"1": False}))["1"] is False
        assert not dev._set_waiters

"""The simulator's server shuts down without racing incoming connections (issue 7 item 12).

A CI run failed in teardown with asyncio's ``Server._attach`` assertion: a connection accepted by
the event loop while ``asyncio.Server.close()`` ran. The plug now accepts in a synchronous reader
callback and stops by removing that reader and closing the listening socket in one step, then
closes and aborts the connections and waits for their handlers. These tests connect while the
plug stops, many times, and require that the event loop reports no error, that every client sees
its connection end (accepted or refused, never hanging), and that the plug restarts on the same
port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from tuya_sim import SimulatedPlug

from .conftest import DEVICE_ID, LOCAL_KEY

ROUNDS = 150
CLIENTS = 6


async def _connect_and_wait_end(port: int) -> str:
    """Connect, then wait until the plug closes or resets the connection (or refuses it)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    try:
        await reader.read()  # EOF when the plug closes, or an error when it resets
    except OSError:
        pass
    finally:
        writer.close()
    return "ended"


async def test_connecting_while_the_plug_stops_never_races() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    plug = SimulatedPlug(device_id=DEVICE_ID, local_key=LOCAL_KEY, max_connections=2)
    try:
        await plug.start()
        port = plug.port
        for round_no in range(ROUNDS):
            clients = [asyncio.create_task(_connect_and_wait_end(port)) for _ in range(CLIENTS)]
            # let a varying number of connects reach the listening socket before stopping
            for _ in range(round_no % 4):
                await asyncio.sleep(0)
            await plug.stop()
            assert plug.connections == 0
            assert not plug.running
            async with asyncio.timeout(30):  # every client learns that its connection ended
                outcomes = await asyncio.gather(*clients)
            assert set(outcomes) <= {"refused", "ended"}
            await plug.start()  # the same port again
            assert plug.port == port
        # the plug still works after all this
        async with asyncio.timeout(30):
            assert await _connect_and_stop(plug) == "ended"
    finally:
        await plug.stop()
        loop.set_exception_handler(previous)
    assert errors == [], [str(e.get("exception") or e.get("message")) for e in errors]


async def _connect_and_stop(plug: SimulatedPlug) -> str:
    task = asyncio.create_task(_connect_and_wait_end(plug.port))
    await plug.wait_connections(1)
    await plug.stop()
    return await task


async def test_stop_with_a_connection_the_loop_has_accepted_but_not_served() -> None:
    """A connection in the kernel backlog when the plug stops is reset or closed, not leaked."""
    plug = SimulatedPlug(device_id=DEVICE_ID, local_key=LOCAL_KEY)
    await plug.start()
    socks = []
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", plug.port))
        socks.append(sock)
    await plug.stop()  # before the loop ran the accept callback for most of them
    loop = asyncio.get_running_loop()
    try:
        for sock in socks:
            async with asyncio.timeout(30):
                try:
                    data = await loop.sock_recv(sock, 16)
                except OSError:
                    data = b""
            assert data == b""  # closed or reset, never left open
    finally:
        for sock in socks:
            sock.close()


async def test_accepted_connections_disable_nagle() -> None:
    """Own accept loop, same socket options as asyncio's servers: TCP_NODELAY on every connection
    (an ACK and its STATUS are back-to-back writes; Nagle would hold the second ~40 ms)."""
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=LOCAL_KEY) as plug:
        _, writer = await asyncio.open_connection("127.0.0.1", plug.port)
        try:
            async with asyncio.timeout(30):
                await plug.wait_connections(1)
            (conn,) = plug._conns
            sock = conn.writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            writer.close()

"""Hub firmware (MicroPython unix port) against hostile or broken peers on the LAN: floods of
unauthenticated connections, junk and stalled handshakes from other addresses, a failing
accept task, malformed record headers, a client that never reads (docs/hub-protocol.md §2-§4,
§8)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter

import pytest

from custom_components.tuya_local_esp.hub import HubAuthError

from .conftest import plug_record, running_plugs, wait_for
from .rawhub import RawHub, closed_by_peer, raw_header

# server.py: LOG_BURST lines per LOG_WINDOW_MS for strangers' connections, plus one summary
LOG_BURST = 5
LOG_WINDOW_S = 10


async def _attacker(port: int, source: str, kind: str, stop: asyncio.Event, stats: Counter) -> None:
    """Open connections from ``source`` as fast as they close, until ``stop``.

    churn: connect and reset at once; junk: send random bytes (sometimes a plausible header);
    stall: send nothing and hold the connection until the hub closes it.
    """
    rnd = random.Random(f"{source}{kind}")
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        sock = socket.socket()
        sock.setblocking(False)
        # RST instead of FIN: no TIME_WAIT pile-up on the attacker's ports
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.bind((source, 0))
        try:
            async with asyncio.timeout(5):
                await loop.sock_connect(sock, ("127.0.0.1", port))
            stats["connections"] += 1
            if kind == "junk":
                junk = bytes(rnd.getrandbits(8) for _ in range(rnd.choice([1, 3, 21, 40])))
                if rnd.random() < 0.5:
                    junk = struct.pack(">H", 21) + junk
                await loop.sock_sendall(sock, junk)
            elif kind == "stall":
                async with asyncio.timeout(10):
                    while not stop.is_set():
                        if not await loop.sock_recv(sock, 1024):
                            break
        except OSError, TimeoutError:
            stats["errors"] += 1
        finally:
            sock.close()


async def test_unauthenticated_flood_does_not_lock_out_ha(hub_factory) -> None:
    """Two other addresses open connections as fast as the hub closes them (resets, junk,
    stalled handshakes); HA at 127.0.0.1 connects within 10 s, runs commands, and gets back in
    after a restart during the attack; strangers' log lines stay bounded."""
    async with running_plugs(1) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        dev = sims[0].device_id
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        stats: Counter = Counter()
        plan = [
            ("127.0.0.2", "churn"),
            ("127.0.0.2", "junk"),
            ("127.0.0.3", "stall"),
            ("127.0.0.3", "churn"),
            ("127.0.0.3", "stall"),
        ]
        attackers = [
            asyncio.create_task(_attacker(hub.port, src, kind, stop, stats)) for src, kind in plan
        ]
        client = None
        try:
            await wait_for(lambda: stats["connections"] >= 300, within=30)
            mark = len(hub.log())
            t0 = loop.time()
            connect_s = []
            client = hub.client(backoff_max=1)
            await client.start()
            await client.wait_connected(10)  # the target: never locked out for more than 10 s
            connect_s.append(loop.time() - t0)
            await wait_for(lambda: client.inventory.plugs[dev].online, within=10)
            want = not sims[0].dps["1"]
            assert await client.set_dps(dev, {"1": want}) == {"1": want}
            assert await client.ping() >= 0
            assert (await client.health()).clients == 1

            # HA restarts while the attack goes on: a new connection gets in again
            await client.close()
            before = stats["connections"]
            t1 = loop.time()
            client = hub.client(backoff_max=1)
            await client.start()
            await client.wait_connected(10)
            connect_s.append(loop.time() - t1)
            assert await client.set_dps(dev, {"1": not want}) == {"1": not want}
            # the attack goes on past a log window: still served, and the summary line came
            await wait_for(lambda: stats["connections"] >= before + 500, within=60)
            await hub.wait_log("connections not logged", within=30)
            assert await client.ping() >= 0
            elapsed = loop.time() - t0
        finally:
            stop.set()
            await asyncio.gather(*attackers)
            if client is not None:
                await client.close()

        log = hub.log()[mark:]
        srv_lines = [ln for ln in log.splitlines() if " srv: " in ln]
        print(
            f"\nflood: {stats['connections']} attacker connections in {elapsed:.1f} s, "
            f"HA connected {connect_s[0]:.2f} s / {connect_s[1]:.2f} s after (re)start, "
            f"{len(srv_lines)} srv log lines"
        )
        # strangers: at most LOG_BURST lines + 1 summary per window; HA's own connections add a
        # few (authenticated, disconnected) lines
        windows = int(elapsed // LOG_WINDOW_S) + 2
        assert len(srv_lines) <= windows * (LOG_BURST + 1) + 6, (len(srv_lines), elapsed)
        assert stats["connections"] > 10 * len(srv_lines)  # the bound is far below one per event
        # the per-source penalty never hit HA's address
        assert not any("127.0.0.1:" in ln and "handshake failed" in ln for ln in srv_lines)
        assert hub.proc is not None
        assert hub.proc.poll() is None


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect_from(port: int, source: str) -> Stream:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def test_ha_evicts_stalled_handshakes_and_strangers_are_refused_at_once(hub_factory) -> None:
    """Both slots held by silent connections from another address: HA's connections take
    their slots at once (no waiting for the handshake deadline); with both slots
    authenticated, a further stranger is closed at once and HA is not disturbed."""
    hub = hub_factory()
    await hub.start()
    stalled = [await _connect_from(hub.port, "127.0.0.2") for _ in range(2)]
    client = hub.client()
    second = None
    try:
        await client.connect()
        await hub.wait_log("evicted by 127.0.0.1:")
        second = await RawHub.connect(hub.port)
        for reader, _w in stalled:  # both strangers were closed by the hub
            assert await closed_by_peer(reader)
        reader, writer = await _connect_from(hub.port, "127.0.0.2")
        assert await closed_by_peer(reader)  # no slot to give: closed at once
        writer.close()
        await hub.wait_log("127.0.0.2:")
        assert "refused: too many connections" in hub.log()
        assert await client.ping() >= 0
        assert (await second.request("ping"))["ok"] is True
    finally:
        await client.close()
        if second is not None:
            await second.close()
        for _r, w in stalled:
            w.close()


async def test_failures_slow_down_only_their_own_address(hub_factory) -> None:
    """Five wrong secrets from 127.0.0.2 earn that address the full 3 s delay; HA at
    127.0.0.1 is not delayed by them (it connects with a 2.5 s connect timeout), and its
    success does not clear the stranger's record."""
    hub = hub_factory()
    await hub.start()
    loop = asyncio.get_running_loop()
    for n in range(5):
        with pytest.raises(HubAuthError):
            await RawHub.connect(hub.port, source="127.0.0.2", secret="not-the-hub-secret-at-all")
        await wait_for(lambda n=n: f"failures={n + 1}, next delay" in hub.log())
    assert "failures=5, next delay 3000 ms" in hub.log()
    client = hub.client(connect_timeout=2.5)  # below the stranger's 3 s delay
    await client.connect()
    assert await client.ping() >= 0
    await client.close()
    t0 = loop.time()
    with pytest.raises(HubAuthError):
        await RawHub.connect(hub.port, source="127.0.0.2", secret="not-the-hub-secret-at-all")
    assert loop.time() - t0 >= 2.7  # the stranger still waits its own delay
    hub.assert_no_secrets(["not-the-hub-secret-at-all"])


async def test_accept_task_restarted_after_memory_error(hub_factory) -> None:
    """MemoryError in the accept task (injected 3 times, where asyncio's own accept loop would
    have died): the task logs it and accepts again, and HA gets in."""
    hub = hub_factory(test_accept_faults=3)
    await hub.start()
    client = hub.client(backoff_max=1)
    try:
        await client.start()
        await client.wait_connected(10)
        assert hub.log().count("accept failed (MemoryError); accepting again") == 3
        assert await client.ping() >= 0
        second = hub.client()
        await second.connect()
        await second.close()
    finally:
        await client.close()


async def test_handshake_record_size_refused_from_header(hub_factory) -> None:
    """A handshake record whose announced length is not the expected one is refused on its
    header: the hub closes without waiting for a body that never comes."""
    hub = hub_factory()
    await hub.start()
    for n in (16, 60000):
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(raw_header(n))  # no body follows
        assert await closed_by_peer(reader)
        writer.close()
        await hub.wait_log(f"handshake record of {n} bytes, expected 21")


async def test_secure_record_size_refused_from_header(hub_factory) -> None:
    """After the handshake, a record shorter than 64 bytes or not 48 + a multiple of 16 is
    refused on its header alone (§3, §5)."""
    hub = hub_factory()
    await hub.start()
    for n in (63, 70):
        raw = await RawHub.connect(hub.port)
        raw.writer.write(raw_header(n))  # no body follows
        assert await closed_by_peer(raw.reader)
        await raw.close()
        await hub.wait_log(f"record of {n} bytes refused")
    assert "TimeoutError" not in hub.log()
    raw = await RawHub.connect(hub.port)  # the hub is fine
    assert (await raw.request("ping"))["ok"] is True
    await raw.close()


async def test_client_that_never_reads_does_not_block_the_hub(hub_factory) -> None:
    """A client that sends requests but never reads: its output queue passes 16 KiB (or a
    write times out) and the hub drops it, while another client is served all along."""
    async with running_plugs(1) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        dev = sims[0].device_id
        stuck = await RawHub.connect(hub.port, rcvbuf=2048)
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: client.inventory.plugs[dev].online)
            sent = 0
            async with asyncio.timeout(60):
                while "not reading, disconnecting" not in hub.log() and (
                    "write failed" not in hub.log()
                ):
                    for _ in range(200):
                        stuck.send({"t": "ping", "rid": sent + 1})
                        sent += 1
                    with contextlib.suppress(ConnectionError):
                        await asyncio.wait_for(stuck.writer.drain(), 30)
                    # the other client is served while the stuck one piles up output
                    assert await client.ping() >= 0
            assert sent * 100 > 16384  # pongs of ~110 bytes: more than the cap
            assert await closed_by_peer(stuck.reader, within=20)
            want = not sims[0].dps["1"]
            assert await client.set_dps(dev, {"1": want}) == {"1": want}
            assert (await client.health()).clients == 1
        finally:
            await stuck.close()
            await client.close()

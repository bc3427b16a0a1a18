"""HubClient behaviour against a scriptable fake hub written with the sans-I/O protocol
(server side): pushes, malformed messages, lost connections, reconnection, callbacks, the
clock (`time`) and `host` requests, and the connection's ownership of its tasks."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubBusyError,
    HubClient,
    HubCommandError,
    HubConnectionError,
    HubError,
    HubProtocolError,
    HubTimeoutError,
    StateUpdate,
)
from custom_components.tuya_local_esp.hub.connection import HubConnection, open_connection
from custom_components.tuya_local_esp.hub.models import (
    HubInfo,
    HubMessage,
    HubNotice,
    HubTime,
    PlugState,
    Removed,
    Result,
    apply_state,
    offline,
    parse_message,
)
from custom_components.tuya_local_esp.hub.protocol import (
    LABEL_CLIENT,
    LABEL_KEYS,
    LABEL_SERVER,
    MAGIC,
    RecordReader,
    SecureChannel,
    encode_record,
    hmac_sha256,
)

from .conftest import free_port, wait_for

SECRET = b"fake-hub-secret-0123456789"
PLUG = {
    "t": "plug",
    "id": "p1",
    "name": "One",
    "ver": "3.3",
    "host": "127.0.0.1",
    "port": 6668,
    "online": True,
    "dps": {"1": True},
    "ts": 100,
}
HELLO = {
    "t": "hello",
    "hub_id": "fake",
    "fw": "9",
    "proto": 1,
    "time": 5,
    "max_plugs": 7,
    "plugs": 1,
}

HEALTH = {
    "heap_free": 1,
    "heap_alloc": 2,
    "uptime_s": 3,
    "rssi": None,
    "plugs": 1,
    "plugs_online": 1,
    "clients": 1,
    "time": 1_795_300_000,
    "time_synced": True,
    "time_source": "ha",
    "reset_cause": "watchdog",
    "idf_heap_free": 40_000,
    "idf_heap_largest": 30_000,
    "mp_heap_free": 20_000,
    "mp_heap_largest": 10_000,
    "future_member": [1, 2],
}

Responder = Callable[["FakeConn", dict[str, Any]], None]


def _ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class FakeConn:
    def __init__(self, w: asyncio.StreamWriter, ch: SecureChannel) -> None:
        self.w = w
        self.ch = ch
        self.requests: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.w.write(self.ch.seal(msg))

    def result(self, req: dict[str, Any], data: Any) -> None:
        self.send({"t": "result", "rid": req["rid"], "ok": True, "data": data})

    def error(self, req: dict[str, Any], code: str, msg: str = "") -> None:
        self.send({"t": "result", "rid": req["rid"], "ok": False, "err": code, "msg": msg})


class FakeHub:
    """Accepts clients, authenticates them, sends the inventory, answers with `responder`."""

    def __init__(
        self,
        responder: Responder,
        hello: list[dict[str, Any]] | Callable[[int], list[dict[str, Any]]] | None = None,
        port: int = 0,
    ) -> None:
        self.responder = responder
        # the messages after the handshake, or a function of the connection number (1, 2, …)
        self.hello = hello if hello is not None else [PLUG, HELLO]
        self.conns: list[FakeConn] = []
        self.requests: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None
        self.port = port
        self.count = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for c in self.conns:
            c.w.close()
        await self.server.wait_closed()

    def kick(self) -> None:
        for c in self.conns:
            c.w.close()
        self.conns.clear()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            body = await r.readexactly(int.from_bytes(await r.readexactly(2)))
            nonce_c, nonce_s, hub = body[5:21], bytes(range(16)), b"fake"
            t = nonce_c + nonce_s + bytes([len(hub)]) + hub
            w.write(
                encode_record(
                    MAGIC
                    + b"\x01"
                    + nonce_s
                    + bytes([len(hub)])
                    + hub
                    + hmac_sha256(SECRET, LABEL_SERVER, t)
                )
            )
            proof = await r.readexactly(int.from_bytes(await r.readexactly(2)))
            if proof != hmac_sha256(SECRET, LABEL_CLIENT, t):
                w.close()
                return
            conn = FakeConn(w, SecureChannel(hmac_sha256(SECRET, LABEL_KEYS, t), server=True))
            self.conns.append(conn)
            self.count += 1
            for msg in self.hello(self.count) if callable(self.hello) else self.hello:
                conn.send(msg)
            rd = RecordReader()
            while data := await r.read(4096):
                for b in rd.feed(data):
                    req = conn.ch.open(b)
                    self.requests.append(req)
                    conn.requests.append(req)
                    self.responder(conn, req)
        except asyncio.IncompleteReadError, ConnectionError:
            pass
        finally:
            w.close()


def answer_all(conn: FakeConn, req: dict[str, Any]) -> None:
    kind = req["t"]
    if kind == "ping":
        conn.result(req, {"time": 1})
    elif kind == "set":
        conn.send({"t": "state", "id": req["id"], "online": True, "dps": req["dps"], "ts": 7})
        conn.result(req, {"id": req["id"], "dps": req["dps"]})
    elif kind == "inventory":
        conn.send(PLUG)
        conn.result(req, {k: v for k, v in HELLO.items() if k != "t"})
    elif kind == "health":
        conn.result(req, HEALTH)
    elif kind == "time":
        conn.result(req, {"time": req["time"], "source": "ha"})
    elif kind == "host":
        if req["id"] != "p1":
            conn.error(req, "unknown_device")
        elif not _ipv4(req["host"]):
            conn.error(req, "bad_request")
        else:
            conn.send({**PLUG, "host": req["host"]})
            conn.result(req, {"id": req["id"]})
    elif kind == "add":
        conn.error(req, "limit", "x")
    elif kind == "remove":
        conn.send({"t": "removed", "id": req["id"]})
        conn.result(req, {"id": req["id"]})


@contextlib.asynccontextmanager
async def fake_hub(responder: Responder = answer_all, **kw: Any) -> AsyncIterator[FakeHub]:
    hub = FakeHub(responder, **kw)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def test_requests_pushes_and_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    async with fake_hub() as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        assert "fake-hub-secret" not in repr(client)
        seen: list[StateUpdate] = []
        links: list[bool] = []

        def boom(_: Any) -> None:
            raise RuntimeError("callback bug")

        client.subscribe(seen.append)
        unsub = client.subscribe(boom)
        client.subscribe_connection(links.append)
        client.subscribe_connection(boom)
        try:
            inv = await client.connect()
            assert inv.plugs["p1"].dps == {"1": True}
            assert links == [True]
            assert await client.set_dps("p1", {1: False}) == {"1": False}
            assert seen[-1] == StateUpdate("p1", True, {"1": False}, 7)
            assert client.inventory is not None
            assert client.inventory.plugs["p1"].dps == {"1": False}
            assert client.inventory.plugs["p1"].updated == 7
            assert "callback bug" in caplog.text
            unsub()
            unsub()  # twice is harmless
            with pytest.raises(HubCommandError) as err:
                await client.add_plug("p2", "0123456789abcdef", "127.0.0.2")
            assert err.value.code == "limit"
            assert err.value.message == "x"
            health = await client.health()
            assert health.rssi is None
            assert health.time_synced
            assert health.time_source == "ha"
            assert health.reset_cause == "watchdog"
            assert (health.idf_heap_free, health.idf_heap_largest) == (40_000, 30_000)
            assert (health.mp_heap_free, health.mp_heap_largest) == (20_000, 10_000)
            assert health.extra == {"future_member": [1, 2]}
            inv = await client.refresh_inventory()
            assert set(inv.plugs) == {"p1"}
            await client.remove_plug("p1")
            assert client.inventory.plugs == {}
            # pushes: new plug, state for an unknown plug, unknown type, a hello, an error
            conn = hub.conns[0]
            conn.send({**PLUG, "id": "p3"})
            conn.send({"t": "state", "id": "zz", "online": False, "dps": {}, "ts": 1})
            conn.send({"t": "whatever", "rid": [1]})
            conn.send(HELLO)
            conn.send({"t": "error", "err": "bad_request", "msg": "missing rid"})
            conn.send({"t": "result", "rid": 999, "ok": True, "data": "late"})
            await client.ping()
            assert set(client.inventory.plugs) == {"p3"}
            assert "bad_request" in caplog.text
            assert len(hub.conns) == 1  # none of these ends the connection
            # a malformed state push does: protocol error (§5), the pending ping fails
            conn.send({"t": "state", "online": False})
            with pytest.raises(HubConnectionError):
                await client.ping()
            assert isinstance(client.last_error, HubProtocolError)
            assert "'id' missing" in str(client.last_error)
            assert not client.connected
            await client.connect()  # reconnect while connected: the old link is closed
            assert client.connected
        finally:
            await client.close()
        assert links[-1] is False
        assert not client.connected
        assert all(not p.online for p in client.inventory.plugs.values())
        assert "fake-hub-secret" not in caplog.text


async def test_lost_link_fails_pending_requests() -> None:
    def hang_up(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "set":  # with a reset (RST): the client's read fails
            sock = conn.w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.w.transport.abort()
        elif req["t"] == "ping":
            conn.send({"t": "error", "err": "busy", "msg": "bye"})

    async with fake_hub(hang_up) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            with pytest.raises(HubConnectionError) as err:
                await client.set_dps("p1", {"1": True})
            # one clear sentence (the UI shows it), not "… lost: connection to … failed: …"
            assert str(err.value).count("connection to") == 1, str(err.value)
            assert not client.connected
            with pytest.raises(HubConnectionError):
                await client.ping()  # not connected
            await client.connect()
            with pytest.raises(HubConnectionError):
                await client.ping()  # the hub answers with an error message and is dropped
            assert isinstance(client.last_error, HubConnectionError)
        finally:
            await client.close()


async def test_bad_records_and_inventory() -> None:
    def tamper(conn: FakeConn, req: dict[str, Any]) -> None:
        rec = bytearray(conn.ch.seal({"t": "result", "rid": req["rid"], "ok": True}))
        rec[-1] ^= 1
        conn.w.write(bytes(rec))

    async with fake_hub(tamper) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            with pytest.raises(HubConnectionError):
                await client.ping()
            assert isinstance(client.last_error, HubProtocolError)
        finally:
            await client.close()

    async with fake_hub(hello=[HELLO]) as hub:  # announces 1 plug, sends none
        with pytest.raises(HubProtocolError):
            await HubClient("127.0.0.1", hub.port, SECRET).connect()
    async with fake_hub(hello=[{"t": "hello"}]) as hub:  # no hub_id
        with pytest.raises(HubProtocolError):
            await HubClient("127.0.0.1", hub.port, SECRET).connect()
    async with fake_hub(hello=[{"t": "plug"}, HELLO]) as hub:  # plug without id
        with pytest.raises(HubProtocolError):
            await HubClient("127.0.0.1", hub.port, SECRET).connect()
    async with fake_hub(hello=[{"t": "error", "err": "internal", "msg": "out of memory"}]) as hub:
        with pytest.raises(HubConnectionError, match="refused the connection: internal"):
            await HubClient("127.0.0.1", hub.port, SECRET).connect()
    async with fake_hub(hello=[{"t": "error", "err": "busy", "msg": "too many clients"}]) as hub:
        with pytest.raises(HubConnectionError, match="busy"):
            await HubClient("127.0.0.1", hub.port, SECRET).connect()
    with pytest.raises(ValueError):
        HubClient("127.0.0.1", 1, "")


async def test_supervisor_reconnects_and_pings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pings = 0

    def flaky(conn: FakeConn, req: dict[str, Any]) -> None:
        nonlocal pings
        if req["t"] == "ping":
            pings += 1
            if pings == 1:
                conn.result(req, {"time": 1})
            # later pings are not answered: the client must time out and reconnect

    async with fake_hub(flaky) as hub:
        wrong = HubClient("127.0.0.1", hub.port, b"wrong", backoff_max=0.2)
        await wrong.start()
        with pytest.raises(HubTimeoutError):
            await wrong.wait_connected(0.5)
        assert isinstance(wrong.last_error, HubAuthError)
        await wrong.close()

        client = HubClient(
            "127.0.0.1", hub.port, SECRET, timeout=0.3, ping_interval=0.2, backoff_max=0.2
        )
        links: list[bool] = []
        client.subscribe_connection(links.append)
        try:
            await client.start()
            await client.start()  # idempotent
            await client.wait_connected(2)
            # dropped after an unanswered ping, then back
            await wait_for(lambda: links.count(True) >= 2, within=5)
            assert False in links
            hub.kick()  # the hub closes the link: reconnect again
            await wait_for(lambda: links.count(True) >= 3, within=5)
        finally:
            await client.close()


def hub_tasks() -> list[asyncio.Task[Any]]:
    """Tasks of the hub library still alive (they are all named "hub …")."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("hub ") and not t.done()]


async def test_time_after_every_hello_and_hourly() -> None:
    async with fake_hub() as hub:
        client = HubClient(
            "127.0.0.1", hub.port, SECRET, timeout=2, ping_interval=0.05, time_interval=0.2
        )
        try:
            before = int(time.time())
            await client.connect()
            # HA's clock is the first request after the hello, then again every time_interval
            await wait_for(lambda: sum(r["t"] == "time" for r in hub.conns[0].requests) >= 2)
            first = hub.conns[0].requests[0]
            assert first["t"] == "time"
            assert isinstance(first["time"], int)
            assert before <= first["time"] <= int(time.time())
            kinds = [r["t"] for r in hub.conns[0].requests]
            assert "ping" in kinds[1 : kinds.index("time", 1)]  # pings in between
            assert client.time_source == "ha"
            await client.connect()  # a new hello: the clock again, first
            await wait_for(lambda: len(hub.conns) == 2 and bool(hub.conns[1].requests))
            assert hub.conns[1].requests[0]["t"] == "time"
            assert await client.sync_time(1_800_000_000) == HubTime(1_800_000_000, "ha")
        finally:
            await client.close()
        assert hub_tasks() == []


async def test_time_refused_or_unanswered_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def old_firmware(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "time":
            conn.error(req, "unknown_type", "unknown message type")
        else:
            answer_all(conn, req)

    async with fake_hub(old_firmware) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            await wait_for(lambda: "did not take our clock: unknown_type" in caplog.text)
            await client.ping()
            assert client.connected
            assert client.time_source is None
            with pytest.raises(HubCommandError, match="unknown_type"):
                await client.sync_time()
        finally:
            await client.close()

    def mute_time(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] != "time":
            answer_all(conn, req)

    async with fake_hub(mute_time) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=0.3)
        try:
            await client.connect()
            await wait_for(lambda: "did not answer 'time' in time" in caplog.text)
            await client.ping()
            assert len(hub.conns) == 1
            assert client.connected
        finally:
            await client.close()

    def bad_time(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "time":
            conn.result(req, {"time": "noon", "source": "ha"})
        else:
            answer_all(conn, req)

    async with fake_hub(bad_time) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            # a malformed answer is a protocol error: the connection ends
            await wait_for(lambda: not client.connected)
            assert isinstance(client.last_error, HubProtocolError)
            assert "'time' is str" in str(client.last_error)
        finally:
            await client.close()


async def test_set_plug_host() -> None:
    async with fake_hub() as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            await client.set_plug_host("p1", "192.0.2.77")
            assert hub.requests[-1] == {
                "t": "host",
                "rid": hub.requests[-1]["rid"],
                "id": "p1",
                "host": "192.0.2.77",
            }
            # the hub's plug push (sent before the result) updated the inventory
            assert client.inventory is not None
            assert client.inventory.plugs["p1"].host == "192.0.2.77"
            with pytest.raises(HubCommandError) as err:
                await client.set_plug_host("nope", "192.0.2.78")
            assert err.value.code == "unknown_device"
            with pytest.raises(HubCommandError) as err:
                await client.set_plug_host("p1", "plug.local")
            assert err.value.code == "bad_request"
            assert client.connected
        finally:
            await client.close()
        with pytest.raises(HubConnectionError):
            await client.set_plug_host("p1", "192.0.2.77")


async def test_set_plug_profile() -> None:
    """The `profile` request (hub-protocol §7.3): its members, the `plug` push before the
    result, absent lists left out, and the hub's error codes (an older firmware's
    `unknown_type` among them) as HubCommandError, the connection kept."""
    known = {"on": True}

    def responder(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] != "profile":
            answer_all(conn, req)
        elif not known["on"]:
            conn.error(req, "unknown_type", "unknown message type")
        elif req["id"] != "p1":
            conn.error(req, "unknown_device")
        else:
            conn.send({**PLUG, "refresh": req.get("refresh", [18, 19, 20])})
            conn.result(req, {"id": req["id"]})

    async with fake_hub(responder) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            await client.set_plug_profile("p1", (4, 5, 6), ["1", "4"])
            req = hub.requests[-1]
            assert req == {
                "t": "profile",
                "rid": req["rid"],
                "id": "p1",
                "refresh": [4, 5, 6],
                "dps": ["1", "4"],
            }
            assert client.inventory is not None
            assert client.inventory.plugs["p1"].refresh == (4, 5, 6)
            await client.set_plug_profile("p1", None, None)
            assert set(hub.requests[-1]) == {"t", "rid", "id"}
            assert client.inventory.plugs["p1"].refresh == (18, 19, 20)
            with pytest.raises(HubCommandError) as err:
                await client.set_plug_profile("nope", [], None)
            assert err.value.code == "unknown_device"
            known["on"] = False
            with pytest.raises(HubCommandError) as err:
                await client.set_plug_profile("p1", [4], None)
            assert err.value.code == "unknown_type"
            assert client.connected
        finally:
            await client.close()
        with pytest.raises(HubConnectionError):
            await client.set_plug_profile("p1", [4], None)


async def test_malformed_health_and_set_replies_end_the_connection() -> None:
    replies = {"health": {"heap_free": 1, "uptime_s": 2}, "set": {"id": "p1", "dps": [1]}}

    def malformed(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] in replies:
            conn.result(req, replies[req["t"]])
        else:
            answer_all(conn, req)

    async with fake_hub(malformed) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            with pytest.raises(HubProtocolError, match="health reply: 'heap_alloc' missing"):
                await client.health()
            assert not client.connected
            await client.connect()
            with pytest.raises(HubProtocolError, match="set result: 'dps' is list"):
                await client.set_dps("p1", {"1": True})
            assert not client.connected
        finally:
            await client.close()


async def test_handshake_record_over_128_bytes_refused_at_once() -> None:
    """§3: the client refuses a handshake record with N > 128 as soon as N arrives."""
    release = asyncio.Event()

    async def huge_hello(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readexactly(2 + 21)
        w.write(b"\x00\x81")  # N = 129, and no body: a client waiting for it would hang
        await release.wait()
        w.close()

    server = await asyncio.start_server(huge_hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = HubClient("127.0.0.1", port, SECRET, connect_timeout=60)
        with pytest.raises(HubProtocolError, match="exceeds 128"):
            await client.connect()
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_malformed_result_drops_and_reconnects_loop_stays_responsive() -> None:
    """The old freeze: a result whose rid is a list raised in the read loop, the connection
    was never dropped and the supervisor spun at 100 % CPU."""
    bad = {"t": "result", "rid": [1], "ok": True, "data": {}}
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    async with fake_hub(hello=lambda n: [PLUG, HELLO, bad] if n == 1 else [PLUG, HELLO]) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2, backoff_max=0.2)
        downs: list[HubError | None] = []
        client.subscribe_connection(lambda up: None if up else downs.append(client.last_error))
        try:
            await client.start()
            await wait_for(lambda: hub.count == 2 and client.connected)
            assert len(downs) == 1
            assert isinstance(downs[0], HubProtocolError)
            assert "'rid' is list" in str(downs[0])
            seen = ticks
            await wait_for(lambda: ticks >= seen + 5)  # the event loop keeps running
            await client.ping()
        finally:
            await client.close()
    # a hub that sends it on every connection: each reconnection waits its backoff
    async with fake_hub(hello=[PLUG, HELLO, bad]) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2, backoff_max=0.05)
        try:
            await client.start()
            await wait_for(lambda: hub.count >= 5)
            seen = ticks
            await wait_for(lambda: ticks >= seen + 5)
            assert hub.count <= client._backoff.failures + 1
        finally:
            await client.close()
    tick_task.cancel()
    assert hub_tasks() == []


async def test_connection_owns_its_tasks(caplog: pytest.LogCaptureFixture) -> None:
    async with fake_hub() as hub:
        ended: list[HubError | None] = []
        received: list[HubMessage] = []
        conn = await open_connection("127.0.0.1", hub.port, SECRET)

        def on_closed(c: HubConnection, error: HubError | None) -> None:
            assert c is conn
            ended.append(error)

        conn.start(received.append, on_closed)
        await wait_for(lambda: len(received) == 2)  # plug + hello

        async def bug() -> None:
            raise RuntimeError("bug in a task")

        conn.spawn(bug(), "hub test bug")
        await conn.wait_closed()
        assert len(ended) == 1
        assert isinstance(ended[0], HubProtocolError)
        assert "internal error: RuntimeError" in str(ended[0])
        assert "bug in a task" in caplog.text
        with pytest.raises(HubConnectionError):
            conn.send("ping", lambda d: d)
        conn.spawn(bug(), "hub test after close")  # closed at once, never run
        await conn.close()
        assert ended == [ended[0]]  # reported once
        assert hub_tasks() == []


async def test_busy_hub_is_retried_politely() -> None:
    busy = [{"t": "error", "err": "busy", "msg": "too many clients"}]
    async with fake_hub(hello=busy) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, backoff_max=0.1)
        with pytest.raises(HubBusyError, match="busy"):
            await client.connect()
        assert client.busy is False  # connect() alone records nothing
        try:
            await client.start()
            await wait_for(lambda: hub.count >= 2)
            assert client.busy
            assert isinstance(client.last_error, HubBusyError)
        finally:
            await client.close()
    with pytest.raises(ValueError):
        client.backoff_max = 0


async def test_wake_cuts_the_backoff_short() -> None:
    port = free_port()
    client = HubClient("127.0.0.1", port, SECRET, connect_timeout=2)
    client._backoff.slow_after = 0  # every wait is the slow one (30 s)
    try:
        await client.start()
        await wait_for(lambda: client.last_error is not None)
        async with fake_hub(port=port):
            client.wake()
            await client.wait_connected(10)  # well before the 30 s wait ends
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ([1], "not a JSON object"),
        ({"rid": 1}, "'t' missing"),
        ({"t": 1}, "'t' is int"),
        ({"t": "result", "rid": [1], "ok": True}, "'rid' is list"),
        ({"t": "result", "rid": True, "ok": True}, "'rid' is bool"),
        ({"t": "result", "rid": 0, "ok": True}, "rid 0 out of range"),
        ({"t": "result", "rid": 2**30, "ok": True}, "out of range"),
        ({"t": "result", "rid": 5, "ok": "yes"}, "'ok' is str"),
        ({"t": "result", "rid": 5, "ok": False}, "'err' missing"),
        ({"t": "plug", "id": ""}, "empty 'id'"),
        ({"t": "plug", "id": "x", "port": 70000}, "port 70000 out of range"),
        ({"t": "plug", "id": "x", "name": None}, "'name' is NoneType"),
        ({"t": "plug", "id": "x", "ts": "now"}, "'ts' is str"),
        ({"t": "state", "id": 5}, "'id' is int"),
        ({"t": "state", "id": "x", "online": 1}, "'online' is int"),
        ({"t": "state", "id": "x", "ts": 1.5}, "'ts' is float"),
        ({"t": "state", "id": "x", "dps": [True]}, "'dps' is list"),
        ({"t": "state", "id": "x", "dps": {"1": [1]}}, "DP '1' is list"),
        ({"t": "state", "id": "x", "dps": {1: True}}, "DP id is int"),
        ({"t": "removed"}, "'id' missing"),
        ({"t": "error", "err": 3}, "'err' is int"),
        ({"t": "hello", "hub_id": ""}, "empty 'hub_id'"),
        ({"t": "hello", "hub_id": "h", "plugs": "1"}, "'plugs' is str"),
        ({"t": "hello", "hub_id": "h", "time_source": 1}, "'time_source' is int"),
    ],
)
def test_malformed_messages(msg: object, error: str) -> None:
    with pytest.raises(HubProtocolError, match=error):
        parse_message(msg)


def test_well_formed_messages() -> None:
    assert parse_message(PLUG) == PlugState(
        "p1", "One", "3.3", "127.0.0.1", 6668, True, {"1": True}, 100
    )
    assert parse_message({"t": "plug", "id": "p2"}) == PlugState(
        "p2", "p2", "", "", 6668, False, {}, None
    )
    assert parse_message(
        {"t": "state", "id": "p1", "online": True, "dps": {"19": 2.5, "3": None}, "ts": None}
    ) == StateUpdate("p1", True, {"19": 2.5, "3": None}, 0)
    assert parse_message({"t": "removed", "id": "p1"}) == Removed("p1")
    assert parse_message({"t": "result", "rid": 3, "ok": True}) == Result(3, True)
    assert parse_message({"t": "result", "rid": 3, "ok": False, "err": "offline"}) == Result(
        3, False, None, "offline", ""
    )
    assert parse_message({"t": "error", "err": "busy"}) == HubNotice("busy", "")
    assert parse_message(HELLO) == HubInfo("fake", "9", 1, 5, 7, 1, None)
    assert parse_message({"t": "later", "x": [1]}) is None


async def test_handshake_failures() -> None:
    async def close_at_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readexactly(2 + 21)
        w.close()

    async def two_records(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readexactly(2 + 21)
        w.write(encode_record(MAGIC + b"\x01") * 2)
        await r.read()
        w.close()

    async def reset(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readexactly(2 + 21)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # RST instead of FIN

    cases: list[tuple[Any, type[Exception], str]] = [
        (close_at_once, HubConnectionError, "closed the connection during the handshake"),
        (two_records, HubProtocolError, "unexpected records"),
        (reset, HubConnectionError, "failed"),
    ]
    for handler, error, text in cases:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(error, match=text):
                await HubClient("127.0.0.1", port, SECRET).connect()
        finally:
            server.close()
            await server.wait_closed()


async def test_refused_ping_still_proves_the_hub_alive() -> None:
    def refuse_pings(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "ping":
            conn.error(req, "internal", "MemoryError")
        else:
            answer_all(conn, req)

    async with fake_hub(refuse_pings) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2, ping_interval=0.05)
        try:
            await client.connect()
            await wait_for(lambda: sum(r["t"] == "ping" for r in hub.requests) >= 3)
            assert client.connected
            assert len(hub.conns) == 1
            assert client.backoff_max == 60.0
        finally:
            await client.close()


async def test_direct_connect_while_supervised_is_kept() -> None:
    async with fake_hub() as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.start()
            await client.wait_connected(5)
            await client.connect()  # replaces the supervised connection
            await client.ping()
            client.wake()  # end the supervisor's backoff wait, if it started one
            for _ in range(3):
                await client.ping()
            assert hub.count == 2  # the supervisor watches the new one, opens no third
            assert client.connected
        finally:
            await client.close()
        assert hub_tasks() == []


# ---------------------------------------------------------------- liveness (hub-protocol §8)
def mute(conn: FakeConn, req: dict[str, Any]) -> None:
    """A hub that went silent right after its hello (Wi-Fi gone, power cut, hung)."""


async def test_a_silent_hub_is_dropped_after_the_silence_timeout() -> None:
    """Nothing received for ``silence_timeout``: the connection ends with a timeout (not after
    the ping's own, much longer, timeout), and the supervisor reconnects."""
    async with fake_hub(mute) as hub:
        client = HubClient(
            "127.0.0.1",
            hub.port,
            SECRET,
            timeout=30,
            ping_after=0.1,
            silence_timeout=0.5,
            backoff_max=0.1,
        )
        links: list[bool] = []
        client.subscribe_connection(links.append)
        try:
            await client.start()
            await wait_for(lambda: links.count(True) >= 2, within=10)  # dropped, then back
            assert links[:2] == [True, False]
            assert isinstance(client.last_error, HubTimeoutError)
            assert "silent for" in str(client.last_error)
            assert any(r["t"] == "ping" for r in hub.conns[0].requests)
        finally:
            await client.close()
        assert hub_tasks() == []


async def test_any_record_is_a_sign_of_life_and_the_idle_ping_still_goes_out() -> None:
    """A hub that pushes states but does not answer a ping (yet) stays connected: every record
    resets the silence timer, as on the direct path (the ping's own ``timeout`` still bounds
    it). The client pings after ``ping_interval`` without sending although it hears the hub:
    the hub drops a client that sent nothing for 90 s."""
    stop = asyncio.Event()
    pushes = 0

    async def pusher(hub: FakeHub) -> None:
        nonlocal pushes
        while not stop.is_set():
            for conn in hub.conns:
                conn.send({"t": "state", "id": "p1", "online": True, "dps": {"19": pushes}})
            pushes += 1
            await asyncio.sleep(0.02)

    async with fake_hub(mute) as hub:
        client = HubClient(
            "127.0.0.1",
            hub.port,
            SECRET,
            timeout=30,
            ping_after=0.2,
            silence_timeout=0.4,
            ping_interval=0.3,
        )
        task = asyncio.create_task(pusher(hub))
        try:
            await client.connect()
            # many silence limits' worth of pushes; the idle ping went out (never for silence:
            # the pushes are 10 times as frequent as ping_after) and is still unanswered
            await wait_for(
                lambda: any(r["t"] == "ping" for r in hub.requests) and pushes >= 100,
                within=20,
            )
            assert client.connected
            assert hub.count == 1
            # the hub stops talking: dropped
            stop.set()
            await wait_for(lambda: not client.connected, within=10)
            assert isinstance(client.last_error, HubTimeoutError)
        finally:
            stop.set()
            await task
            await client.close()


async def test_an_unanswered_time_request_does_not_delay_the_pings() -> None:
    """The clock request after the hello runs beside the keep-alive: pings go out (and are
    answered) while the ``time`` answer is still awaited."""

    def no_time(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] != "time":
            answer_all(conn, req)

    async with fake_hub(no_time) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=60, ping_after=0.05)
        try:
            await client.connect()
            await wait_for(lambda: sum(r["t"] == "ping" for r in hub.requests) >= 3, within=10)
            assert hub.requests[0]["t"] == "time"
            assert client.time_source is None  # still waiting for it
            assert client.connected
        finally:
            await client.close()
        assert hub_tasks() == []


async def test_a_pending_set_stretches_the_silence_limit() -> None:
    """While a ``set`` is pending the hub may stop reading for seconds (two slow requests,
    hub-wide): the silence limit becomes the request's own timeout, so a busy hub that answers
    late is not dropped."""
    loop = asyncio.get_running_loop()
    late: list[asyncio.TimerHandle] = []

    def busy(conn: FakeConn, req: dict[str, Any]) -> None:
        # everything is answered 1 s late (five silence limits), in order
        late.append(loop.call_later(1.0, answer_all, conn, req))

    async with fake_hub(busy) as hub:
        client = HubClient(
            "127.0.0.1",
            hub.port,
            SECRET,
            timeout=10,
            ping_after=0.05,
            silence_timeout=0.2,
            backoff_max=0.1,
        )
        links: list[bool] = []
        client.subscribe_connection(links.append)
        try:
            await client.connect()
            await wait_for(lambda: len(late) >= 2)  # time, a ping: they are answered late
            assert await client.set_dps("p1", {"1": False}) == {"1": False}
            assert links == [True]
            assert hub.count == 1
        finally:
            for handle in late:
                handle.cancel()
            await client.close()


async def test_failed_attempts_are_reported_to_failure_subscribers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every failed background attempt reaches ``subscribe_failure`` with its error:
    ``HubAuthError`` only for a refused secret; a refused connection or a busy hub are other
    errors. A failing callback is logged and changes nothing."""
    wrong_secret: list[HubError] = []
    async with fake_hub() as hub:
        client = HubClient("127.0.0.1", hub.port, b"not-the-secret", backoff_max=0.05)

        def boom(_: HubError) -> None:
            raise RuntimeError("failure callback bug")

        client.subscribe_failure(boom)
        unsubscribe = client.subscribe_failure(wrong_secret.append)
        try:
            await client.start()
            await wait_for(lambda: len(wrong_secret) >= 2)
            unsubscribe()
            unsubscribe()  # twice is harmless
            count = len(wrong_secret)
            await wait_for(lambda: client._backoff.failures >= count + 2)
            assert len(wrong_secret) == count
        finally:
            await client.close()
    assert all(isinstance(e, HubAuthError) for e in wrong_secret)
    assert "failure callback bug" in caplog.text

    refused: list[HubError] = []
    client = HubClient("127.0.0.1", free_port(), SECRET, backoff_max=0.05)
    client.subscribe_failure(refused.append)
    try:
        await client.start()
        await wait_for(lambda: len(refused) >= 2)
    finally:
        await client.close()
    assert all(type(e) is HubConnectionError for e in refused)

    busy: list[HubError] = []
    async with fake_hub(hello=[{"t": "error", "err": "busy", "msg": "too many clients"}]) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, backoff_max=0.05)
        client.subscribe_failure(busy.append)
        try:
            await client.start()
            await wait_for(lambda: len(busy) >= 1)
        finally:
            await client.close()
    assert isinstance(busy[0], HubBusyError)
    assert not isinstance(busy[0], HubAuthError)


# ---------------------------------------------------------------- plug faults (§7.1)
def test_plug_faults_are_parsed() -> None:
    """``fault``: null or missing is fine, a string names the cause (any string: a newer
    firmware may know more), anything else is a protocol error; pushes carry it into the
    plug's state."""
    assert parse_message({**PLUG, "fault": "key"}).fault == "key"  # type: ignore[union-attr]
    assert parse_message({**PLUG, "fault": None}).fault is None  # type: ignore[union-attr]
    assert parse_message(PLUG).fault is None  # type: ignore[union-attr]
    assert parse_message({**PLUG, "fault": "solar_flare"}).fault == "solar_flare"  # type: ignore[union-attr]
    push = parse_message({"t": "state", "id": "p1", "online": False, "fault": "busy"})
    assert push == StateUpdate("p1", False, {}, 0, "busy")
    plug = parse_message({**PLUG, "fault": "unreachable"})
    assert isinstance(plug, PlugState)
    assert isinstance(push, StateUpdate)
    assert apply_state(plug, push).fault == "busy"
    fine = StateUpdate("p1", True, {"1": False}, 9)  # an older firmware's push: no member
    assert apply_state(apply_state(plug, push), fine).fault is None
    assert offline(apply_state(plug, push)).fault == "busy"  # kept while the hub is away
    for bad in (1, True, ["key"], {"cause": "key"}):
        with pytest.raises(HubProtocolError, match="plug message: 'fault' is"):
            parse_message({**PLUG, "fault": bad})
        with pytest.raises(HubProtocolError, match="state push: 'fault' is"):
            parse_message({"t": "state", "id": "p1", "fault": bad})


async def test_faults_reach_the_inventory_and_the_subscribers() -> None:
    hello = [{**PLUG, "online": False, "fault": "key"}, HELLO]
    async with fake_hub(hello=hello) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        seen: list[StateUpdate] = []
        client.subscribe(seen.append)
        try:
            inventory = await client.connect()
            assert inventory.plugs["p1"].fault == "key"
            hub.conns[0].send({"t": "state", "id": "p1", "online": True, "fault": None})
            await wait_for(lambda: bool(seen))
            assert seen[0].fault is None
            assert client.inventory is not None
            assert client.inventory.plugs["p1"].fault is None
            # a malformed fault ends the connection like any malformed member (§5)
            hub.conns[0].send({"t": "state", "id": "p1", "online": True, "fault": 3})
            await wait_for(lambda: not client.connected)
            assert isinstance(client.last_error, HubProtocolError)
        finally:
            await client.close()


async def test_a_push_right_behind_the_inventory_result_is_not_undone() -> None:
    """The hub answers ``inventory`` and pushes a change at once (one TCP segment): the
    client reads the push before the caller resumes; the inventory it returns, and keeps,
    has the push applied (a stale answer once re-raised a plug fault that had cleared)."""
    faulty = {**PLUG, "online": False, "fault": "key"}

    def answer_then_push(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] != "inventory":
            answer_all(conn, req)
            return
        records = [
            faulty,
            {
                "t": "result",
                "rid": req["rid"],
                "ok": True,
                "data": {k: v for k, v in HELLO.items() if k != "t"},
            },
            {"t": "state", "id": "p1", "online": True, "fault": None, "dps": {"1": False}},
        ]
        conn.w.write(b"".join(conn.ch.seal(m) for m in records))

    async with fake_hub(answer_then_push, hello=[faulty, HELLO]) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        seen: list[StateUpdate] = []
        client.subscribe(seen.append)
        try:
            assert (await client.connect()).plugs["p1"].fault == "key"
            inventory = await client.refresh_inventory()
            assert [u.fault for u in seen] == [None]  # the push was read before we resumed
            plug = inventory.plugs["p1"]
            assert (plug.online, plug.fault, plug.dps) == (True, None, {"1": False})
            assert client.inventory is inventory
        finally:
            await client.close()

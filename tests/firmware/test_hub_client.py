"""HubClient behaviour against a scriptable fake hub written with the sans-I/O protocol
(server side): pushes, malformed messages, lost connections, reconnection, callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubClient,
    HubCommandError,
    HubConnectionError,
    HubProtocolError,
    HubTimeoutError,
    StateUpdate,
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

from .conftest import wait_for

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

    def send(self, msg: dict[str, Any]) -> None:
        self.w.write(self.ch.seal(msg))

    def result(self, req: dict[str, Any], data: Any) -> None:
        self.send({"t": "result", "rid": req["rid"], "ok": True, "data": data})

    def error(self, req: dict[str, Any], code: str, msg: str = "") -> None:
        self.send({"t": "result", "rid": req["rid"], "ok": False, "err": code, "msg": msg})


class FakeHub:
    """Accepts clients, authenticates them, sends the inventory, answers with `responder`."""

    def __init__(self, responder: Responder, hello: list[dict[str, Any]] | None = None) -> None:
        self.responder = responder
        self.hello = hello if hello is not None else [PLUG, HELLO]
        self.conns: list[FakeConn] = []
        self.requests: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

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
            for msg in self.hello:
                conn.send(msg)
            rd = RecordReader()
            while data := await r.read(4096):
                for b in rd.feed(data):
                    req = conn.ch.open(b)
                    self.requests.append(req)
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
        if req["t"] == "set":
            conn.w.close()
        elif req["t"] == "ping":
            conn.send({"t": "error", "err": "busy", "msg": "bye"})

    async with fake_hub(hang_up) as hub:
        client = HubClient("127.0.0.1", hub.port, SECRET, timeout=2)
        try:
            await client.connect()
            with pytest.raises(HubConnectionError):
                await client.set_dps("p1", {"1": True})
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

"""HA-side hub channel library without the firmware: the spec's worked example, framing bounds,
record protection, and the client's timeouts and errors against small fake hubs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubClient,
    HubConnectionError,
    HubProtocolError,
    HubTimeoutError,
)
from custom_components.tuya_local_esp.hub.protocol import (
    LABEL_CLIENT,
    LABEL_KEYS,
    LABEL_SERVER,
    MAGIC,
    MAX_RECORD,
    ClientHandshake,
    RecordReader,
    SecureChannel,
    encode_record,
    hmac_sha256,
)

from .conftest import wait_for

V = json.loads((Path(__file__).parents[1] / "vectors" / "hub_channel_v1.json").read_text())
h = bytes.fromhex


def _client() -> ClientHandshake:
    hs = ClientHandshake(V["secret_ascii"], nonce=h(V["nonce_c"]))
    assert hs.hello() == h(V["client_hello_record"])
    proof = hs.receive_server_hello(h(V["server_hello_record"])[2:])
    assert proof == h(V["client_proof_record"])
    return hs


def test_worked_example() -> None:
    hs = _client()
    assert hs.hub_id == "hub1"
    assert hs.channel is not None
    ping = V["c2s_seq0_ping"]
    assert hs.channel.seal({"t": "ping", "rid": 1}, iv=h(ping["iv"])) == h(ping["record"])
    res = V["s2c_seq0_result"]
    assert hs.channel.open(h(res["record"])[2:]) == json.loads(res["message"])


def test_wrong_secret_and_bad_server_hello() -> None:
    hs = ClientHandshake("another-secret-entirely", nonce=h(V["nonce_c"]))
    with pytest.raises(HubAuthError):
        hs.receive_server_hello(h(V["server_hello_record"])[2:])
    hs = ClientHandshake("x")
    with pytest.raises(HubProtocolError, match="version 1"):
        hs.receive_server_hello(MAGIC + b"\x00\x01")
    with pytest.raises(HubProtocolError):
        hs.receive_server_hello(b"XXXX" + bytes(60))
    with pytest.raises(HubProtocolError):
        hs.receive_server_hello(h(V["server_hello_record"])[2:-1])


def test_record_reader_bounds() -> None:
    rd = RecordReader()
    stream = encode_record(b"a" * 10) + encode_record(b"b" * 300)
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += rd.feed(stream[i : i + 7])
    assert out == [b"a" * 10, b"b" * 300]
    assert rd.buffered == 0
    with pytest.raises(HubProtocolError):
        RecordReader().feed(b"\x10\x01")  # 4097 announced: refused before any body arrives
    with pytest.raises(HubProtocolError):
        encode_record(bytes(MAX_RECORD + 1))


def test_record_protection() -> None:
    master = bytes(32)
    client, server = SecureChannel(master), SecureChannel(master, server=True)
    r1 = client.seal({"t": "ping", "rid": 1})
    r2 = client.seal({"t": "ping", "rid": 2})
    assert server.open(r1[2:])["rid"] == 1
    with pytest.raises(HubProtocolError):
        server.open(r1[2:])  # replay
    bad = bytearray(r2[2:])
    bad[17] ^= 0x80
    with pytest.raises(HubProtocolError):
        server.open(bytes(bad))  # tampered
    server2 = SecureChannel(master, server=True)
    with pytest.raises(HubProtocolError):
        server2.open(r2[2:])  # reordered: record 1 arrives first
    with pytest.raises(HubProtocolError):
        server.open(bytes(47))
    with pytest.raises(HubProtocolError):
        client.seal({"x": "y" * MAX_RECORD})
    # direction keys differ: a client cannot be fed its own records back
    with pytest.raises(HubProtocolError):
        SecureChannel(master).open(SecureChannel(master).seal({"t": "x"})[2:])


def _seal_raw(ch: SecureChannel, plain: bytes) -> bytes:
    """A correctly authenticated record around arbitrary (even badly padded) plaintext."""
    import struct

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = bytes(16)
    enc = Cipher(algorithms.AES(ch._tx_enc), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    n = 16 + len(ct) + 32
    tag = hmac_sha256(ch._tx_mac, struct.pack(">QH", ch.tx_seq, n), iv, ct)
    ch.tx_seq += 1
    return iv + ct + tag


@pytest.mark.parametrize(
    ("plain", "match"),
    [
        (b"{}" + bytes(14), "padding"),
        (b"not json" + bytes([8]) * 8, "not JSON"),
        (b"[1,2]" + bytes([11]) * 11, "not a JSON object"),
    ],
)
def test_authenticated_but_bad_plaintext(plain: bytes, match: str) -> None:
    master = bytes(range(32))
    server, client = SecureChannel(master, server=True), SecureChannel(master)
    with pytest.raises(HubProtocolError, match=match):
        client.open(_seal_raw(server, plain))


def test_server_hello_variants() -> None:
    hs = ClientHandshake("x")
    with pytest.raises(HubProtocolError, match="unsupported"):
        hs.receive_server_hello(MAGIC + b"\x02" + bytes(60))
    with pytest.raises(HubProtocolError, match="short"):
        hs.receive_server_hello(MAGIC + b"\x01" + bytes(10))
    nonce_c, nonce_s, hub = bytes(16), bytes(16), "hüb".encode()
    hs = ClientHandshake("secret", nonce=nonce_c)
    t = nonce_c + nonce_s + bytes([len(hub)]) + hub
    body = MAGIC + b"\x01" + nonce_s + bytes([len(hub)]) + hub
    with pytest.raises(HubProtocolError, match="ASCII"):
        hs.receive_server_hello(body + hmac_sha256(b"secret", LABEL_SERVER, t))


# --- client against fake hubs ------------------------------------------------------------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _fake_handshake(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, secret: bytes
) -> SecureChannel:
    body = await r.readexactly(int.from_bytes(await r.readexactly(2)))
    nonce_c, nonce_s, hub = body[5:21], bytes(16), b"fake"
    t = nonce_c + nonce_s + bytes([len(hub)]) + hub
    w.write(
        encode_record(
            MAGIC
            + b"\x01"
            + nonce_s
            + bytes([len(hub)])
            + hub
            + hmac_sha256(secret, LABEL_SERVER, t)
        )
    )
    proof = await r.readexactly(int.from_bytes(await r.readexactly(2)))
    assert proof == hmac_sha256(secret, LABEL_CLIENT, t)
    ch = SecureChannel(hmac_sha256(secret, LABEL_KEYS, t), server=True)
    w.write(
        ch.seal(
            {
                "t": "hello",
                "hub_id": "fake",
                "fw": "0",
                "proto": 1,
                "time": 0,
                "max_plugs": 7,
                "plugs": 0,
            }
        )
    )
    return ch


async def test_client_timeouts_and_errors() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()  # say nothing until the client gives up
        w.close()

    srv, port = await _serve(silent)
    try:
        with pytest.raises(HubTimeoutError):
            await HubClient("127.0.0.1", port, "s", connect_timeout=0.3).connect()
    finally:
        srv.close()
        await srv.wait_closed()

    srv, port = await _serve(silent)
    srv.close()
    await srv.wait_closed()
    with pytest.raises(HubConnectionError):
        await HubClient("127.0.0.1", port, "s").connect()

    secret = b"fake-hub-secret-123"
    requests: list[dict[str, Any]] = []

    async def mute_hub(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ch = await _fake_handshake(r, w, secret)
        rd = RecordReader()
        while data := await r.read(4096):
            requests.extend(ch.open(b) for b in rd.feed(data))
        w.close()

    srv, port = await _serve(mute_hub)
    client = HubClient("127.0.0.1", port, secret, timeout=0.3)
    try:
        inv = await client.connect()
        assert inv.hub_id == "fake"
        assert inv.plugs == {}
        with pytest.raises(HubTimeoutError):
            await client.ping()
        # the clock goes first, right after the hello (HUB-ADDITIONS 1), then our ping
        await wait_for(lambda: len(requests) >= 2)
        assert [r["t"] for r in requests] == ["time", "ping"]
        with pytest.raises(HubAuthError):
            await HubClient("127.0.0.1", port, b"wrong-secret").connect()
    finally:
        await client.close()
        srv.close()
        await srv.wait_closed()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_reader_and_channel_never_crash_on_garbage(chunks: list[bytes]) -> None:
    """Arbitrary bytes only ever produce HubProtocolError (never another exception)."""
    rd = RecordReader()
    ch = SecureChannel(bytes(32))
    hs = ClientHandshake("secret")
    for chunk in chunks:
        try:
            for body in rd.feed(chunk):
                with contextlib.suppress(HubProtocolError):
                    ch.open(body)
                with contextlib.suppress(HubProtocolError, HubAuthError):
                    hs.receive_server_hello(body)
        except HubProtocolError:
            rd = RecordReader()

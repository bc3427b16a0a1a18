"""Fuzzing kit for the HA-side hub channel, shared by ``test_hub_fuzz.py`` (bounded, in CI) and
``benchmarks/bench_fuzz.py`` (long runs): hypothesis strategies for hub messages and channel
bytes, the checks each input must pass, and a small fake hub speaking the channel on loopback.

The fake hub is written from ``docs/hub-protocol.md`` (§4 handshake, §5 records): it derives
the server-to-client keys itself, so that it can also seal plaintexts that are not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import strategies as st

from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubBusyError,
    HubClient,
    HubConnectionError,
    HubProtocolError,
)
from custom_components.tuya_local_esp.hub.models import (
    MAX_RID,
    HubNotice,
    Inventory,
    PlugState,
    parse_health,
    parse_hub_info,
    parse_message,
    parse_set_result,
    parse_time_result,
)
from custom_components.tuya_local_esp.hub.protocol import (
    LABEL_CLIENT,
    LABEL_KEYS,
    LABEL_SERVER,
    MAGIC,
    ClientHandshake,
    RecordReader,
    SecureChannel,
    encode_record,
    hmac_sha256,
)

SECRET = b"fuzz-hub-secret-0123456789"
HUB_ID = b"fuzz"

# --- valid messages (§7) that the mutations start from -------------------------------------
PLUG = {
    "t": "plug",
    "id": "p1",
    "name": "One",
    "ver": "3.3",
    "host": "127.0.0.1",
    "port": 6668,
    "online": True,
    "dps": {"1": True, "19": 253},
    "ts": 100,
    "refresh": [18, 19, 20],
    "fault": None,
}
HELLO = {
    "t": "hello",
    "hub_id": "fuzz",
    "fw": "0.2.0",
    "proto": 1,
    "time": 1_795_300_001,
    "max_plugs": 7,
    "plugs": 1,
    "time_source": "ha",
}
TEMPLATES: list[dict[str, Any]] = [
    PLUG,
    HELLO,
    {"t": "state", "id": "p1", "online": True, "dps": {"1": False}, "ts": 7},
    {"t": "state", "id": "p1", "online": False, "dps": {}, "ts": None},
    {"t": "state", "id": "p1", "online": False, "dps": {}, "ts": 8, "fault": "key"},
    {"t": "removed", "id": "p9"},
    {"t": "result", "rid": 77, "ok": True, "data": {"time": 1}},
    {"t": "result", "rid": 78, "ok": False, "err": "offline", "msg": "plug not connected"},
    {"t": "error", "err": "bad_request", "msg": "missing rid"},
    {"t": "error", "err": "busy", "msg": "too many clients"},
    {"t": "something_new", "x": 1},
]
HEALTH = {
    "heap_free": 1,
    "heap_alloc": 2,
    "uptime_s": 3,
    "rssi": -60,
    "plugs": 1,
    "plugs_online": 1,
    "clients": 1,
    "time": 1_795_300_001,
    "time_synced": True,
    "time_source": "ntp",
    "reset_cause": "watchdog",
    "idf_heap_free": 40_000,
    "idf_heap_largest": 20_000,
    "mp_heap_free": 30_000,
    "mp_heap_largest": 10_000,
}
DATA_TEMPLATES: list[tuple[Callable[[object], object], dict[str, Any]]] = [
    (parse_health, HEALTH),
    (parse_set_result, {"id": "p1", "dps": {"1": True}}),
    (parse_time_result, {"time": 1_795_300_001, "source": "ha"}),
    (parse_hub_info, {k: v for k, v in HELLO.items() if k != "t"}),
]

# --- strategies ---------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
MEMBERS = (
    "t",
    "rid",
    "id",
    "ok",
    "data",
    "err",
    "msg",
    "dps",
    "online",
    "ts",
    "plugs",
    "hub_id",
    "name",
    "ver",
    "host",
    "port",
    "fw",
    "proto",
    "time",
    "max_plugs",
    "time_source",
)
member_names = st.sampled_from(MEMBERS)


@st.composite
def _mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid object with 1-3 members replaced by any JSON value, deleted or added."""
    obj = dict(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.one_of(st.sampled_from(sorted(obj) or ["t"]), member_names))
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = draw(json_values)
    return obj


hub_messages = st.one_of(
    st.sampled_from(TEMPLATES).map(dict),
    _mutated(TEMPLATES),
    st.dictionaries(member_names, json_values, max_size=6),
    json_values,
)
"""Decrypted hub messages: valid ones, mutated ones, arbitrary objects and non-objects."""

result_data = st.one_of(
    st.tuples(st.sampled_from([p for p, _ in DATA_TEMPLATES]), json_values),
    st.sampled_from(range(len(DATA_TEMPLATES))).flatmap(
        lambda i: _mutated([DATA_TEMPLATES[i][1]]).map(lambda d: (DATA_TEMPLATES[i][0], d))
    ),
)
"""(result parser, data) pairs: the ``data`` of the requests' results, mutated or arbitrary."""


# --- checks: each returns True when the input was rejected, raises on anything else ------------
def fuzz_client() -> HubClient:
    """A client with an inventory (one plug), as after a connect, for the message handler."""
    client = HubClient("127.0.0.1", 9, SECRET)
    plug = PlugState("p1", "One", "3.3", "127.0.0.1", 6668, True, {"1": True})
    client._inventory = Inventory("fuzz", "0", 1, 0, 7, {"p1": plug})
    return client


def check_message(client: HubClient, msg: object) -> bool:
    """Feed ``msg`` to the message handler of the read loop; True when it is refused.

    Refused = :class:`HubProtocolError` (malformed) or :class:`HubBusyError` (a ``busy``
    notice ends the connection). Any other exception escapes: that is a crash.
    """
    try:
        message = parse_message(msg)
    except HubProtocolError:
        return True
    if isinstance(message, HubNotice) and message.err == "busy":
        with contextlib.suppress(HubBusyError):
            client._on_message(message)
        return True
    if message is not None:
        client._on_message(message)
    return False


def check_result_data(parse: Callable[[object], object], data: object) -> bool:
    """Parse a result's ``data``; True when refused (:class:`HubProtocolError` only)."""
    try:
        parse(data)
    except HubProtocolError:
        return True
    return False


def check_records(chunks: list[bytes]) -> int:
    """Feed byte chunks to a record reader, each record to the channel and the handshake.

    Returns the number of inputs refused; only the library's errors are tolerated.
    """
    refused = 0
    reader = RecordReader()
    channel = SecureChannel(bytes(32))
    handshake = ClientHandshake("secret")
    for chunk in chunks:
        try:
            bodies = reader.feed(chunk)
        except HubProtocolError:
            refused += 1
            reader = RecordReader()
            continue
        for body in bodies:
            try:
                channel.open(body)
            except HubProtocolError:
                refused += 1
            try:
                handshake.receive_server_hello(body)
            except HubProtocolError, HubAuthError:
                refused += 1
    return refused


def server_keys(master: bytes) -> tuple[bytes, bytes]:
    """The hub's sending keys (§5): AES key s2c_enc and HMAC key s2c_mac."""
    return hmac_sha256(master, b"s2c enc")[:16], hmac_sha256(master, b"s2c mac")


def seal_raw(keys: tuple[bytes, bytes], seq: int, plain: bytes, *, pad: bool = True) -> bytes:
    """A secure record body (§5) around any plaintext, with a valid MAC for ``seq``.

    With ``pad`` false the plaintext is cut to whole 16-byte blocks and encrypted as it is:
    the receiver then sees whatever padding bytes it holds.
    """
    enc_key, mac_key = keys
    if pad:
        n = 16 - len(plain) % 16
        plain += bytes([n]) * n
    else:
        plain = plain[: len(plain) // 16 * 16] or bytes(16)
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    size = 16 + len(ct) + 32
    return iv + ct + hmac_sha256(mac_key, struct.pack(">QH", seq, size), iv, ct)


def check_sealed(plain: bytes, pad: bool) -> bool:
    """Open a correctly authenticated record around ``plain``; True when it is refused."""
    master = bytes(range(32))
    channel = SecureChannel(master)
    try:
        body = seal_raw(server_keys(master), 0, plain, pad=pad)
        channel.open(body)
    except HubProtocolError:
        return True
    return False


sealed_plaintexts = st.one_of(
    st.builds(lambda v: json.dumps(v).encode(), st.one_of(hub_messages, st.just([[[[[[]]]]]] * 3))),
    st.binary(max_size=200),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(min_value=1, max_value=1900)),
)


# --- a fake hub on loopback ----------------------------------------------------------------
class FuzzHub:
    """A hub on 127.0.0.1 that answers ``time`` and ``ping``; before each pong it sends the
    next queued message (so that the message is processed while the client waits)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.queue: list[object] = []
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.server.close_clients()
        await self.server.wait_closed()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            hello = await r.readexactly(int.from_bytes(await r.readexactly(2)))
            nonce_s = os.urandom(16)
            t = hello[5:21] + nonce_s + bytes([len(HUB_ID)]) + HUB_ID
            w.write(encode_record(MAGIC + b"\x01" + t[16:] + hmac_sha256(SECRET, LABEL_SERVER, t)))
            proof = await r.readexactly(int.from_bytes(await r.readexactly(2)))
            if proof != hmac_sha256(SECRET, LABEL_CLIENT, t):
                return
            master = hmac_sha256(SECRET, LABEL_KEYS, t)
            channel = SecureChannel(master, server=True)
            self.connections += 1
            for msg in (PLUG, HELLO):
                w.write(channel.seal(msg))
            reader = RecordReader()
            while data := await r.read(4096):
                for body in reader.feed(data):
                    req = channel.open(body)
                    if req["t"] == "time":
                        data_out: dict[str, Any] = {"time": req["time"], "source": "ha"}
                    elif req["t"] == "ping":
                        data_out = {"time": 1}
                        if self.queue:
                            msg = self.queue.pop(0)
                            rid = msg.get("rid") if isinstance(msg, dict) else None
                            if type(rid) is int and rid == req["rid"]:
                                # never answer the ping itself (both rids are valid: same verdict)
                                msg = {**msg, "rid": MAX_RID}  # type: ignore[dict-item]
                            w.write(channel.seal(msg))  # type: ignore[arg-type]
                    else:
                        continue
                    w.write(
                        channel.seal(
                            {"t": "result", "rid": req["rid"], "ok": True, "data": data_out}
                        )
                    )
        except asyncio.IncompleteReadError, ConnectionError, HubProtocolError:
            pass
        finally:
            w.close()


async def tcp_round(client: HubClient, hub: FuzzHub, msg: object) -> bool:
    """Send ``msg`` from the hub to a connected client, then ping; True when it dropped.

    Raises AssertionError when the outcome contradicts the message handler's verdict: a
    refused message must end the connection with a protocol (or busy) error, an accepted one
    must leave it up.
    """
    refused = check_message(fuzz_client(), msg)
    hub.queue.append(msg)
    try:
        await client.ping()
    except HubConnectionError:
        assert refused, f"connection dropped on an accepted message: {client.last_error}"
        assert isinstance(client.last_error, HubProtocolError | HubBusyError)
        assert not client.connected
        await client.connect()
        return True
    assert not refused, "a refused message left the connection up"
    assert client.connected
    return False

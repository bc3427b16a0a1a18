"""LAN discovery: the sans-I/O codec against real and synthetic vectors, fuzzing, and the asyncio
listener against simulated plugs broadcasting over real UDP sockets on Linux loopback.

Loopback facts these tests rely on (checked on Linux): ``127.255.255.255`` is a broadcast route of
``lo`` (``ip route show table local``); a datagram sent there reaches every socket bound to the
wildcard address on that port (also several SO_REUSEPORT sockets), but not a socket bound to
``127.0.0.1``. So listeners and silent plugs bind ``0.0.0.0`` on ephemeral ports, and tests that run
concurrently cannot see each other's packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tinytuya
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.tuya.const import UDP_KEY, Command
from custom_components.tuya_local_esp.tuya.discovery import (
    DEFAULT_PORTS,
    PORT_ENCRYPTED,
    PORT_PLAIN,
    DiscoveredDevice,
    TuyaDiscoveryError,
    decode_discovery,
    decode_packet,
    encode_discovery_request,
)
from custom_components.tuya_local_esp.tuya.discovery_listener import (
    DiscoveryListener,
    open_udp_socket,
    source_ip_for,
)
from custom_components.tuya_local_esp.tuya.errors import TuyaProtocolError
from custom_components.tuya_local_esp.tuya.frame import pack_55aa, pack_6699
from tests.conftest import load_vectors
from tuya_sim import SimulatedPlug
from tuya_sim.__main__ import build_parser, serve
from tuya_sim.broadcast import PlugBroadcaster, broadcasters_from_args, product_key_for
from tuya_sim.udp import DiscoveryRequestError, broadcast_port, decode_request, encode_broadcast

pytestmark = pytest.mark.usefixtures("socket_enabled")

LOOPBACK_BROADCAST = "127.255.255.255"
REAL = load_vectors("hass-localtuya_test_discovery_udp.json")["vectors"]
SYNTHETIC = [
    v
    for v in load_vectors("synthetic_tinytuya_generated.json")["vectors"]
    if v["name"].startswith("UDP")
]
MISC = load_vectors("misc_examples_and_partial_captures.json")
IV = bytes(range(12))
INFO = {
    "ip": "192.0.2.10",
    "gwId": "bf0123456789abcdefghij",
    "active": 2,
    "ablilty": 0,
    "encrypt": True,
    "productKey": "keyabcdefghijklm",
}
VERSIONS = ["3.1", "3.2", "3.3", "3.4", "3.5"]
WITHIN = 5.0  # upper bound of every wait on the network


async def until(condition: Callable[[], bool], within: float = WITHIN) -> None:
    """Poll ``condition`` (state changed by datagram callbacks) for at most ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the state is plain counters, no event to await
            await asyncio.sleep(0.01)


def misc(name_part: str) -> dict[str, Any]:
    for entries in MISC.values():
        if isinstance(entries, list):
            for entry in entries:
                if name_part in entry.get("name", ""):
                    return entry
    raise KeyError(name_part)


def info_for(version: str, **extra: Any) -> dict[str, Any]:
    return {**INFO, "version": version, **extra}


# ------------------------------------------------------------------------------------ vectors
@pytest.mark.parametrize("vector", REAL, ids=[v["name"] for v in REAL])
def test_real_broadcasts_decode(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["frame_hex"])
    expected = json.loads(vector["decrypted_json"])
    device = decode_discovery(frame, "192.168.1.250")
    assert device is not None
    assert device.device_id == expected["gwId"]
    assert device.ip == expected["ip"]  # the JSON ip wins over the source address
    assert device.source_ip == "192.168.1.250"
    assert device.version == expected["version"]
    assert device.product_key == expected["productKey"]
    assert device.encrypted is True
    assert device.command == vector["cmd"]
    assert device.payload == expected
    packet = decode_packet(frame)
    assert packet.retcode == vector["retcode"] == 0
    assert packet.is_6699 == (vector["prefix"] == "00006699")


@pytest.mark.parametrize("vector", REAL, ids=[v["name"] for v in REAL])
def test_real_broadcasts_reencode_byte_for_byte(vector: dict[str, Any]) -> None:
    """Compact JSON in key order + the spec's framing reproduces the captured frames exactly."""
    info = json.loads(vector["decrypted_json"])
    iv = bytes.fromhex(vector["iv_hex"]) if "iv_hex" in vector else None
    frame = encode_broadcast(info, info["version"], iv=iv)
    assert frame.hex() == vector["frame_hex"]


@pytest.mark.parametrize("vector", SYNTHETIC[:2], ids=["3.3", "3.5"])
def test_synthetic_tinytuya_broadcasts(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["frame_hex"])
    device = decode_discovery(frame)
    assert device is not None
    assert device.payload == json.loads(vector["payload_plaintext"])
    assert (device.version, device.command, device.ip) == (vector["version"], 0x13, "192.0.2.10")
    assert device.source_ip is None
    iv = frame[18:30] if vector["version"] == "3.5" else None
    info = json.loads(vector["payload_plaintext"])
    assert encode_broadcast(info, vector["version"], iv=iv) == frame


def test_req_devinfo_vector_and_round_trip() -> None:
    vector = SYNTHETIC[2]
    frame = bytes.fromhex(vector["frame_hex"])
    assert decode_discovery(frame) is None  # an app request, not a device
    packet = decode_packet(frame)
    assert (packet.command, packet.is_6699, packet.retcode) == (Command.REQ_DEVINFO, True, None)
    assert packet.is_app_request
    assert decode_request(frame) == "192.0.2.1"  # the simulator's device-side decoder agrees
    assert packet.payload == {"from": "app", "ip": "192.0.2.1"}
    # same bytes as tinytuya's scanner for the same IV
    assert encode_discovery_request("192.0.2.1", iv=frame[18:30]) == frame
    fresh = encode_discovery_request("10.1.2.3")
    assert fresh[18:30] != encode_discovery_request("10.1.2.3")[18:30]  # random IVs
    assert decode_request(fresh) == "10.1.2.3"


def test_req_devinfo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        encode_discovery_request("example.org")
    with pytest.raises(ValueError, match="12 bytes"):
        encode_discovery_request("10.0.0.1", iv=b"short")


def test_v31_plaintext_broadcast_example() -> None:
    """ioBroker's 3.1 example JSON on 6666: plaintext, no encryption, MAC from a 20-digit id."""
    info = json.loads(misc("3.1 UDP/6666")["json"])
    frame = encode_broadcast(info, "3.1")
    assert frame[8:12] == bytes(4)  # cmd 0x00
    assert json.dumps(info, separators=(",", ":")).encode() in frame  # in clear
    device = decode_discovery(frame)
    assert device is not None
    assert (device.version, device.encrypted, device.command) == ("3.1", False, Command.UDP)
    assert device.mac == "80:7d:3a:1d:71:78"
    assert decode_packet(frame).retcode == 0


def test_real_v35_fields_round_trip() -> None:
    """The richer 3.5 JSON of tinytuya issue #592 survives a GCM round trip."""
    info = misc("real v3.5 discovery JSON")["json"]
    device = decode_discovery(encode_broadcast(info, "3.5"))
    assert device is not None
    assert device.payload == info
    assert device.payload["lan_cap"] == 5030
    assert device.mac is None  # 22-character ids carry no MAC


def test_ports_per_version() -> None:
    assert DEFAULT_PORTS == (6666, 6667, 7000)
    assert broadcast_port("3.1") == PORT_PLAIN == 6666
    assert {broadcast_port(v) for v in VERSIONS[1:]} == {PORT_ENCRYPTED}
    with pytest.raises(ValueError, match="version"):
        broadcast_port("2.0")
    with pytest.raises(ValueError, match="version"):
        encode_broadcast(INFO, "3.6")


@pytest.mark.parametrize(
    ("version", "cmd", "is_6699"),
    [
        ("3.1", 0x00, False),
        ("3.2", 0x13, False),
        ("3.3", 0x13, False),
        ("3.4", 0x23, False),
        ("3.5", 0x13, True),
    ],
)
def test_encode_broadcast_framing(version: str, cmd: int, is_6699: bool) -> None:
    frame = encode_broadcast(info_for(version), version, seqno=7, iv=IV)
    packet = decode_packet(frame)
    assert (packet.command, packet.is_6699, packet.retcode) == (cmd, is_6699, 0)
    assert packet.encrypted == (version != "3.1")
    assert frame[:4] == (b"\x00\x00\x66\x99" if is_6699 else b"\x00\x00\x55\xaa")
    assert packet.payload == info_for(version)


# ---------------------------------------------------------------------- tolerated variations
def test_trailing_nuls_inside_and_after_the_frame() -> None:
    body = json.dumps(info_for("3.5")).encode() + b"\x00\x00\x00"
    gcm = pack_6699(0, Command.UDP_NEW, bytes(4) + body, UDP_KEY, IV)
    ecb = pack_55aa(0, Command.UDP_NEW, tinytuya_ecb(body), retcode=0)
    plain = pack_55aa(0, Command.UDP, body, retcode=0)
    for frame in (gcm, ecb, plain, gcm + b"\x00" * 5, plain + b"\x00"):
        device = decode_discovery(frame)
        assert device is not None
        assert device.device_id == INFO["gwId"]


def tinytuya_ecb(data: bytes) -> bytes:
    """AES-ECB with the UDP key by tinytuya's own cipher (independent of our crypto module)."""
    return tinytuya.AESCipher(UDP_KEY).encrypt(data, use_base64=False)


def test_plaintext_without_retcode_and_request_without_retcode() -> None:
    bare = pack_55aa(0, Command.UDP, json.dumps(info_for("3.1")).encode())
    packet = decode_packet(bare)
    assert (packet.retcode, packet.encrypted) == (None, False)
    gcm_no_retcode = pack_6699(
        0, Command.UDP_NEW, json.dumps(info_for("3.5")).encode(), UDP_KEY, IV
    )
    assert decode_packet(gcm_no_retcode).retcode is None


def test_missing_or_odd_fields() -> None:
    no_version = {k: v for k, v in info_for("3.3").items() if k != "version"}
    for version, expected in (("3.1", "3.1"), ("3.3", "3.3"), ("3.4", "3.4"), ("3.5", "3.5")):
        device = decode_discovery(encode_broadcast(no_version, version))
        assert device is not None
        assert device.version == expected  # inferred from the frame
    unknown_cmd = pack_55aa(0, 0x77, tinytuya_ecb(json.dumps(no_version).encode()), retcode=0)
    assert decode_discovery(unknown_cmd).version == "3.3"  # type: ignore[union-attr]
    numeric = decode_discovery(encode_broadcast({**INFO, "version": 3.3}, "3.3"))
    assert numeric is not None
    assert numeric.version == "3.3"
    no_pk = decode_discovery(encode_broadcast({"gwId": "abc", "ip": "10.0.0.9"}, "3.3"))
    assert no_pk is not None
    assert (no_pk.product_key, no_pk.ip) == (None, "10.0.0.9")
    # without (or with an invalid) JSON ip, the source address is used
    no_ip = encode_broadcast({"gwId": "abc", "ip": "n/a"}, "3.4")
    assert decode_discovery(no_ip, "10.0.0.7").ip == "10.0.0.7"  # type: ignore[union-attr]
    with pytest.raises(TuyaDiscoveryError, match="ip"):
        decode_discovery(no_ip)


def test_discovered_device_is_hashable_value() -> None:
    a = decode_discovery(encode_broadcast(info_for("3.3"), "3.3"), "127.0.0.1")
    b = decode_discovery(encode_broadcast(info_for("3.3"), "3.3"), "127.0.0.1")
    assert a == b
    assert hash(a) == hash(b)
    assert a is not None
    assert a.identity == (INFO["gwId"], INFO["ip"], "3.3", INFO["productKey"])
    assert "payload" not in repr(a)


# ------------------------------------------------------------------------------ rejections
def _frames() -> list[bytes]:
    frames = [bytes.fromhex(v["frame_hex"]) for v in REAL + SYNTHETIC]
    frames.append(encode_broadcast(info_for("3.1"), "3.1"))
    return frames


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x55",
        b"\x00\x00\x55\xaa",
        b"\x00\x00\x66\x99" + bytes(10),
        b"hello world, not tuya",
        b'{"gwId": "abc", "ip": "10.0.0.1"}',  # bare JSON (no frame) is not accepted
        bytes(70000),
    ],
)
def test_garbage_rejected(data: bytes) -> None:
    with pytest.raises(TuyaDiscoveryError):
        decode_discovery(data)


def test_every_truncation_rejected() -> None:
    for frame in _frames():
        for cut in range(len(frame)):
            with pytest.raises(TuyaDiscoveryError):
                decode_discovery(frame[:cut])


def test_bad_crc_tag_suffix_length_and_trailer_rejected() -> None:
    v33, v34, v35 = (bytes.fromhex(v["frame_hex"]) for v in REAL)
    bad_crc = v33[:-8] + bytes(4) + v33[-4:]
    bad_tag = v35[:-6] + bytes([v35[-6] ^ 1]) + v35[-5:]
    bad_iv = v35[:20] + bytes([v35[20] ^ 0x80]) + v35[21:]
    bad_suffix = v34[:-1] + b"\x56"
    bad_len = v33[:12] + (0xFFFF).to_bytes(4, "big") + v33[16:]
    tiny_len = v35[:14] + (3).to_bytes(4, "big") + v35[18:]
    for frame, reason in (
        (bad_crc, "CRC"),
        (bad_tag, "decrypt"),
        (bad_iv, "decrypt"),
        (bad_suffix, "suffix"),
        (bad_len, "length"),
        (tiny_len, "length"),
        (v33 + b"junk", "after the frame"),
        (v35 + b"\x00\x01", "after the frame"),
    ):
        with pytest.raises(TuyaDiscoveryError, match=reason):
            decode_discovery(frame)


def test_valid_frames_with_bad_content_rejected() -> None:
    def ecb_frame(body: bytes) -> bytes:
        return pack_55aa(0, Command.UDP_NEW, tinytuya_ecb(body), retcode=0)

    cases = {
        "not JSON": ecb_frame(b"\xff\xfenot json"),
        "JSON object": ecb_frame(b"[1, 2, 3]"),
        "gwId": ecb_frame(b'{"ip": "10.0.0.1"}'),
        "gwId ": ecb_frame(b'{"gwId": 5, "ip": "10.0.0.1"}'),
        "padding": pack_55aa(0, Command.UDP_NEW, bytes(32), retcode=0),
        "blocks": pack_55aa(0, Command.UDP_NEW, bytes(20), retcode=0),
        "without payload": pack_55aa(0, Command.UDP_NEW, b"\x01"),
        "not JSON ": pack_55aa(0, Command.UDP, b'{"gwId": "abc", ', retcode=0),
    }
    for reason, frame in cases.items():
        with pytest.raises(TuyaDiscoveryError, match=reason.strip()):
            decode_discovery(frame)
    wrong_key = pack_6699(0, Command.UDP_NEW, b"\x00" * 4 + b"{}", b"0123456789abcdef", IV)
    with pytest.raises(TuyaDiscoveryError, match="decrypt"):
        decode_discovery(wrong_key)


def test_request_decoder_rejects_devices_and_bad_requests() -> None:
    with pytest.raises(DiscoveryRequestError, match="not an app request"):
        decode_request(encode_broadcast(info_for("3.5"), "3.5"))
    bad_ip = pack_6699(0, Command.REQ_DEVINFO, b'{"from": "app", "ip": 7}', UDP_KEY, IV)
    with pytest.raises(DiscoveryRequestError, match="ip"):
        decode_request(bad_ip)
    assert decode_discovery(bad_ip) is None  # still an app request, not a device


def test_discovery_error_is_a_protocol_error() -> None:
    assert issubclass(TuyaDiscoveryError, TuyaProtocolError)


# ------------------------------------------------------------------------------------ fuzzing
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        result = decode_discovery(data)
    except TuyaDiscoveryError:
        return
    assert result is None or isinstance(result, DiscoveredDevice)


@FUZZ
@given(
    prefix=st.sampled_from([b"\x00\x00\x55\xaa", b"\x00\x00\x66\x99"]),
    rest=st.binary(max_size=300),
)
def test_fuzz_behind_a_valid_prefix(prefix: bytes, rest: bytes) -> None:
    with pytest.raises(TuyaDiscoveryError):
        decode_discovery(prefix + rest)


@FUZZ
@given(
    cmd=st.sampled_from([0x00, 0x13, 0x23, 0x25]),
    payload=st.binary(max_size=200),
    retcode=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    six=st.booleans(),
)
def test_fuzz_integrity_valid_frames_with_random_payloads(
    cmd: int, payload: bytes, retcode: int | None, six: bool
) -> None:
    """Frames whose CRC/tag verify but whose content is random: result or the documented error."""
    if six:
        frame = pack_6699(0, cmd, payload, UDP_KEY, IV)
    else:
        frame = pack_55aa(0, cmd, payload, retcode=retcode)
    with contextlib.suppress(TuyaDiscoveryError):
        decode_discovery(frame, "10.0.0.1")


@FUZZ
@given(data=st.data())
def test_fuzz_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    frame = data.draw(st.sampled_from(_frames()))
    index = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = frame[:index] + bytes([frame[index] ^ flip]) + frame[index + 1 :]
    with pytest.raises(TuyaDiscoveryError):
        decode_discovery(mutated)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    version=st.sampled_from(VERSIONS),
    device_id=st.text(min_size=1, max_size=30),
    ip=st.ip_addresses(v=4).map(str),
    extra=st.dictionaries(st.text(max_size=10), _json_values, max_size=5),
)
def test_fuzz_encode_decode_round_trip(
    version: str, device_id: str, ip: str, extra: dict[str, Any]
) -> None:
    info = {**extra, "gwId": device_id, "ip": ip, "version": version}
    device = decode_discovery(encode_broadcast(info, version))
    assert device is not None
    assert (device.device_id, device.ip, device.version) == (device_id, ip, version)
    assert device.payload == info


# ---------------------------------------------------------------------------- tinytuya interop
@pytest.mark.parametrize("version", VERSIONS)
def test_tinytuya_decodes_our_broadcasts(version: str) -> None:
    info = info_for(version)
    text = tinytuya.decrypt_udp(encode_broadcast(info, version))
    assert json.loads(text) == info


def test_tinytuya_decodes_our_request() -> None:
    text = tinytuya.decrypt_udp(encode_discovery_request("192.0.2.77"))
    assert json.loads(text) == {"from": "app", "ip": "192.0.2.77"}


def test_we_decode_tinytuya_packets() -> None:
    """Frames packed by tinytuya's own ``pack_message`` (3.4 0x23 and a 3.5 request)."""
    body = json.dumps(info_for("3.4")).encode()
    msg = tinytuya.TuyaMessage(0, 0x23, 0, tinytuya_ecb(body), 0, True, tinytuya.PREFIX_55AA_VALUE)
    device = decode_discovery(tinytuya.pack_message(msg))
    assert device is not None
    assert (device.version, device.command) == ("3.4", 0x23)
    req = json.dumps({"from": "app", "ip": "10.9.8.7"}).encode()
    msg = tinytuya.TuyaMessage(0, 0x25, None, req, 0, True, tinytuya.PREFIX_6699_VALUE, True)
    frame = tinytuya.pack_message(msg, hmac_key=tinytuya.udpkey)
    assert decode_request(frame) == "10.9.8.7"


# ------------------------------------------------------------------------- sockets and listener
def udp_receiver() -> socket.socket:
    """A blocking wildcard socket on an ephemeral port (receives loopback broadcasts)."""
    sock = open_udp_socket("0.0.0.0", 0, reuse=False)
    sock.setblocking(True)
    sock.settimeout(WITHIN)
    return sock


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = udp_receiver()
    yield sock
    sock.close()


def make_plug(version: str, index: int = 0) -> SimulatedPlug:
    return SimulatedPlug(
        device_id=f"bf{version.replace('.', '')}{index:016d}",
        local_key="0123456789abcdef",
        version=version,
    )


@pytest.fixture
async def listener() -> AsyncIterator[DiscoveryListener]:
    lst = DiscoveryListener(ports=(0, 0, 0), request_interval=None, client_ip="127.0.0.1")
    await lst.start()
    yield lst
    await lst.stop()


async def test_listener_hears_broadcasts_of_every_version(
    listener: DiscoveryListener,
) -> None:
    plain, encrypted, _ = listener.bound_ports
    seen: list[DiscoveredDevice] = []
    listener.subscribe(seen.append)
    plugs = [make_plug(v) for v in ("3.1", "3.3", "3.4", "3.5")]
    casters = [
        PlugBroadcaster(
            plug,
            address=LOOPBACK_BROADCAST,
            interval=0.2,
            port_plain=plain,
            port_encrypted=encrypted,
        )
        for plug in plugs
    ]
    for caster in casters:
        await caster.start()
    try:
        await until(
            lambda: (
                len(listener.devices) == 4
                and min(s.packets for s in listener.devices.values()) >= 2
            )
        )
    finally:
        for caster in casters:
            await caster.stop()
    devices = {s.device.version: s.device for s in listener.devices.values()}
    assert sorted(devices) == ["3.1", "3.3", "3.4", "3.5"]
    for plug in plugs:
        device = devices[plug.version]
        assert device.device_id == plug.device_id
        assert device.ip == "127.0.0.1"
        assert device.source_ip == "127.0.0.1"
        assert device.encrypted == (plug.version != "3.1")
        assert device.product_key == product_key_for(plug.device_id)
    assert {d.command for d in devices.values()} == {0x00, 0x13, 0x23}
    assert len(seen) == listener.stats.devices >= 8  # every packet reported by default
    assert listener.stats.invalid == 0
    assert all(c.stats.broadcasts >= 2 for c in casters)
    for caster in casters:
        assert caster.port == (plain if caster.plug.version == "3.1" else encrypted)


async def test_silent_35_plug_answers_requests_by_unicast(
    listener: DiscoveryListener,
) -> None:
    plug = make_plug("3.5")
    caster = PlugBroadcaster(
        plug,
        address=LOOPBACK_BROADCAST,
        silent=True,
        request_port=0,
        reply_port=listener.bound_ports[2],
        interval=0.05,
    )
    async with caster:
        listener.request_targets = ((LOOPBACK_BROADCAST, caster.request_port),)
        await asyncio.sleep(0.3)  # silent: nothing arrives without a request
        assert listener.devices == {}
        assert caster.stats.broadcasts == 0
        assert listener.send_request() == 1
        async with asyncio.timeout(WITHIN):
            device = await listener.wait_for(plug.device_id)
    assert (device.version, device.ip, device.command) == ("3.5", "127.0.0.1", 0x13)
    assert caster.stats.requests == caster.stats.answers == 1
    assert listener.stats.requests_sent == 1


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


async def test_silent_plugs_and_listener_share_one_port_on_one_host() -> None:
    """The dev setup: HA's listener and silent simulated plugs all on UDP "7000" of one host.

    The plugs bind the broadcast address, so every unicast answer reaches the listener's wildcard
    socket (two wildcard SO_REUSEPORT sockets would split unicast traffic between them).
    """
    port = free_udp_port()
    lst = DiscoveryListener(
        ports=(port,),
        request_interval=None,
        request_targets=[(LOOPBACK_BROADCAST, port)],
        client_ip="127.0.0.1",
    )
    plugs = [make_plug("3.5", i) for i in range(3)]
    casters = [
        PlugBroadcaster(
            plug, address=LOOPBACK_BROADCAST, silent=True, request_port=port, reply_port=port
        )
        for plug in plugs
    ]
    for caster in casters:
        await caster.start()
    await lst.start()
    try:
        assert lst.bound_ports == [port]
        for round_ in range(1, 4):
            assert lst.send_request() == 1
            await until(
                lambda r=round_: (
                    len(lst.devices) == 3 and all(s.packets >= r for s in lst.devices.values())
                )
            )
    finally:
        await lst.stop()
        for caster in casters:
            await caster.stop()
    assert all(c.request_bind == LOOPBACK_BROADCAST for c in casters)
    assert [c.stats.answers for c in casters] == [3, 3, 3]
    assert lst.stats.app_requests == 3  # our own requests, looped back and ignored
    assert sorted(lst.devices) == sorted(p.device_id for p in plugs)


async def test_periodic_requests_wake_a_silent_plug() -> None:
    """The listener's own request timer (no explicit send) reaches the plug; client ip derived."""
    async with PlugBroadcaster(
        make_plug("3.5"), address=LOOPBACK_BROADCAST, silent=True, request_port=0, reply_port=0
    ) as caster:
        lst = DiscoveryListener(
            ports=(0,),
            request_interval=0.1,
            request_targets=[(LOOPBACK_BROADCAST, caster.request_port)],
        )
        caster.reply_port = 0  # set below once the listener's port is known
        await lst.start()
        try:
            caster.reply_port = lst.bound_ports[0]
            async with asyncio.timeout(WITHIN):
                device = await lst.wait_for(lambda d: d.version == "3.5")
        finally:
            await lst.stop()
    assert device.device_id == caster.plug.device_id
    assert lst.stats.requests_sent >= 1
    assert caster.stats.answers >= 1


async def test_requests_are_sent_periodically(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    lst = DiscoveryListener(
        ports=(),
        request_interval=0.1,
        request_targets=[(LOOPBACK_BROADCAST, port)],
        client_ip="127.0.0.1",
    )
    await lst.start()
    try:
        requests = []
        for _ in range(3):
            data, addr = await asyncio.to_thread(receiver.recvfrom, 2048)
            requests.append(decode_request(data))
            assert addr[0] == "127.0.0.1"
    finally:
        await lst.stop()
    assert set(requests) == {"127.0.0.1"}
    assert lst.stats.requests_sent >= 3


def test_source_ip_for_routes() -> None:
    assert source_ip_for(LOOPBACK_BROADCAST) == "127.0.0.1"
    assert source_ip_for("127.0.0.5") == "127.0.0.1"
    assert source_ip_for("not an address") is None


async def test_own_requests_and_garbage_are_not_devices(listener: DiscoveryListener) -> None:
    port = listener.bound_ports[2]
    listener.request_targets = ((LOOPBACK_BROADCAST, port),)
    assert listener.send_request() == 1  # looped back into our own port-7000 socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"\x00\x00\x55\xaa garbage", ("127.0.0.1", port))
    await until(lambda: listener.stats.received >= 2)
    assert listener.stats.app_requests == 1
    assert listener.stats.invalid == 1
    assert listener.devices == {}


async def test_only_changes_and_subscribers(listener: DiscoveryListener, caplog: Any) -> None:
    listener.only_changes = True
    calls: list[DiscoveredDevice] = []
    removed: list[DiscoveredDevice] = []

    def broken(device: DiscoveredDevice) -> None:
        raise RuntimeError("callback bug")

    listener.subscribe(calls.append)
    listener.subscribe(broken)
    unsubscribe = listener.subscribe(removed.append)
    unsubscribe()
    unsubscribe()  # idempotent
    plug = make_plug("3.3")
    caster = PlugBroadcaster(
        plug, address=LOOPBACK_BROADCAST, port=listener.bound_ports[1], interval=0.05
    )
    async with caster:
        await until(lambda: listener.stats.devices >= 3)
        assert len(calls) == 1  # repeated identical broadcasts are not reported
        caster.ip = "127.0.0.9"  # the plug moved (new DHCP lease)
        await until(lambda: len(calls) >= 2)
    assert [c.ip for c in calls] == ["127.0.0.1", "127.0.0.9"]
    assert removed == []
    seen = listener.devices[plug.device_id]
    assert seen.device.ip == "127.0.0.9"
    assert seen.packets >= 4
    assert seen.last_seen > seen.first_seen
    assert "callback bug" in caplog.text


async def test_busy_port_is_skipped_not_raised(caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))  # no SO_REUSEADDR: nobody can share it
        port = busy.getsockname()[1]
        lst = DiscoveryListener(ports=(port, 0), request_interval=None)
        await lst.start()
        try:
            assert lst.running
            assert len(lst.bound_ports) == 1
            assert port not in lst.bound_ports
            assert f"cannot listen on UDP 0.0.0.0:{port}" in caplog.text
        finally:
            await lst.stop()
        lonely = DiscoveryListener(ports=(port,), request_interval=None)
        await lonely.start()
        assert lonely.running
        assert lonely.bound_ports == []
        assert "no UDP port could be bound" in caplog.text
        await lonely.stop()
        assert not lonely.running


async def test_shared_ports_with_reuse() -> None:
    """Two listeners (HA and e.g. another integration) share a port and both hear broadcasts."""
    first = DiscoveryListener(ports=(0,), request_interval=None)
    await first.start()
    second = DiscoveryListener(ports=first.bound_ports, request_interval=None)
    await second.start()
    try:
        assert second.bound_ports == first.bound_ports
        async with PlugBroadcaster(
            make_plug("3.4"), address=LOOPBACK_BROADCAST, port=first.bound_ports[0]
        ):
            async with asyncio.timeout(WITHIN):
                await first.wait_for(lambda d: True)
                await second.wait_for(lambda d: True)
    finally:
        await first.stop()
        await second.stop()


async def test_start_stop_lifecycle() -> None:
    lst = DiscoveryListener(
        ports=(0, 0), request_interval=30.0, request_targets=[(LOOPBACK_BROADCAST, 9)]
    )
    assert not lst.running
    await lst.start()
    ports = lst.bound_ports
    await lst.start()  # no-op while running
    assert lst.bound_ports == ports
    assert lst.stats.requests_sent == 1  # the first request goes out at start
    waiter = asyncio.ensure_future(lst.wait_for("never"))
    await asyncio.sleep(0)
    await lst.stop()
    await lst.stop()  # idempotent
    assert not lst.running
    assert lst.bound_ports == []
    with pytest.raises(asyncio.CancelledError):
        await waiter
    for port in ports:  # really closed: the ports can be bound exclusively again
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(("0.0.0.0", port))


async def test_blocked_sockets_do_not_break_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Home Assistant's test harness raises RuntimeError on a blocked connect: still no raise."""
    from custom_components.tuya_local_esp.tuya import discovery_listener

    def blocked(*_: Any) -> str:
        raise RuntimeError("socket blocked")

    monkeypatch.setattr(discovery_listener, "source_ip_for", blocked)
    lst = DiscoveryListener(ports=(0,), request_interval=10, request_targets=[("10.0.0.255", 9)])
    await lst.start()
    assert lst.running
    assert lst.stats.send_errors == 1
    await lst.stop()


async def test_send_errors_are_counted_not_raised() -> None:
    lst = DiscoveryListener(
        ports=(),
        request_interval=None,
        request_targets=[("not-an-address", 7000), ("127.0.0.1", 9)],
    )
    assert lst.send_request() == 1  # the first target has no route, the second works
    assert lst.stats.send_errors == 1
    bad_client = DiscoveryListener(
        ports=(),
        request_interval=None,
        client_ip="bogus",
        request_targets=[(LOOPBACK_BROADCAST, 9)],
    )
    assert bad_client.send_request() == 0
    assert bad_client.stats.send_errors == 1
    await lst.stop()
    await bad_client.stop()


async def test_wait_for_already_seen_device(listener: DiscoveryListener) -> None:
    async with PlugBroadcaster(
        make_plug("3.1"), address=LOOPBACK_BROADCAST, port=listener.bound_ports[0]
    ):
        async with asyncio.timeout(WITHIN):
            first = await listener.wait_for(lambda d: d.version == "3.1")
    again = await listener.wait_for(first.device_id)  # answered from memory, no wait
    assert again == first


# ------------------------------------------------------------------------------- simulator side
@pytest.mark.parametrize("version", ["3.1", "3.3", "3.4", "3.5"])
async def test_simulator_broadcast_on_the_wire_decoded_by_tinytuya(
    version: str, receiver: socket.socket
) -> None:
    plug = make_plug(version)
    port = receiver.getsockname()[1]
    async with PlugBroadcaster(plug, address=LOOPBACK_BROADCAST, port=port, interval=10):
        data, _ = await asyncio.to_thread(receiver.recvfrom, 2048)
    info = json.loads(tinytuya.decrypt_udp(data))
    assert info["gwId"] == plug.device_id
    assert info["version"] == version
    assert info["ip"] == "127.0.0.1"
    assert info["productKey"].startswith("key")
    assert ("token" in info) == (version in ("3.4", "3.5"))
    assert ("uuid" in info) == (version == "3.5")


async def test_silent_plug_ignores_garbage_and_device_packets() -> None:
    async with PlugBroadcaster(
        make_plug("3.5"), silent=True, request_port=0, request_bind="0.0.0.0"
    ) as caster:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"junk", ("127.0.0.1", caster.request_port))
            tx.sendto(encode_broadcast(info_for("3.3"), "3.3"), ("127.0.0.1", caster.request_port))
        await until(lambda: caster.stats.invalid >= 2)
        assert caster.stats.answers == 0
    assert not caster.running
    assert caster.broadcast_now() is False  # stopped: nothing sent


async def test_broadcast_send_failure_is_counted() -> None:
    async with PlugBroadcaster(make_plug("3.3"), address="127.0.0.1", port=0, interval=10) as c:
        # port 0 is not a valid destination: the send fails, the broadcaster survives
        assert c.broadcast_now() is False
        assert c.stats.send_errors >= 1
        assert c.running


def test_wildcard_host_announces_a_routable_ip() -> None:
    plug = SimulatedPlug(
        device_id="bf00000000000000000w",
        local_key="0123456789abcdef",
        host="0.0.0.0",
    )
    caster = PlugBroadcaster(plug, address=LOOPBACK_BROADCAST)
    assert caster.announcement()["ip"] == "127.0.0.1"
    assert PlugBroadcaster(plug, ip="10.0.0.5").announcement()["ip"] == "10.0.0.5"
    assert product_key_for(plug.device_id) == caster.product_key
    assert len(caster.product_key) == 16


def test_cli_options_build_broadcasters() -> None:
    parser = build_parser()
    plugs = [make_plug("3.3"), make_plug("3.5")]
    assert broadcasters_from_args(parser.parse_args([]), plugs) == []
    args = parser.parse_args(
        [
            "--broadcast",
            LOOPBACK_BROADCAST,
            "--broadcast-interval",
            "2",
            "--broadcast-port-encrypted",
            "16667",
            "--silent",
            "--request-port",
            "17000",
            "--reply-port",
            "17001",
        ]
    )
    casters = broadcasters_from_args(args, plugs)
    assert [(c.silent, c.port, c.address, c.interval) for c in casters] == [
        (False, 16667, LOOPBACK_BROADCAST, 2.0),
        (True, 16667, LOOPBACK_BROADCAST, 2.0),
    ]
    assert (casters[1].request_port, casters[1].reply_port) == (17000, 17001)
    assert casters[1].request_bind == LOOPBACK_BROADCAST
    bound = broadcasters_from_args(
        parser.parse_args(["--silent", "--request-bind", "0.0.0.0"]), plugs
    )
    assert bound[0].request_bind == "0.0.0.0"
    silent_only = broadcasters_from_args(parser.parse_args(["--silent"]), plugs)
    assert [c.plug.version for c in silent_only] == ["3.5"]


async def test_cli_serve_broadcasts(listener: DiscoveryListener) -> None:
    """``python -m tuya_sim --plugs 2 --broadcast 127.255.255.255`` (run in-process via serve)."""
    args = build_parser().parse_args(
        [
            "--broadcast",
            LOOPBACK_BROADCAST,
            "--broadcast-interval",
            "0.1",
            "--broadcast-port-plain",
            str(listener.bound_ports[0]),
            "--broadcast-port-encrypted",
            str(listener.bound_ports[1]),
        ]
    )
    plugs = [make_plug("3.1"), make_plug("3.4")]
    casters = broadcasters_from_args(args, plugs)
    stop, ready = asyncio.Event(), asyncio.Event()
    out = io.StringIO()
    task = asyncio.create_task(serve(plugs, stop=stop, ready=ready, out=out, broadcasters=casters))
    try:
        async with asyncio.timeout(WITHIN):
            await ready.wait()
            for plug in plugs:
                await listener.wait_for(plug.device_id)
    finally:
        stop.set()
        await task
    assert not any(c.running for c in casters)
    assert len(out.getvalue().splitlines()) == 2


async def test_cli_subprocess_broadcasts_and_answers(listener: DiscoveryListener) -> None:
    """End to end: ``python -m tuya_sim --broadcast ... --silent`` heard by the listener."""
    request_port = free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuya_sim",
        "--plugs",
        "2",
        "--port",
        "0",
        "--version",
        "3.5",
        "--silent",
        "--broadcast",
        LOOPBACK_BROADCAST,
        "--request-port",
        str(request_port),
        "--reply-port",
        str(listener.bound_ports[2]),
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):  # interpreter start-up included
            ids = [json.loads(await proc.stdout.readline())["device_id"] for _ in range(2)]
        listener.request_targets = ((LOOPBACK_BROADCAST, request_port),)
        listener.send_request()
        await until(lambda: all(i in listener.devices for i in ids))
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert {listener.devices[i].device.version for i in ids} == {"3.5"}

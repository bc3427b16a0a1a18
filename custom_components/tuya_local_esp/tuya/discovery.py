"""LAN discovery of Tuya devices over UDP: a sans-I/O codec and an asyncio listener.

No Home Assistant imports. Spec = ``../shared/docs/tuya-protocol.md``; the facts used here are in
§3 (table "UDP discovery") and §1 (frame formats):

* UDP 6666: protocol 3.1 devices broadcast a 55AA frame, cmd 0x00 (``UDP``), retcode 0, plaintext
  JSON, CRC32.
* UDP 6667: 3.3 devices broadcast cmd 0x13 (``UDP_NEW``), 3.4 devices cmd 0x23
  (``BOARDCAST_LPV34``): 55AA, retcode 0, AES-128-ECB/PKCS#7 with the UDP key
  ``md5("yGAdlopoPVldABfn")``, CRC32 (never HMAC, even for 3.4). Older 3.5 devices broadcast a 6699
  frame (cmd 0x13, AES-128-GCM with the UDP key) whose plaintext is ``retcode(4) + JSON``.
* UDP 7000: a client (or the Tuya app) broadcasts REQ_DEVINFO 0x25 in a 6699 frame with **no**
  retcode and the plaintext ``{"from":"app","ip":"<client ip>"}``; newer, otherwise silent 3.5
  devices answer with their discovery packet by unicast to ``<client ip>:7000`` (tinytuya
  ``scanner.send_discovery_request``, ``BROADCASTTIME = 6``; tinytuya issue #516). Packets whose
  JSON has ``"from": "app"`` are requests of other apps (or our own, looped back), not devices.
* Decrypted plaintext may end with NUL bytes ("app sometimes has extra NUL bytes at the end",
  tinytuya ``udp_helper.decrypt_udp``; hass-localtuya ``discovery.py``).

Typical use (one listener per process; see :class:`DiscoveryListener`)::

    listener = DiscoveryListener(on_device, only_changes=True)
    await listener.start()           # returns at once; ports in use are logged and skipped
    ...
    await listener.stop()

Framing and crypto come from :mod:`.frame` and :mod:`.crypto`; nothing here logs key material (the
UDP key is public).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .const import (
    MAX_FRAME_LENGTH,
    PREFIX_55AA,
    PREFIX_6699,
    SUFFIX_55AA,
    SUFFIX_6699,
    UDP_KEY,
    VERSIONS,
    Command,
)
from .crypto import BLOCK, GCM_IV_LEN, GCM_TAG_LEN, ecb_decrypt, ecb_encrypt, gcm_decrypt
from .errors import TuyaProtocolError
from .frame import HEADER_55AA_LEN, HEADER_6699_LEN, SUFFIX_LEN, crc32, pack_55aa, pack_6699

_LOGGER = logging.getLogger(__name__)

#: UDP port of plaintext 3.1 broadcasts (spec §3; tinytuya ``UDPPORT``).
PORT_PLAIN: Final = 6666
#: UDP port of encrypted 3.3/3.4/3.5 broadcasts (spec §3; tinytuya ``UDPPORTS``).
PORT_ENCRYPTED: Final = 6667
#: UDP port of REQ_DEVINFO requests and of the answers of silent 3.5 devices (spec §3;
#: tinytuya ``UDPPORTAPP``).
PORT_APP: Final = 7000
#: The three ports a listener binds by default.
DEFAULT_PORTS: Final = (PORT_PLAIN, PORT_ENCRYPTED, PORT_APP)
#: Seconds between two REQ_DEVINFO requests (tinytuya ``scanner.BROADCASTTIME = 6``).
DEFAULT_REQUEST_INTERVAL: Final = 6.0
#: Where REQ_DEVINFO requests go by default: the limited broadcast address, port 7000.
DEFAULT_REQUEST_TARGET: Final = ("255.255.255.255", PORT_APP)

#: Largest datagram :func:`decode_discovery` looks at (bigger ones are rejected).
MAX_DATAGRAM: Final = HEADER_6699_LEN + MAX_FRAME_LENGTH + SUFFIX_LEN

_HEADER_55AA = struct.Struct(">4I")  # prefix, seqno, cmd, length (spec §1.1)
_HEADER_6699 = struct.Struct(">IHIII")  # prefix, reserved, seqno, cmd, length (spec §1.2)
_RETCODE_LEN = 4
_CRC_TRAILER = 4 + SUFFIX_LEN

#: Version assumed when a device's JSON has no ``version`` field, by frame kind and command
#: (spec §3 table: 6666/0x00 is 3.1, 0x13 is 3.3, 0x23 is 3.4, 6699 is 3.5).
_INFERRED_VERSION: Final[dict[int, str]] = {
    Command.UDP: "3.1",
    Command.UDP_NEW: "3.3",
    Command.BOARDCAST_LPV34: "3.4",
}


class TuyaDiscoveryError(TuyaProtocolError):
    """A UDP datagram is not a well-formed Tuya discovery packet.

    Raised for anything that is not exactly one valid frame (bad prefix/suffix/length, truncated,
    trailing bytes other than NULs, bad CRC32 or GCM tag, bad padding), for a plaintext that is not
    a JSON object, and for a device announcement without a usable ``gwId`` or IP address. It is the
    only exception the decoders raise.
    """


@dataclass(frozen=True, slots=True)
class DiscoveryPacket:
    """One decoded discovery datagram, before interpretation.

    Attributes:
        command: the frame's command (0x00, 0x13, 0x23 or 0x25 in practice).
        is_6699: True for a 6699 (3.5, GCM) frame, False for 55AA.
        encrypted: True when the payload was encrypted (ECB or GCM), False for 3.1 plaintext.
        retcode: the 4-byte return code when the packet had one (device packets), else None
            (client requests).
        payload: the JSON object (trailing NULs stripped before parsing).

    """

    command: int
    is_6699: bool
    encrypted: bool
    retcode: int | None
    payload: dict[str, Any] = field(hash=False)

    @property
    def is_app_request(self) -> bool:
        """True for a client's REQ_DEVINFO request (``"from": "app"``), not a device."""
        return self.payload.get("from") == "app"


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """A device announcement decoded from a broadcast (or a silent 3.5 device's answer).

    Attributes:
        device_id: the ``gwId`` (Tuya device id, 20 or 22 characters in practice).
        ip: the IPv4 address the device announces in its JSON ``ip``; the datagram's source
            address when the JSON has none (or an invalid one). Connect to ``ip``:6668.
        version: protocol version to use: the JSON ``version`` (e.g. ``"3.3"``), else inferred from
            the frame (55AA 0x00: 3.1, 0x13: 3.3, 0x23: 3.4, 6699: 3.5; spec §3).
        product_key: the JSON ``productKey`` (None when absent).
        encrypted: True when the packet itself was encrypted (6667/7000), False for a 3.1
            plaintext broadcast (6666). The device's own ``encrypt`` field is in ``payload``.
        command: the frame's command (0x00, 0x13 or 0x23).
        payload: the whole JSON object (``active``, ``ablilty``, ``token``, ``uuid``, ...).
        source_ip: the address the datagram came from (None when decoded without one).

    """

    device_id: str
    ip: str
    version: str
    product_key: str | None
    encrypted: bool
    command: int
    payload: dict[str, Any] = field(hash=False, repr=False)
    source_ip: str | None = None

    @property
    def mac(self) -> str | None:
        """MAC address ``aa:bb:cc:dd:ee:ff`` derived from a 20-hex-digit device id, else None.

        The last 12 digits of such ids are the MAC (heuristic of tinytuya's scanner, spec §3).
        """
        dev = self.device_id.lower()
        if len(dev) != 20 or any(c not in "0123456789abcdef" for c in dev):
            return None
        tail = dev[8:]
        return ":".join(tail[i : i + 2] for i in range(0, 12, 2))

    @property
    def identity(self) -> tuple[str, str, str, str | None]:
        """The fields whose change matters: ``(device_id, ip, version, product_key)``."""
        return (self.device_id, self.ip, self.version, self.product_key)


@dataclass(frozen=True, slots=True)
class DiscoveryRequest:
    """A decoded REQ_DEVINFO request (``{"from": "app", "ip": ...}``, spec §3).

    Attributes:
        client_ip: where the requester wants the answer (unicast to this address, port 7000).
        payload: the whole JSON object.

    """

    client_ip: str
    payload: dict[str, Any] = field(hash=False)


# ---------------------------------------------------------------------------------------- decoding
def _json_object(plain: bytes) -> dict[str, Any]:
    text = plain.rstrip(b"\x00")
    try:
        value = json.loads(text)
    except ValueError, RecursionError:
        raise TuyaDiscoveryError(f"payload is not JSON ({len(text)} bytes)") from None
    if not isinstance(value, dict):
        raise TuyaDiscoveryError("payload is not a JSON object")
    return value


def _frame_end(data: bytes, total: int) -> None:
    """Check that ``data`` holds ``total`` frame bytes followed by nothing but NULs."""
    if len(data) < total:
        raise TuyaDiscoveryError(f"truncated frame ({len(data)} of {total} bytes)")
    if data[total:].strip(b"\x00"):
        raise TuyaDiscoveryError("bytes after the frame")


def _decode_55aa(data: bytes) -> DiscoveryPacket:
    if len(data) < HEADER_55AA_LEN:
        raise TuyaDiscoveryError("truncated 55AA header")
    _, _, cmd, length = _HEADER_55AA.unpack_from(data)
    if not _CRC_TRAILER <= length <= MAX_FRAME_LENGTH:
        raise TuyaDiscoveryError(f"55AA length {length} out of range")
    total = HEADER_55AA_LEN + length
    _frame_end(data, total)
    if int.from_bytes(data[total - 4 : total], "big") != SUFFIX_55AA:
        raise TuyaDiscoveryError("55AA suffix missing")
    end = total - _CRC_TRAILER
    if int.from_bytes(data[end : end + 4], "big") != crc32(data[:end]):
        raise TuyaDiscoveryError("55AA CRC32 mismatch")
    body = data[HEADER_55AA_LEN:end]
    if len(body) <= _RETCODE_LEN and body[:1] != b"{":
        raise TuyaDiscoveryError("55AA frame without payload")
    retcode, encrypted, payload = _55aa_payload(body)
    return DiscoveryPacket(cmd, False, encrypted, retcode, payload)


def _55aa_payload(body: bytes) -> tuple[int | None, bool, dict[str, Any]]:
    """Interpret a 55AA body as ``(retcode, encrypted, JSON object)``.

    Device broadcasts carry a retcode (0) before an ECB ciphertext or plaintext JSON (spec §3
    table; tinytuya's ``decrypt_udp`` always strips it), while frames packed like a client's
    (tinytuya ``pack_message``) have none. The readings are tried in this order and the first that
    yields a JSON object wins: JSON, retcode + JSON, retcode + ECB, ECB. A wrong reading that passes
    PKCS#7 *and* JSON parsing is practically impossible.

    Raises:
        TuyaDiscoveryError: no reading works (the error of the first applicable one).

    """
    retcode = int.from_bytes(body[:_RETCODE_LEN], "big")
    rest = body[_RETCODE_LEN:]
    readings: list[tuple[int | None, bool, bytes]] = []
    if body[:1] == b"{":
        readings.append((None, False, body))
    if rest[:1] == b"{":
        readings.append((retcode, False, rest))
    if rest and len(rest) % BLOCK == 0:
        readings.append((retcode, True, rest))
    if len(body) % BLOCK == 0:
        readings.append((None, True, body))
    errors: list[TuyaDiscoveryError] = []
    for code, encrypted, data in readings:
        try:
            plain = ecb_decrypt(UDP_KEY, data) if encrypted else data
        except TuyaProtocolError as err:
            errors.append(TuyaDiscoveryError(f"55AA payload does not decrypt: {err}"))
            continue
        try:
            return code, encrypted, _json_object(plain)
        except TuyaDiscoveryError as err:
            errors.append(err)
    if errors:
        raise errors[0]
    raise TuyaDiscoveryError("55AA payload is neither JSON nor whole AES blocks")


def _decode_6699(data: bytes) -> DiscoveryPacket:
    if len(data) < HEADER_6699_LEN:
        raise TuyaDiscoveryError("truncated 6699 header")
    _, _, _, cmd, length = _HEADER_6699.unpack_from(data)
    if not GCM_IV_LEN + GCM_TAG_LEN <= length <= MAX_FRAME_LENGTH:
        raise TuyaDiscoveryError(f"6699 length {length} out of range")
    total = HEADER_6699_LEN + length + SUFFIX_LEN
    _frame_end(data, total)
    if int.from_bytes(data[total - 4 : total], "big") != SUFFIX_6699:
        raise TuyaDiscoveryError("6699 suffix missing")
    iv = data[HEADER_6699_LEN : HEADER_6699_LEN + GCM_IV_LEN]
    sealed = data[HEADER_6699_LEN + GCM_IV_LEN : total - SUFFIX_LEN]
    try:
        plain = gcm_decrypt(UDP_KEY, iv, sealed, data[4:HEADER_6699_LEN])
    except TuyaProtocolError as err:
        raise TuyaDiscoveryError(f"6699 payload does not decrypt: {err}") from None
    retcode: int | None = None
    # device answers start with a retcode, client requests do not: look for the '{' (spec §6 #7)
    if plain[:1] != b"{" and plain[4:5] == b"{":
        retcode = int.from_bytes(plain[:_RETCODE_LEN], "big")
        plain = plain[_RETCODE_LEN:]
    return DiscoveryPacket(cmd, True, True, retcode, _json_object(plain))


def decode_packet(data: bytes) -> DiscoveryPacket:
    """Decode one UDP datagram of any discovery format (spec §3), without interpreting it.

    Args:
        data: the datagram: exactly one 55AA or 6699 frame, optionally followed by NUL bytes.

    Returns:
        The command, framing, retcode and JSON object of the packet.

    Raises:
        TuyaDiscoveryError: the datagram is not a valid discovery packet (see the class).

    """
    if len(data) > MAX_DATAGRAM:
        raise TuyaDiscoveryError(f"datagram too long ({len(data)} bytes)")
    prefix = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if prefix == PREFIX_55AA:
        return _decode_55aa(data)
    if prefix == PREFIX_6699:
        return _decode_6699(data)
    raise TuyaDiscoveryError("no 55AA/6699 prefix")


def _ipv4(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def device_from_packet(packet: DiscoveryPacket, source_ip: str | None = None) -> DiscoveredDevice:
    """Interpret a device's :class:`DiscoveryPacket` as a :class:`DiscoveredDevice`.

    Args:
        packet: a decoded packet that is not an app request.
        source_ip: the datagram's source address, used when the JSON has no valid ``ip``.

    Raises:
        TuyaDiscoveryError: the JSON has no non-empty string ``gwId``, or neither the JSON nor
            ``source_ip`` gives an IPv4 address.

    """
    obj = packet.payload
    dev = obj.get("gwId")
    if not isinstance(dev, str) or not dev:
        raise TuyaDiscoveryError("announcement without gwId")
    ip = _ipv4(obj.get("ip")) or _ipv4(source_ip)
    if ip is None:
        raise TuyaDiscoveryError("announcement without a usable ip")
    raw_version = obj.get("version")
    if isinstance(raw_version, str) and raw_version:
        version = raw_version
    elif isinstance(raw_version, float | int) and not isinstance(raw_version, bool):
        version = f"{raw_version:.1f}"
    elif packet.is_6699:
        version = "3.5"
    else:
        version = _INFERRED_VERSION.get(packet.command, "3.3")
    product_key = obj.get("productKey")
    return DiscoveredDevice(
        device_id=dev,
        ip=ip,
        version=version,
        product_key=product_key if isinstance(product_key, str) else None,
        encrypted=packet.encrypted,
        command=packet.command,
        payload=obj,
        source_ip=source_ip,
    )


def decode_discovery(data: bytes, source_ip: str | None = None) -> DiscoveredDevice | None:
    """Decode a datagram received on 6666, 6667 or 7000 (spec §3).

    Args:
        data: the datagram (one frame, optionally followed by NULs).
        source_ip: the datagram's source address (optional; fills
            :attr:`DiscoveredDevice.source_ip` and stands in for a missing JSON ``ip``).

    Returns:
        The announcing device, or None when the packet is a valid REQ_DEVINFO-style request of an
        app (``"from": "app"``) — including our own requests looped back on port 7000.

    Raises:
        TuyaDiscoveryError: the datagram is garbage, truncated, fails its CRC32/GCM tag, or is a
            valid packet without ``gwId``/IP. Never raises anything else.

    """
    packet = decode_packet(data)
    if packet.is_app_request:
        return None
    return device_from_packet(packet, source_ip)


def decode_discovery_request(data: bytes) -> DiscoveryRequest:
    """Decode a REQ_DEVINFO request (what a silent 3.5 device listens for on UDP 7000).

    Raises:
        TuyaDiscoveryError: not a valid packet, not ``"from": "app"``, or no IPv4 ``ip``.

    """
    packet = decode_packet(data)
    if not packet.is_app_request:
        raise TuyaDiscoveryError("not an app request")
    client_ip = _ipv4(packet.payload.get("ip"))
    if client_ip is None:
        raise TuyaDiscoveryError("request without a usable ip")
    return DiscoveryRequest(client_ip, packet.payload)


# ---------------------------------------------------------------------------------------- encoding
def encode_discovery_request(client_ip: str, *, iv: bytes | None = None) -> bytes:
    """Build the REQ_DEVINFO 0x25 request a client broadcasts to UDP 7000 (spec §3).

    A 6699 frame, seqno 0, **no** retcode, AES-128-GCM with the UDP key; the plaintext is
    ``{"from": "app", "ip": client_ip}`` in the spacing tinytuya's ``send_discovery_request``
    produces, so the bytes equal tinytuya's for the same IV.

    Args:
        client_ip: the IPv4 address devices should answer to (unicast, port 7000).
        iv: 12-byte GCM nonce; random when omitted (tests pin it).

    Raises:
        ValueError: ``client_ip`` is not an IPv4 address or ``iv`` is not 12 bytes.

    """
    ip = _ipv4(client_ip)
    if ip is None:
        raise ValueError(f"not an IPv4 address: {client_ip!r}")
    nonce = os.urandom(GCM_IV_LEN) if iv is None else iv
    if len(nonce) != GCM_IV_LEN:
        raise ValueError("iv must be 12 bytes")
    plaintext = json.dumps({"from": "app", "ip": ip}).encode()
    return pack_6699(0, Command.REQ_DEVINFO, plaintext, UDP_KEY, nonce)


def broadcast_port(version: str) -> int:
    """UDP port a device of protocol ``version`` broadcasts to: 6666 for 3.1, else 6667 (spec §3).

    Raises:
        ValueError: unknown version.

    """
    if version not in VERSIONS:
        raise ValueError(f"unsupported protocol version {version!r}")
    return PORT_PLAIN if version == "3.1" else PORT_ENCRYPTED


def encode_broadcast(
    info: Mapping[str, Any], version: str, *, seqno: int = 0, iv: bytes | None = None
) -> bytes:
    """Build the discovery packet a device of protocol ``version`` broadcasts (spec §3 table).

    * 3.1: 55AA, cmd 0x00, retcode 0, plaintext JSON, CRC32 (to UDP 6666);
    * 3.2/3.3: 55AA, cmd 0x13, retcode 0, AES-ECB(UDP key), CRC32 (to 6667; 3.2 is assumed to
      behave like 3.3, no capture exists);
    * 3.4: 55AA, cmd 0x23, otherwise as 3.3 (CRC32, not HMAC);
    * 3.5: 6699, cmd 0x13, GCM(UDP key) over ``retcode 0 + JSON`` (to 6667, or unicast to 7000 as
      the answer to a REQ_DEVINFO).

    The JSON is written compactly in ``info``'s key order, like real devices, so re-encoding a real
    ECB broadcast reproduces it byte for byte.

    Args:
        info: the announcement (``ip``, ``gwId``, ``productKey``, ``version``, ...).
        version: ``"3.1"`` ... ``"3.5"``.
        seqno: frame sequence number (devices send 0).
        iv: 3.5 only: 12-byte GCM nonce, random when omitted.

    Raises:
        ValueError: unknown version.

    """
    port = broadcast_port(version)  # validates the version
    body = json.dumps(dict(info), separators=(",", ":")).encode()
    if version == "3.5":
        nonce = os.urandom(GCM_IV_LEN) if iv is None else iv
        return pack_6699(seqno, Command.UDP_NEW, bytes(4) + body, UDP_KEY, nonce)
    if port == PORT_PLAIN:
        return pack_55aa(seqno, Command.UDP, body, retcode=0)
    cmd = Command.BOARDCAST_LPV34 if version == "3.4" else Command.UDP_NEW
    return pack_55aa(seqno, cmd, ecb_encrypt(UDP_KEY, body), retcode=0)


# ---------------------------------------------------------------------------------------- sockets
def open_udp_socket(host: str, port: int, *, reuse: bool = True) -> socket.socket:
    """A non-blocking IPv4 UDP socket bound to ``host:port`` with SO_BROADCAST set.

    With ``reuse`` SO_REUSEADDR and (where available) SO_REUSEPORT are set, so that several
    listeners on one host (this one, tinytuya, localtuya, a simulator) can share 6666/6667/7000:
    broadcasts reach every socket; a *unicast* datagram reaches only one of them.

    Raises:
        OSError: the socket cannot be bound (e.g. port in use without SO_REUSEADDR, or < 1024
            without privileges).

    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def source_ip_for(target: str, port: int = PORT_APP) -> str | None:
    """The local IPv4 address the kernel would send from to reach ``target`` (no packet sent).

    Used to fill the ``ip`` of a REQ_DEVINFO request when the caller gives none. Returns None when
    there is no route or ``target`` is not a numeric IPv4 address (no DNS lookup is made).
    """
    if _ipv4(target) is None:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.connect((target, port))
        addr = sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()
    return addr if isinstance(addr, str) and addr != "0.0.0.0" else None


DiscoveryCallback = Callable[[DiscoveredDevice], None]


@dataclass(slots=True)
class SeenDevice:
    """What a :class:`DiscoveryListener` remembers about one device id.

    Attributes:
        device: the latest announcement.
        first_seen: ``time.monotonic()`` of the first packet, seconds.
        last_seen: ``time.monotonic()`` of the latest packet, seconds.
        packets: number of packets received from this device.

    """

    device: DiscoveredDevice
    first_seen: float
    last_seen: float
    packets: int = 1


@dataclass(slots=True)
class ListenerStats:
    """Packet counters of a :class:`DiscoveryListener` (for tests and diagnostics)."""

    received: int = 0
    devices: int = 0
    app_requests: int = 0
    invalid: int = 0
    requests_sent: int = 0
    send_errors: int = 0


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: DiscoveryListener, port: int) -> None:
        self._owner = owner
        self._port = port

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._datagram(data, str(addr[0]), self._port)

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("discovery socket on port %d: %s", self._port, exc)


class DiscoveryListener:
    """Listen for Tuya discovery packets and solicit silent 3.5 devices (spec §3).

    Binds one UDP socket per port in ``ports`` (default 6666, 6667, 7000) on ``bind_host`` with
    SO_REUSEADDR/SO_REUSEPORT/SO_BROADCAST. A port that cannot be bound (in use without
    SO_REUSEADDR, privileged, ...) is logged and skipped: :meth:`start` never raises for it. Every
    ``request_interval`` seconds (first at start) a REQ_DEVINFO request is sent to each address in
    ``request_targets`` from an extra ephemeral socket, so that silent 3.5 devices answer by
    unicast to ``client_ip``:7000.

    Callbacks run in the event loop, synchronously, with every valid device packet
    (``only_changes=False``) or only when a device is new or its ``(ip, version, product_key)``
    changed (``only_changes=True``; real devices broadcast every ~5 s). Exceptions raised by a
    callback are logged, never propagated. App requests (``"from": "app"``, including our own,
    looped back) and invalid datagrams are counted in :attr:`stats` and dropped.

    Sharing: broadcasts reach every socket bound to the port, but a *unicast* datagram (the answer
    of a silent 3.5 device) reaches only one socket of an SO_REUSEPORT group, so another program on
    this host bound to the wildcard address on 7000 (tinytuya's scanner, say) may take some
    answers. ``255.255.255.255`` leaves by the default route's interface only and fails
    (ENETUNREACH, counted in ``send_errors``) on a host without default route: prefer the subnet
    broadcast address of each interface. All ports are above 1024: no privileges needed.

    Args:
        callback: optional first subscriber (same as :meth:`subscribe`).
        bind_host: address to bind; ``"0.0.0.0"`` (default) is needed to receive broadcasts
            on Linux (a socket bound to a unicast address does not get them).
        ports: UDP ports to listen on; 0 picks a free port (see :attr:`bound_ports`).
        request_interval: seconds between REQ_DEVINFO requests; None disables them.
        request_targets: ``(address, port)`` pairs the requests go to (default
            ``255.255.255.255:7000``; pass the subnet broadcast addresses of the interfaces).
        client_ip: the ``ip`` written into requests (where answers go); None: for each target, the
            local address the kernel routes it from (:func:`source_ip_for`); a target without a
            route is skipped.
        only_changes: see above.

    """

    def __init__(
        self,
        callback: DiscoveryCallback | None = None,
        *,
        bind_host: str = "0.0.0.0",
        ports: Sequence[int] = DEFAULT_PORTS,
        request_interval: float | None = DEFAULT_REQUEST_INTERVAL,
        request_targets: Iterable[tuple[str, int]] = (DEFAULT_REQUEST_TARGET,),
        client_ip: str | None = None,
        only_changes: bool = False,
    ) -> None:
        self.bind_host = bind_host
        self.ports = tuple(ports)
        self.request_interval = request_interval
        self.request_targets = tuple(request_targets)
        self.client_ip = client_ip
        self.only_changes = only_changes
        self.stats = ListenerStats()
        self._callbacks: list[DiscoveryCallback] = [callback] if callback else []
        self._seen: dict[str, SeenDevice] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._bound: list[int] = []
        self._sender: socket.socket | None = None
        self._requester: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Callable[[DiscoveredDevice], bool], asyncio.Future[Any]]] = []
        self._started = False

    # ---------------------------------------------------------------- public API
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def bound_ports(self) -> list[int]:
        """The ports actually listened on (real numbers for ``0``), in ``ports`` order."""
        return list(self._bound)

    @property
    def devices(self) -> dict[str, SeenDevice]:
        """Copy of the devices seen so far, by device id (entries are never expired)."""
        return dict(self._seen)

    def subscribe(self, callback: DiscoveryCallback) -> Callable[[], None]:
        """Add a callback; returns a function that removes it again (idempotent)."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def start(self) -> None:
        """Bind the ports and start the periodic requests; returns at once.

        Never raises for a port that cannot be bound (logged at WARNING). Calling it again while
        running does nothing.
        """
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        for port in self.ports:
            try:
                sock = open_udp_socket(self.bind_host, port)
            except OSError as err:
                _LOGGER.warning(
                    "Tuya discovery: cannot listen on UDP %s:%d (%s); continuing without it",
                    self.bind_host,
                    port,
                    err.strerror or err,
                )
                continue
            real_port = int(sock.getsockname()[1])
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Endpoint, self, real_port), sock=sock
            )
            self._transports.append(transport)
            self._bound.append(real_port)
        if not self._bound:
            _LOGGER.error("Tuya discovery: no UDP port could be bound, listening for nothing")
        if self.request_interval is not None and self.request_targets:
            self.send_request()  # the first one at once, without blocking
            self._requester = asyncio.create_task(
                self._request_loop(self.request_interval), name="tuya discovery requests"
            )

    async def stop(self) -> None:
        """Close every socket and stop the requests (idempotent). Pending waiters are cancelled."""
        self._started = False
        task, self._requester = self._requester, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        self._bound.clear()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        for _, fut in self._waiters:
            fut.cancel()
        self._waiters.clear()

    def send_request(self) -> int:
        """Send one REQ_DEVINFO request to every target now; returns how many were sent.

        Send errors (no route, broadcast refused, a test harness blocking sockets) are logged at
        DEBUG and counted in :attr:`stats`; they are never raised.
        """
        sent = 0
        if self._sender is None:
            try:
                self._sender = open_udp_socket("0.0.0.0", 0, reuse=False)
            except OSError as err:  # pragma: no cover - ephemeral bind does not fail in practice
                _LOGGER.debug("Tuya discovery: no socket for requests: %s", err)
                self.stats.send_errors += 1
                return 0
        for address, port in self.request_targets:
            try:
                client_ip = self.client_ip or source_ip_for(address, port)
                if client_ip is None:
                    raise OSError(errno.ENETUNREACH, "no route to the request target")
                self._sender.sendto(encode_discovery_request(client_ip), (address, port))
            except Exception as err:  # a background sender must never raise
                self.stats.send_errors += 1
                _LOGGER.debug("Tuya discovery: request to %s:%d failed: %s", address, port, err)
                continue
            sent += 1
            self.stats.requests_sent += 1
        return sent

    async def wait_for(
        self, predicate: Callable[[DiscoveredDevice], bool] | str
    ) -> DiscoveredDevice:
        """Wait for the next announcement matching ``predicate`` (or this device id).

        Already-seen devices match at once. Wrap in ``asyncio.timeout``.

        Raises:
            asyncio.CancelledError: the listener was stopped meanwhile.

        """
        match: Callable[[DiscoveredDevice], bool]
        if isinstance(predicate, str):
            wanted = predicate
            match = lambda device: device.device_id == wanted  # noqa: E731
        else:
            match = predicate
        for seen in self._seen.values():
            if match(seen.device):
                return seen.device
        fut: asyncio.Future[DiscoveredDevice] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    # ---------------------------------------------------------------- internals
    async def _request_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.send_request()

    def _datagram(self, data: bytes, source_ip: str, port: int) -> None:
        self.stats.received += 1
        try:
            device = decode_discovery(data, source_ip)
        except TuyaDiscoveryError as err:
            self.stats.invalid += 1
            _LOGGER.debug(
                "Tuya discovery: ignoring datagram from %s to port %d: %s", source_ip, port, err
            )
            return
        if device is None:
            self.stats.app_requests += 1
            return
        self.stats.devices += 1
        now = time.monotonic()
        seen = self._seen.get(device.device_id)
        changed = seen is None or seen.device.identity != device.identity
        if seen is None:
            self._seen[device.device_id] = SeenDevice(device, now, now)
        else:
            seen.device, seen.last_seen = device, now
            seen.packets += 1
        for match, fut in list(self._waiters):
            if not fut.done() and match(device):
                fut.set_result(device)
        if self.only_changes and not changed:
            return
        for callback in list(self._callbacks):
            try:
                callback(device)
            except Exception:
                _LOGGER.exception("Tuya discovery: error in callback %r", callback)


__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_REQUEST_INTERVAL",
    "DEFAULT_REQUEST_TARGET",
    "PORT_APP",
    "PORT_ENCRYPTED",
    "PORT_PLAIN",
    "DiscoveredDevice",
    "DiscoveryCallback",
    "DiscoveryListener",
    "DiscoveryPacket",
    "DiscoveryRequest",
    "ListenerStats",
    "SeenDevice",
    "TuyaDiscoveryError",
    "broadcast_port",
    "decode_discovery",
    "decode_discovery_request",
    "decode_packet",
    "device_from_packet",
    "encode_broadcast",
    "encode_discovery_request",
    "open_udp_socket",
    "source_ip_for",
]

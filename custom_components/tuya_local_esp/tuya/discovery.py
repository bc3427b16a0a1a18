"""LAN discovery of Tuya devices: a sans-I/O codec of UDP discovery datagrams (client side).

No sockets, no asyncio, no Home Assistant: :mod:`.discovery_listener` owns the sockets. Spec =
``../shared/docs/tuya-protocol.md``; the facts used here are in §3 (table "UDP discovery") and §1
(frame formats):

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

Framing and integrity checks come from :mod:`.frame` (:func:`.frame.parse_one`,
:func:`.frame.verify_55aa`, :func:`.frame.open_6699`); the device side (broadcast encoding, request
decoding) lives in the simulator (``tuya_sim.udp``). Nothing here logs key material (the UDP key is
public).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any, Final

from .const import MAX_FRAME_LENGTH, UDP_KEY, Command
from .crypto import BLOCK, GCM_IV_LEN, ecb_decrypt
from .errors import TuyaFrameError, TuyaProtocolError
from .frame import (
    HEADER_6699_LEN,
    SUFFIX_LEN,
    RawFrame,
    open_6699,
    pack_6699,
    parse_one,
    verify_55aa,
)

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

_RETCODE_LEN = 4

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


def _decode_55aa(frame: RawFrame) -> DiscoveryPacket:
    try:
        body = verify_55aa(frame)  # CRC32 even for 3.4 (spec §3)
    except TuyaFrameError as err:
        raise TuyaDiscoveryError(f"55AA {err}") from None
    if len(body) <= _RETCODE_LEN and body[:1] != b"{":
        raise TuyaDiscoveryError("55AA frame without payload")
    retcode, encrypted, payload = _55aa_payload(body)
    return DiscoveryPacket(frame.cmd, False, encrypted, retcode, payload)


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


def _decode_6699(frame: RawFrame) -> DiscoveryPacket:
    try:
        plain = open_6699(frame, UDP_KEY)
    except TuyaFrameError as err:
        raise TuyaDiscoveryError(f"6699 payload does not decrypt: {err}") from None
    retcode: int | None = None
    # device answers start with a retcode, client requests do not: look for the '{' (spec §6 #7)
    if plain[:1] != b"{" and plain[4:5] == b"{":
        retcode = int.from_bytes(plain[:_RETCODE_LEN], "big")
        plain = plain[_RETCODE_LEN:]
    return DiscoveryPacket(frame.cmd, True, True, retcode, _json_object(plain))


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
    try:
        frame, rest = parse_one(data)
    except TuyaFrameError as err:
        raise TuyaDiscoveryError(str(err)) from None
    if rest.strip(b"\x00"):
        raise TuyaDiscoveryError("bytes after the frame")
    return _decode_6699(frame) if frame.is_6699 else _decode_55aa(frame)


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


__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_REQUEST_INTERVAL",
    "DEFAULT_REQUEST_TARGET",
    "MAX_DATAGRAM",
    "PORT_APP",
    "PORT_ENCRYPTED",
    "PORT_PLAIN",
    "DiscoveredDevice",
    "DiscoveryPacket",
    "TuyaDiscoveryError",
    "decode_discovery",
    "decode_packet",
    "device_from_packet",
    "encode_discovery_request",
]

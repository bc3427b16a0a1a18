"""UDP discovery datagrams as a simulated plug builds and reads them.

Spec §3 of ``/work/shared/docs/tuya-protocol.md``; no code is shared with the integration.

* 3.1 plugs broadcast to UDP 6666 a 55AA frame, cmd 0x00, retcode 0, plaintext JSON, CRC-32;
* 3.2/3.3 plugs broadcast to 6667 cmd 0x13, 3.4 plugs cmd 0x23: 55AA, retcode 0, AES-ECB under the
  public UDP key ``md5("yGAdlopoPVldABfn")``, CRC-32 (never HMAC);
* 3.5 plugs send a 6699 frame, cmd 0x13, AES-GCM (UDP key) over ``retcode(4) + JSON``: broadcast to
  6667 by older firmware, unicast to ``<ip>:7000`` as the answer to a REQ_DEVINFO request;
* a client's REQ_DEVINFO 0x25 request (to UDP 7000) is a 6699 frame without retcode whose JSON is
  ``{"from": "app", "ip": "<client ip>"}``; trailing NULs may follow the JSON (spec §3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from typing import Any, Final

from .codec import VERSIONS
from .crypto import NONCE_LEN, SimCryptoError, aes_ecb_decrypt, aes_ecb_encrypt, aes_gcm_open, crc32
from .frames import BOARDCAST_LPV34, UDP, UDP_NEW, BadFrame, frame_at, pack_55aa, pack_6699

#: Public AES key of discovery datagrams: md5("yGAdlopoPVldABfn") (spec §3).
UDP_KEY: Final = bytes.fromhex("6c1ec8e2bb9bb59ab50b0daf649b410a")
#: Port of 3.1 plaintext broadcasts.
PORT_PLAIN: Final = 6666
#: Port of encrypted broadcasts (3.2-3.5).
PORT_ENCRYPTED: Final = 6667
#: Port of REQ_DEVINFO requests and of the silent 3.5 plugs' answers.
PORT_APP: Final = 7000


class DiscoveryRequestError(ValueError):
    """A datagram that is not a valid REQ_DEVINFO request."""


def broadcast_port(version: str) -> int:
    """6666 for 3.1, 6667 for 3.2-3.5 (spec §3).

    Raises:
        ValueError: unknown version.

    """
    if version not in VERSIONS:
        raise ValueError(f"unsupported protocol version {version!r}")
    return PORT_PLAIN if version == "3.1" else PORT_ENCRYPTED


def encode_broadcast(
    info: Mapping[str, Any], version: str, *, seqno: int = 0, iv: bytes | None = None
) -> bytes:
    """The discovery datagram a plug of ``version`` sends with the JSON ``info``.

    The JSON is compact, in ``info``'s key order, like real plugs. ``iv`` pins the 3.5 GCM nonce
    (random otherwise).

    Raises:
        ValueError: unknown version.

    """
    port = broadcast_port(version)
    body = json.dumps(dict(info), separators=(",", ":")).encode()
    if version == "3.5":
        nonce = os.urandom(NONCE_LEN) if iv is None else iv
        return pack_6699(seqno, UDP_NEW, bytes(4) + body, UDP_KEY, nonce)
    if port == PORT_PLAIN:
        return pack_55aa(seqno, UDP, body)
    cmd = BOARDCAST_LPV34 if version == "3.4" else UDP_NEW
    return pack_55aa(seqno, cmd, aes_ecb_encrypt(UDP_KEY, body))


def _ipv4(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def _json(plain: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(plain.rstrip(b"\x00"))
    except ValueError, RecursionError:
        return None
    return value if isinstance(value, dict) else None


def _plaintexts(data: bytes) -> list[bytes]:
    """Candidate plaintexts of one datagram (with and without a retcode)."""
    try:
        frame, size = frame_at(data)
    except BadFrame as err:
        raise DiscoveryRequestError(str(err)) from None
    if frame is None or data[size:].strip(b"\x00"):
        raise DiscoveryRequestError("not exactly one frame")
    raw = frame.raw
    if frame.gcm:
        try:
            plain = aes_gcm_open(UDP_KEY, raw[18:30], raw[30:-4], raw[4:18])
        except SimCryptoError as err:
            raise DiscoveryRequestError(str(err)) from None
        return [plain, plain[4:]]
    if crc32(raw[:-8]) != int.from_bytes(raw[-8:-4], "big"):
        raise DiscoveryRequestError("CRC-32 does not verify")
    out = []
    for body in (raw[16:-8], raw[20:-8]):
        out.append(body)
        with contextlib.suppress(SimCryptoError):
            out.append(aes_ecb_decrypt(UDP_KEY, body))
    return out


def decode_request(data: bytes) -> str:
    """The client IP of a REQ_DEVINFO request: where the answer goes (unicast, port 7000).

    Raises:
        DiscoveryRequestError: not one valid frame, not JSON with ``"from": "app"``, or no IPv4
            ``ip``.

    """
    for plain in _plaintexts(data):
        obj = _json(plain)
        if obj is None:
            continue
        if obj.get("from") != "app":
            raise DiscoveryRequestError("not an app request")
        ip = _ipv4(obj.get("ip"))
        if ip is None:
            raise DiscoveryRequestError("request without a usable ip")
        return ip
    raise DiscoveryRequestError("payload is not a JSON object")


def open_udp_socket(host: str, port: int, *, reuse: bool = True) -> socket.socket:
    """Non-blocking UDP socket bound to ``host:port`` with SO_BROADCAST.

    With ``reuse`` also SO_REUSEADDR/SO_REUSEPORT, so that a listener on this host shares the port.

    Raises:
        OSError: the port cannot be bound.

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
    """The local IPv4 address the kernel routes ``target`` from (no packet is sent), or None."""
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

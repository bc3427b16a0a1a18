"""Sans-I/O implementation of the hub channel, client side (``docs/hub-protocol.md``).

No sockets here: :class:`ClientHandshake` turns hub bytes into client bytes, :class:`RecordReader`
splits a byte stream into bounded records, and :class:`SecureChannel` seals and opens records
after the handshake. The ESP32 firmware implements the server side in ``esp32/hubproto.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import HubAuthError, HubProtocolError

PROTOCOL_VERSION: Final = 1
MAGIC: Final = b"TLEH"
NONCE_LEN: Final = 16
MAC_LEN: Final = 32
IV_LEN: Final = 16
MAX_RECORD: Final = 4096
"""Largest record body in bytes (the 2-byte length prefix not included), §3."""
MIN_SECURE_RECORD: Final = IV_LEN + 16 + MAC_LEN
MAX_HANDSHAKE_RECORD: Final = 128
MAX_HUB_ID: Final = 32
DEFAULT_PORT: Final = 6670

LABEL_SERVER: Final = b"tuya-local-esp hub v1 server proof"
LABEL_CLIENT: Final = b"tuya-local-esp hub v1 client proof"
LABEL_KEYS: Final = b"tuya-local-esp hub v1 session keys"

type JsonObject = dict[str, Any]


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of the concatenated ``parts`` (32 bytes)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def encode_record(body: bytes) -> bytes:
    """Prefix ``body`` with its length as a big-endian u16 (§3)."""
    if len(body) > MAX_RECORD:
        raise HubProtocolError(f"record of {len(body)} bytes exceeds {MAX_RECORD}")
    return struct.pack(">H", len(body)) + body


class RecordReader:
    """Incremental splitter of the record stream with a bounded buffer.

    ``feed(data)`` returns every complete record body; a length above ``limit`` raises
    :class:`HubProtocolError` at once, before its body is buffered.
    """

    def __init__(self, limit: int = MAX_RECORD) -> None:
        """Create an empty reader accepting bodies of at most ``limit`` bytes."""
        self.limit = limit
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a record."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete record bodies, oldest first."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 2:
            (n,) = struct.unpack_from(">H", self._buf)
            if n > self.limit:
                raise HubProtocolError(f"record of {n} bytes exceeds {self.limit}")
            if len(self._buf) < 2 + n:
                break
            out.append(bytes(self._buf[2 : 2 + n]))
            del self._buf[: 2 + n]
        return out


class SecureChannel:
    """Record protection after the handshake (§5).

    Each direction has its own AES-128 key, HMAC-SHA256 key and implicit 64-bit sequence
    number. A record body is ``IV(16) | AES-CBC(PKCS7(JSON)) | HMAC(mac_key, seq(8) | len(2) |
    IV | ciphertext)``, so a tampered, replayed, reordered or dropped record fails the MAC.
    """

    def __init__(self, master: bytes, *, server: bool = False) -> None:
        """Derive the four direction keys from the handshake's ``master`` secret."""
        mine, theirs = (b"s2c", b"c2s") if server else (b"c2s", b"s2c")
        self._tx_enc = hmac_sha256(master, mine + b" enc")[:16]
        self._tx_mac = hmac_sha256(master, mine + b" mac")
        self._rx_enc = hmac_sha256(master, theirs + b" enc")[:16]
        self._rx_mac = hmac_sha256(master, theirs + b" mac")
        self.tx_seq = 0
        self.rx_seq = 0

    def seal(self, message: JsonObject, *, iv: bytes | None = None) -> bytes:
        """Encrypt and authenticate ``message``; return the whole record (length prefix included).

        Raises :class:`HubProtocolError` if the sealed record would exceed :data:`MAX_RECORD`.
        ``iv`` is for tests only; by default a fresh random IV is used.
        """
        plain = json.dumps(message, separators=(",", ":")).encode()
        pad = 16 - len(plain) % 16
        plain += bytes([pad]) * pad
        size = IV_LEN + len(plain) + MAC_LEN
        if size > MAX_RECORD:
            raise HubProtocolError(f"message of {size} bytes exceeds {MAX_RECORD}")
        iv = os.urandom(IV_LEN) if iv is None else iv
        enc = Cipher(algorithms.AES(self._tx_enc), modes.CBC(iv)).encryptor()
        ct = enc.update(plain) + enc.finalize()
        head = struct.pack(">QH", self.tx_seq, size)
        tag = hmac_sha256(self._tx_mac, head, iv, ct)
        self.tx_seq += 1
        return head[8:] + iv + ct + tag

    def open(self, body: bytes) -> JsonObject:
        """Verify and decrypt one record body (length prefix removed); return the JSON object.

        Raises :class:`HubProtocolError` for a bad size, a MAC mismatch (tampered, replayed or
        reordered record), bad padding, or a body that is not a JSON object.
        """
        size = len(body)
        if size < MIN_SECURE_RECORD or size > MAX_RECORD or (size - IV_LEN - MAC_LEN) % 16:
            raise HubProtocolError("bad record size")
        want = hmac_sha256(self._rx_mac, struct.pack(">QH", self.rx_seq, size), body[:-MAC_LEN])
        if not hmac.compare_digest(want, body[-MAC_LEN:]):
            raise HubProtocolError("record MAC mismatch")
        self.rx_seq += 1
        dec = Cipher(algorithms.AES(self._rx_enc), modes.CBC(body[:IV_LEN])).decryptor()
        plain = dec.update(body[IV_LEN:-MAC_LEN]) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
            raise HubProtocolError("bad padding")
        try:
            message = json.loads(plain[:-pad])
        except (ValueError, RecursionError) as err:  # RecursionError: absurd nesting
            raise HubProtocolError("record is not JSON") from err
        if not isinstance(message, dict):
            raise HubProtocolError("record is not a JSON object")
        return message


class ClientHandshake:
    """Client side of the handshake (§4).

    1. :meth:`hello` -> send the CLIENT_HELLO record;
    2. :meth:`receive_server_hello` with the SERVER_HELLO body -> returns the CLIENT_PROOF
       record to send; afterwards :attr:`hub_id` and :attr:`channel` are set.
    """

    def __init__(self, secret: bytes | str, *, nonce: bytes | None = None) -> None:
        """Prepare a handshake; ``nonce`` is for tests only (default: 16 random bytes)."""
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self._nonce_c = os.urandom(NONCE_LEN) if nonce is None else nonce
        self.hub_id: str | None = None
        self.channel: SecureChannel | None = None

    def hello(self) -> bytes:
        """The CLIENT_HELLO record (length prefix included)."""
        return encode_record(MAGIC + bytes([PROTOCOL_VERSION]) + self._nonce_c)

    def receive_server_hello(self, body: bytes) -> bytes:
        """Check SERVER_HELLO and return the CLIENT_PROOF record.

        Raises :class:`HubAuthError` if the hub's proof is wrong (different secret) and
        :class:`HubProtocolError` for a malformed body or an unsupported version.
        """
        if len(body) < 6 or body[:4] != MAGIC:
            raise HubProtocolError("bad server hello")
        if body[4] == 0:
            raise HubProtocolError(f"hub refused protocol version; it speaks version {body[5]}")
        if body[4] != PROTOCOL_VERSION:
            raise HubProtocolError(f"unsupported hub protocol version {body[4]}")
        if len(body) < 5 + NONCE_LEN + 1:
            raise HubProtocolError("short server hello")
        nonce_s = body[5 : 5 + NONCE_LEN]
        id_len = body[5 + NONCE_LEN]
        id_end = 6 + NONCE_LEN + id_len
        if not 1 <= id_len <= MAX_HUB_ID or len(body) != id_end + MAC_LEN:
            raise HubProtocolError("bad server hello length")
        hub_id = body[6 + NONCE_LEN : id_end]
        transcript = self._nonce_c + nonce_s + bytes([id_len]) + hub_id
        if not hmac.compare_digest(
            hmac_sha256(self._secret, LABEL_SERVER, transcript), body[id_end:]
        ):
            raise HubAuthError("hub proof mismatch: wrong hub secret")
        try:
            self.hub_id = hub_id.decode("ascii")
        except UnicodeDecodeError as err:
            raise HubProtocolError("hub id is not ASCII") from err
        self.channel = SecureChannel(hmac_sha256(self._secret, LABEL_KEYS, transcript))
        return encode_record(hmac_sha256(self._secret, LABEL_CLIENT, transcript))

"""Message codec of a Tuya device (the simulator's side of one connection), per protocol version.

Written from the spec (``/work/shared/docs/tuya-protocol.md``) with no code shared with the
integration. :class:`DeviceCodec` decodes what a client sends and encodes what a plug answers:

* 3.1 (spec §2.2): a client's CONTROL is ``"3.1" + md5 signature + base64(AES-ECB(json))`` and must
  be signed; every other request is plaintext JSON. The plug encrypts its STATUS pushes the same way
  and answers the rest in plaintext. CRC-32 frames.
* 3.2/3.3 (spec §2.3, §2.4): every payload is AES-ECB under the local key; clients put the
  ``"3.x"+12`` header in clear before the ciphertext (except the §2.1 skip-list); the plug does so
  only for STATUS (where real plugs write a *source header*). CRC-32 frames.
* 3.4 (spec §2.5): the header is inside the AES-ECB ciphertext; frames end with an HMAC-SHA256
  keyed with the session key (the local key for the handshake); empty ACKs have no ciphertext.
* 3.5 (spec §2.6): 6699 frames, AES-GCM, plaintext ``[retcode] [header] json``.
* 3.4/3.5 handshake (spec §2.7): :class:`DeviceHandshake`.

Frames from the plug carry a retcode (spec §1.1); frames from clients never do.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .crypto import (
    NONCE_LEN,
    SimCryptoError,
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    aes_gcm_open,
    aes_gcm_seal,
    crc32,
    hmac_sha256,
    md5_signature_31,
    same,
)
from .frames import CONTROL, HANDSHAKE, HEADERLESS, STATUS, Frame, pack_55aa, pack_6699

#: Protocol versions the simulator plays.
VERSIONS: Final = ("3.1", "3.2", "3.3", "3.4", "3.5")
#: Length of the ``"3.x"`` + 12 bytes header (spec §2.1).
HEADER_LEN: Final = 15
#: Error strings plugs return as payload with retcode 1 (spec §4).
DATA_UNVALID: Final = b"json obj data unvalid"
DATA_FORMAT_ERROR: Final = b"data format error"


class SimProtocolError(ValueError):
    """A client frame the plug cannot accept: integrity check, key, signature or framing."""


class SimKeyError(SimProtocolError):
    """The client failed to prove the local key during the 3.4/3.5 handshake."""


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded client frame: ``seqno``, ``cmd``, plaintext ``payload`` (header removed)."""

    seqno: int
    cmd: int
    payload: bytes


def dumps(obj: Any) -> bytes:
    """Compact JSON as plugs write it (no spaces)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def dps_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The DPS of a request: ``dps`` (<= 3.3) or ``data.dps`` (3.4+, spec §2.8), or ``{}``."""
    dps = obj.get("dps")
    if not isinstance(dps, Mapping):
        data = obj.get("data")
        dps = data.get("dps") if isinstance(data, Mapping) else None
    return {str(k): v for k, v in dps.items()} if isinstance(dps, Mapping) else {}


def zero_header(version: str) -> bytes:
    """``"3.x"`` followed by 12 zero bytes (spec §2.1)."""
    return version.encode() + bytes(12)


def source_header(version: str, seq: int, source_id: int = 1) -> bytes:
    """A real plug's STATUS header ``"3.x" | crc=0 | seq | source_id`` (spec §2.1)."""
    return version.encode() + struct.pack(">III", 0, seq & 0xFFFFFFFF, source_id)


def _strip_header(data: bytes) -> bytes:
    if len(data) >= HEADER_LEN and data[:2] == b"3.":
        return data[HEADER_LEN:]
    return data


class DeviceCodec:
    """Frames of one client connection, seen from the plug.

    Args:
        version: ``"3.1"`` ... ``"3.5"``.
        local_key: the 16-byte local key.
        nonce_factory: 12-byte GCM nonces for 3.5 frames (random by default).

    Attributes:
        session_key: the 3.4/3.5 session key once agreed (None before; the local key is used).

    Raises:
        ValueError: unknown version or a key that is not 16 bytes.

    """

    def __init__(
        self, version: str, local_key: bytes, *, nonce_factory: Callable[[], bytes] | None = None
    ) -> None:
        """See the class docstring."""
        if version not in VERSIONS:
            raise ValueError(f"unsupported protocol version {version!r}")
        if len(local_key) != 16:
            raise ValueError("local key must be 16 bytes")
        self.version = version
        self.minor = int(version[2])
        self.local_key = local_key
        self.session_key: bytes | None = None
        self._nonce = nonce_factory or (lambda: os.urandom(NONCE_LEN))

    @property
    def needs_handshake(self) -> bool:
        """True for 3.4 and 3.5."""
        return self.minor >= 4

    def key_for(self, cmd: int) -> bytes:
        """The key of a frame with command ``cmd``: the local key for the handshake or before it."""
        if cmd in HANDSHAKE or self.session_key is None:
            return self.local_key
        return self.session_key

    # ------------------------------------------------------------------ plug -> client
    def encode(
        self,
        seqno: int,
        cmd: int,
        payload: bytes = b"",
        *,
        retcode: int = 0,
        header: bytes | None = None,
    ) -> bytes:
        """A frame from the plug carrying ``payload`` (JSON, an error string, or b"" for an ACK).

        ``header`` replaces the ``"3.x"+12 x 00`` header of commands outside the skip-list (a
        STATUS source header, :func:`source_header`).
        """
        if cmd in HEADERLESS or not payload:
            head = b""
        else:
            head = zero_header(self.version) if header is None else header
        key = self.key_for(cmd)
        if self.minor == 5:
            plain = struct.pack(">I", retcode) + head + payload
            return pack_6699(seqno, cmd, plain, key, self._nonce())
        if self.minor == 4:
            body = aes_ecb_encrypt(key, head + payload) if payload else b""
            return pack_55aa(seqno, cmd, body, retcode=retcode, mac_key=key)
        if self.minor >= 2:
            body = aes_ecb_encrypt(self.local_key, payload) if payload else b""
            if cmd == STATUS and body:
                body = head + body
            return pack_55aa(seqno, cmd, body, retcode=retcode)
        if cmd == STATUS and payload:
            b64 = base64.b64encode(aes_ecb_encrypt(self.local_key, payload))
            payload = b"3.1" + md5_signature_31(b64, self.local_key) + b64
        return pack_55aa(seqno, cmd, payload, retcode=retcode)

    # ------------------------------------------------------------------ client -> plug
    def decode(self, frame: Frame | bytes) -> Request:
        """Verify and decrypt a client frame (a :class:`Frame`, or the frame's bytes).

        Raises:
            SimProtocolError: wrong frame kind for the version, bad CRC/HMAC/GCM tag, a payload
                that does not decrypt, a bad or missing 3.1 signature.

        """
        raw = frame.raw if isinstance(frame, Frame) else bytes(getattr(frame, "data", frame))
        gcm = raw[:4] == b"\x00\x00\x66\x99"
        if gcm != (self.minor == 5):
            raise SimProtocolError("frame kind does not match the protocol version")
        try:
            if gcm:
                return self._decode_6699(raw)
            return self._decode_55aa(raw)
        except SimCryptoError as err:
            raise SimProtocolError(str(err)) from None

    def _decode_6699(self, raw: bytes) -> Request:
        seqno, cmd = struct.unpack_from(">II", raw, 6)
        if len(raw) < 18 + NONCE_LEN + 16 + 4:
            raise SimProtocolError("6699 frame too short")
        nonce = raw[18 : 18 + NONCE_LEN]
        plain = aes_gcm_open(self.key_for(cmd), nonce, raw[18 + NONCE_LEN : -4], raw[4:18])
        return Request(seqno, cmd, plain if cmd in HANDSHAKE else _strip_header(plain))

    def _decode_55aa(self, raw: bytes) -> Request:
        seqno, cmd = struct.unpack_from(">II", raw, 4)
        check_len = 32 if self.minor == 4 else 4
        end = len(raw) - 4 - check_len
        if end < 16:
            raise SimProtocolError("frame too short for its check field")
        signed, check = raw[:end], raw[end : end + check_len]
        if self.minor == 4:
            if not same(hmac_sha256(self.key_for(cmd), signed), check):
                raise SimProtocolError("HMAC does not verify")
        elif crc32(signed) != struct.unpack(">I", check)[0]:
            raise SimProtocolError("CRC-32 does not verify")
        body = raw[16:end]
        if self.minor == 4:
            if not body:
                return Request(seqno, cmd, b"")
            plain = aes_ecb_decrypt(self.key_for(cmd), body)
            return Request(seqno, cmd, plain if cmd in HANDSHAKE else _strip_header(plain))
        if self.minor >= 2:
            if len(body) % 16 == 15:
                body = _strip_header(body)  # the clear version header of a client frame
            return Request(seqno, cmd, aes_ecb_decrypt(self.local_key, body) if body else b"")
        return Request(seqno, cmd, self._decode_31(cmd, body))

    def _decode_31(self, cmd: int, body: bytes) -> bytes:
        if body[:3] != b"3.1":
            if cmd == CONTROL:
                raise SimProtocolError("3.1 CONTROL must be signed and encrypted")
            return body
        signature, b64 = body[3:19], body[19:]
        if not same(md5_signature_31(b64, self.local_key), signature):
            raise SimProtocolError("3.1 signature does not verify")
        try:
            ciphertext = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise SimProtocolError("3.1 payload is not base64") from None
        return aes_ecb_decrypt(self.local_key, ciphertext)


class DeviceHandshake:
    """The plug's half of the 3.4/3.5 session-key negotiation (spec §2.7).

    ``handle_start`` takes the client nonce (0x03) and returns the 0x04 payload
    ``device_nonce || HMAC(local_key, client_nonce)``; ``handle_finish`` checks the client's
    ``HMAC(local_key, device_nonce)`` (0x05) and returns the session key: 3.4
    ``AES-ECB(local_key, client_nonce XOR device_nonce)``, 3.5 the 16 ciphertext bytes of
    ``AES-GCM(local_key, nonce=client_nonce[:12])`` over the same XOR.

    Args:
        version: ``"3.4"`` or ``"3.5"``.
        local_key: the 16-byte local key.
        device_nonce: 16 bytes; default 16 random hex characters, as real plugs send.

    """

    def __init__(self, version: str, local_key: bytes, device_nonce: bytes | None = None) -> None:
        """See the class docstring."""
        self.version = version
        self._key = local_key
        self.device_nonce = device_nonce or os.urandom(8).hex().encode()
        self._client_nonce: bytes | None = None
        self.session_key: bytes | None = None

    def handle_start(self, client_nonce: bytes) -> bytes:
        """The 0x04 payload for the client's 0x03 payload.

        Raises:
            SimProtocolError: the client nonce is not 16 bytes.

        """
        if len(client_nonce) != 16:
            raise SimProtocolError("client nonce must be 16 bytes")
        self._client_nonce = bytes(client_nonce)
        return self.device_nonce + hmac_sha256(self._key, client_nonce)

    def handle_finish(self, proof: bytes) -> bytes:
        """Check the client's 0x05 payload; return the 16-byte session key.

        Raises:
            SimProtocolError: FINISH before START.
            SimKeyError: the proof does not verify (the client has another key).

        """
        if self._client_nonce is None:
            raise SimProtocolError("FINISH before START")
        if not same(proof[:32], hmac_sha256(self._key, self.device_nonce)):
            raise SimKeyError("client failed to prove the local key")
        mixed = bytes(a ^ b for a, b in zip(self._client_nonce, self.device_nonce, strict=True))
        if self.version == "3.5":
            key = aes_gcm_seal(self._key, self._client_nonce[:NONCE_LEN], mixed, None)[:16]
        else:
            key = aes_ecb_encrypt(self._key, mixed, padding=False)
        self.session_key = key
        return key

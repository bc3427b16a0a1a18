"""Message layer: turns payloads into frames and frames into payloads, per protocol version.

A :class:`MessageCodec` belongs to one TCP connection of a client (this library talks to plugs; the
device side lives in the simulator, ``tuya_sim``, written independently). It knows the protocol
version, the local key and, for 3.4/3.5, the negotiated session key, and
applies the rules of spec §2.1-§2.6:

* 3.1: only CONTROL is encrypted (``"3.1" + md5 signature + base64(AES-ECB)``); the rest is
  plaintext JSON in a CRC32 frame.
* 3.2/3.3: AES-ECB payloads; the ``"3.x"+12`` version header goes in clear before the ciphertext
  except for the commands in ``NO_HEADER_CMDS``.
* 3.4: the version header is inside the AES-ECB ciphertext; HMAC-SHA256 frames keyed with the
  session key (the local key for the three negotiation commands).
* 3.5: 6699 frames, AES-GCM, plaintext ``[retcode] [version header] json``.

Frames from a device carry a 4-byte retcode (spec §1.1, tinytuya ``_receive`` ``no_retcode=False``);
frames from a client never do. Integrity checks (CRC32, HMAC compared in constant time, GCM tag) are
:func:`.frame.verify_55aa` and :func:`.frame.open_6699`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .const import NEGOTIATION_CMDS, NO_HEADER_CMDS, VERSION_HEADER_LEN, VERSIONS
from .crypto import GCM_IV_LEN, ecb_decrypt, ecb_encrypt, v31_signature
from .errors import TuyaFrameError, TuyaProtocolError
from .frame import RawFrame, open_6699, pack_55aa, pack_6699, verify_55aa

_V31_SIG_LEN = 16


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded Tuya message.

    Attributes:
        seqno: sequence number of the frame.
        cmd: command number.
        retcode: the device's return code (None when the frame was too short to carry one).
        payload: plaintext after the retcode and version header were removed (usually JSON,
            sometimes an error string such as ``b"data format error"``, often empty for ACKs).

    """

    seqno: int
    cmd: int
    retcode: int | None
    payload: bytes

    def json(self) -> dict[str, Any]:
        """Parse the payload as a JSON object.

        Raises:
            TuyaProtocolError: the payload is not a JSON object.

        """
        try:
            value = json.loads(self.payload)
        except ValueError:
            raise TuyaProtocolError(f"payload is not JSON ({len(self.payload)} bytes)") from None
        if not isinstance(value, dict):
            raise TuyaProtocolError("payload is not a JSON object")
        return value


def version_header(version: str) -> bytes:
    """The 15-byte ``"3.x" + 12 x 00`` header (tinytuya ``PROTOCOL_3x_HEADER``; spec §2.1)."""
    return version.encode() + bytes(12)


class MessageCodec:
    """Encode a client's requests and decode a device's answers on one connection.

    Args:
        version: protocol version, one of ``"3.1"`` ... ``"3.5"``.
        local_key: the device's 16-byte local key.
        iv_factory: returns a fresh 12-byte GCM nonce (3.5); random by default.

    Raises:
        ValueError: unknown version or a key that is not 16 bytes.

    """

    def __init__(
        self,
        version: str,
        local_key: bytes,
        *,
        iv_factory: Callable[[], bytes] | None = None,
    ) -> None:
        """Set up a codec; see the class docstring."""
        if version not in VERSIONS:
            raise ValueError(f"unsupported protocol version {version!r}")
        if len(local_key) != 16:
            raise ValueError("local key must be 16 bytes")
        self.version = version
        self.local_key = local_key
        #: Session key of 3.4/3.5 once negotiated; None before.
        self.session_key: bytes | None = None
        self._iv_factory = iv_factory or (lambda: os.urandom(GCM_IV_LEN))
        self._vnum = float(version)

    @property
    def needs_session(self) -> bool:
        """True for versions that negotiate a session key (3.4, 3.5)."""
        return self._vnum >= 3.4

    def _key_for(self, cmd: int) -> bytes:
        if cmd in NEGOTIATION_CMDS or self.session_key is None:
            return self.local_key
        return self.session_key

    # ------------------------------------------------------------------ encode
    def encode(self, seqno: int, cmd: int, payload: bytes) -> bytes:
        """Build the client frame carrying ``payload`` (plain JSON or raw bytes such as a nonce)."""
        header = b"" if cmd in NO_HEADER_CMDS or not payload else version_header(self.version)
        v = self._vnum
        if v >= 3.5:
            return pack_6699(seqno, cmd, header + payload, self._key_for(cmd), self._iv_factory())
        if v >= 3.4:
            key = self._key_for(cmd)
            return pack_55aa(seqno, cmd, ecb_encrypt(key, header + payload), hmac_key=key)
        if v >= 3.2:
            body = header + ecb_encrypt(self.local_key, payload) if payload else b""
            return pack_55aa(seqno, cmd, body)
        if payload and cmd == 0x07:  # 3.1: only CONTROL is encrypted and signed (spec §2.2)
            b64 = base64.b64encode(ecb_encrypt(self.local_key, payload))
            payload = b"3.1" + v31_signature(b64, self.local_key) + b64
        return pack_55aa(seqno, cmd, payload)

    # ------------------------------------------------------------------ decode
    def decode(self, frame: RawFrame) -> Message:
        """Verify and decrypt one frame from the device.

        Raises:
            TuyaFrameError: integrity check failed (bad CRC, HMAC or GCM tag) or the frame kind
                does not match the version; the connection may continue with the next frame.
            TuyaProtocolError: the payload could not be decrypted (typically a wrong key).

        """
        v = self._vnum
        if frame.is_6699 != (v >= 3.5):
            raise TuyaFrameError("frame kind does not match the protocol version")
        if frame.is_6699:
            plain = open_6699(frame, self._key_for(frame.cmd))
            retcode, plain = _split_retcode(plain)
            if frame.cmd not in NEGOTIATION_CMDS:  # binary nonces/HMACs may start with b"3."
                plain = self._strip_header(plain)
            return Message(frame.seqno, frame.cmd, retcode, plain)
        body = verify_55aa(frame, self._key_for(frame.cmd) if v >= 3.4 else None)
        retcode, body = _split_retcode(body)
        payload = self._decrypt_55aa(frame.cmd, body)
        return Message(frame.seqno, frame.cmd, retcode, payload)

    def _strip_header(self, data: bytes) -> bytes:
        if len(data) >= VERSION_HEADER_LEN and data[:1] == b"3" and data[1:2] == b".":
            return data[VERSION_HEADER_LEN:]
        return data

    def _decrypt_55aa(self, cmd: int, body: bytes) -> bytes:
        if not body:
            return b""
        v = self._vnum
        if v >= 3.4:
            plain = ecb_decrypt(self._key_for(cmd), body)
            # binary nonces/HMACs of the negotiation may start with b"3.": never a header there
            return plain if cmd in NEGOTIATION_CMDS else self._strip_header(plain)
        if v >= 3.2:
            # The clear "3.x" header is 15 bytes and AES-ECB output a multiple of 16, so a header
            # is present iff the length is 15 mod 16. A ciphertext may itself start with b"{" or
            # b"3." (its first block is constant per device id and key, so for about 1 device in
            # 256 every reply would be misread): decrypt first, and fall back to plaintext only
            # when the bytes do not decrypt.
            if len(body) % 16 == 15:
                body = self._strip_header(body)
            if not body:
                return body  # empty ACK
            try:
                return ecb_decrypt(self.local_key, body)
            except TuyaProtocolError:
                plain = self._strip_header(body)
                if plain[:1] == b"{":
                    return plain  # a plaintext reply some firmware sends
                raise
        # 3.1: replies are plaintext JSON or "3.1" + signature + base64(AES-ECB) (spec §2.2)
        if body[:3] == b"3.1":
            b64 = body[3 + _V31_SIG_LEN :]
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error:
                raise TuyaProtocolError("3.1 payload is not base64") from None
            return ecb_decrypt(self.local_key, raw)
        return body


def _split_retcode(body: bytes) -> tuple[int | None, bytes]:
    """Device frames start with a 4-byte retcode (spec §1.1, §1.2)."""
    if len(body) >= 4:
        return int.from_bytes(body[:4], "big"), body[4:]
    return None, body

"""Framing of the Tuya local protocol: packing and an incremental stream parser.

Two frame kinds (spec §1, tinytuya ``core/header.py`` and ``core/message_helper.py``):

* 55AA (3.1-3.4): ``prefix seqno cmd length [retcode] payload integrity suffix`` with
  ``length`` counting everything after the length field; integrity is CRC32 (4 bytes, 3.1-3.3)
  or HMAC-SHA256 (32 bytes, 3.4), both over the header through the last payload byte.
* 6699 (3.5): ``prefix reserved(2) seqno cmd length iv(12) ciphertext tag(16) suffix`` with
  ``length = 12 + len(ciphertext) + 16``; the 14 bytes after the prefix are the GCM AAD.

The parser only cuts the stream into frames and checks their structure; :func:`verify_55aa` and
:func:`open_6699` check integrity and decrypt once the caller knows the key (:mod:`.message` for
TCP, :mod:`.discovery` for UDP datagrams, cut by :func:`parse_one`).
"""

from __future__ import annotations

import hmac
import struct
import zlib
from dataclasses import dataclass

from .const import (
    MAX_FRAME_LENGTH,
    PREFIX_55AA,
    PREFIX_55AA_BYTES,
    PREFIX_6699,
    PREFIX_6699_BYTES,
    SUFFIX_55AA,
    SUFFIX_55AA_BYTES,
    SUFFIX_6699,
    SUFFIX_6699_BYTES,
)
from .crypto import GCM_IV_LEN, GCM_TAG_LEN, gcm_decrypt, gcm_encrypt, hmac_sha256
from .errors import TuyaFrameError, TuyaProtocolError

_HEADER_55AA = struct.Struct(">4I")  # prefix, seqno, cmd, length
_HEADER_6699 = struct.Struct(">IHIII")  # prefix, reserved, seqno, cmd, length
HEADER_55AA_LEN = _HEADER_55AA.size  # 16
HEADER_6699_LEN = _HEADER_6699.size  # 18
CRC_LEN = 4
HMAC_LEN = 32
SUFFIX_LEN = 4


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One structurally valid frame cut from the stream.

    Attributes:
        is_6699: True for a 3.5 (6699) frame, False for 55AA.
        seqno: sequence number (u32).
        cmd: command number (see :class:`.const.Command`).
        data: the whole frame, prefix through suffix.

    """

    is_6699: bool
    seqno: int
    cmd: int
    data: bytes


def crc32(data: bytes) -> int:
    """Standard zlib CRC-32 as used by Tuya 55AA frames (spec §1.1)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_55aa(
    seqno: int,
    cmd: int,
    payload: bytes,
    *,
    retcode: int | None = None,
    hmac_key: bytes | None = None,
) -> bytes:
    """Build a 55AA frame.

    Args:
        seqno: sequence number (u32).
        cmd: command number.
        payload: bytes after the header (and retcode), already encrypted as the version requires.
        retcode: written after the header when given (frames sent by a device).
        hmac_key: protocol 3.4: HMAC-SHA256 key; otherwise CRC32 is used.

    Returns:
        The complete frame (spec §1.1).

    """
    body = (retcode.to_bytes(4, "big") if retcode is not None else b"") + payload
    trailer = HMAC_LEN if hmac_key is not None else CRC_LEN
    head = _HEADER_55AA.pack(PREFIX_55AA, seqno, cmd, len(body) + trailer + SUFFIX_LEN)
    covered = head + body
    check = (
        hmac_sha256(hmac_key, covered)
        if hmac_key is not None
        else struct.pack(">I", crc32(covered))
    )
    return covered + check + SUFFIX_55AA_BYTES


def pack_6699(seqno: int, cmd: int, plaintext: bytes, key: bytes, iv: bytes) -> bytes:
    """Build a 6699 frame (protocol 3.5) with AES-128-GCM.

    Args:
        seqno: sequence number (u32).
        cmd: command number.
        plaintext: ``[retcode(4)] [version header] json`` as the sender's role requires.
        key: 16-byte GCM key (session key, or the local key during negotiation).
        iv: 12-byte nonce, unique per frame (spec §1.2).

    Returns:
        The complete frame.

    """
    length = GCM_IV_LEN + len(plaintext) + GCM_TAG_LEN
    head = _HEADER_6699.pack(PREFIX_6699, 0, seqno, cmd, length)
    sealed = gcm_encrypt(key, iv, plaintext, head[4:])
    return head + iv + sealed + SUFFIX_6699_BYTES


def _structure(buf: bytes | bytearray, max_length: int) -> tuple[bool, int, int, int] | None:
    """``(is_6699, seqno, cmd, total size)`` of the frame at ``buf[0]``; None: more bytes needed.

    Raises:
        TuyaFrameError: a length field outside its range or a missing suffix.

    """
    is_6699 = buf[:4] == PREFIX_6699_BYTES
    if is_6699:
        if len(buf) < HEADER_6699_LEN:
            return None
        _, _, seqno, cmd, length = _HEADER_6699.unpack_from(buf)
        total = HEADER_6699_LEN + length + SUFFIX_LEN
        minimum = GCM_IV_LEN + GCM_TAG_LEN
        suffix = SUFFIX_6699
    else:
        if len(buf) < HEADER_55AA_LEN:
            return None
        _, seqno, cmd, length = _HEADER_55AA.unpack_from(buf)
        total = HEADER_55AA_LEN + length
        minimum = CRC_LEN + SUFFIX_LEN
        suffix = SUFFIX_55AA
    if not minimum <= length <= max_length:
        raise TuyaFrameError(f"frame length {length} outside {minimum}..{max_length}")
    if len(buf) < total:
        return None
    if int.from_bytes(buf[total - 4 : total], "big") != suffix:
        raise TuyaFrameError("frame suffix missing")
    return is_6699, seqno, cmd, total


def parse_one(data: bytes, max_length: int = MAX_FRAME_LENGTH) -> tuple[RawFrame, bytes]:
    """Cut the one frame that starts at ``data[0]`` (a UDP datagram, say).

    Returns:
        The frame and the bytes after it.

    Raises:
        TuyaFrameError: no 55AA/6699 prefix at 0, truncated, bad length or missing suffix.

    """
    if data[:4] not in (PREFIX_55AA_BYTES, PREFIX_6699_BYTES):
        raise TuyaFrameError("no 55AA/6699 prefix")
    found = _structure(data, max_length)
    if found is None:
        raise TuyaFrameError(f"truncated frame ({len(data)} bytes)")
    is_6699, seqno, cmd, total = found
    return RawFrame(is_6699, seqno, cmd, bytes(data[:total])), bytes(data[total:])


def verify_55aa(frame: RawFrame, hmac_key: bytes | None = None) -> bytes:
    """Check a 55AA frame's CRC32, or with ``hmac_key`` its 3.4 HMAC-SHA256 (spec §1.1).

    The HMAC is compared in constant time.

    Returns:
        The bytes between the 16-byte header and the integrity field (retcode included).

    Raises:
        TuyaFrameError: too short for its integrity field, or the check fails.

    """
    trailer = (HMAC_LEN if hmac_key is not None else CRC_LEN) + SUFFIX_LEN
    data = frame.data
    if len(data) < HEADER_55AA_LEN + trailer:
        raise TuyaFrameError("frame too short for its integrity field")
    end = len(data) - trailer
    covered, check = data[:end], data[end : len(data) - SUFFIX_LEN]
    if hmac_key is not None:
        if not hmac.compare_digest(hmac_sha256(hmac_key, covered), check):
            raise TuyaFrameError("HMAC mismatch (tampered frame or wrong key)")
    elif crc32(covered) != int.from_bytes(check, "big"):
        raise TuyaFrameError("CRC mismatch")
    return data[HEADER_55AA_LEN:end]


def open_6699(frame: RawFrame, key: bytes) -> bytes:
    """Verify the GCM tag of a 6699 frame and return its plaintext (spec §1.2).

    Raises:
        TuyaFrameError: the tag does not verify (tampered frame or wrong key).

    """
    data = frame.data
    iv = data[HEADER_6699_LEN : HEADER_6699_LEN + GCM_IV_LEN]
    sealed = data[HEADER_6699_LEN + GCM_IV_LEN : len(data) - SUFFIX_LEN]
    try:
        return gcm_decrypt(key, iv, sealed, data[4:HEADER_6699_LEN])
    except TuyaProtocolError as err:
        raise TuyaFrameError(str(err)) from None


class FrameParser:
    """Incremental parser that cuts a TCP byte stream into :class:`RawFrame` objects.

    Handles partial reads, several frames per read, junk before a prefix (skipped and counted),
    a bad suffix or an absurd length (reported, then resynchronised on the next prefix). The
    internal buffer never exceeds ``MAX_FRAME_LENGTH`` plus one frame header.
    """

    def __init__(self, max_length: int = MAX_FRAME_LENGTH) -> None:
        """Create a parser accepting length fields up to ``max_length`` bytes."""
        self._buf = bytearray()
        self._max_length = max_length
        #: Bytes skipped while looking for a prefix.
        self.skipped_bytes = 0

    @property
    def buffered(self) -> int:
        """Number of bytes waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[RawFrame | TuyaFrameError]:
        """Add ``data`` and return every complete frame, in order.

        A malformed frame is returned in place as a :class:`TuyaFrameError` instance (not raised)
        so that the frames around it are not lost.
        """
        self._buf += data
        out: list[RawFrame | TuyaFrameError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _resync(self, start: int) -> None:
        """Drop bytes before the next prefix at or after ``start``."""
        buf = self._buf
        i55 = buf.find(PREFIX_55AA_BYTES, start)
        i66 = buf.find(PREFIX_6699_BYTES, start)
        hits = [i for i in (i55, i66) if i >= 0]
        # without a prefix, keep the last 3 bytes: they may start one
        cut = min(hits) if hits else max(start, len(buf) - 3)
        self.skipped_bytes += cut
        del buf[:cut]

    def _next(self) -> RawFrame | TuyaFrameError | None:
        buf = self._buf
        if len(buf) >= 4 and buf[:4] not in (PREFIX_55AA_BYTES, PREFIX_6699_BYTES):
            self._resync(1)
        if len(buf) < 4:
            return None
        try:
            found = _structure(buf, self._max_length)
        except TuyaFrameError as err:
            self._resync(1)
            return err
        if found is None:
            return None
        is_6699, seqno, cmd, total = found
        frame = RawFrame(is_6699, seqno, cmd, bytes(buf[:total]))
        del buf[:total]
        return frame


__all__ = [
    "SUFFIX_55AA_BYTES",
    "FrameParser",
    "RawFrame",
    "crc32",
    "open_6699",
    "pack_55aa",
    "pack_6699",
    "parse_one",
    "verify_55aa",
]

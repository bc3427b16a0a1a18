"""Frame layer of a simulated Tuya device: command numbers, 55AA/6699 framing, stream splitting.

Written from the spec (``/work/shared/docs/tuya-protocol.md``), sharing no code with the
integration:

* 55AA (3.1-3.4, spec §1.1): ``000055AA seqno cmd length [retcode] payload check 0000AA55``; the
  length counts every byte after the length field; ``check`` is CRC-32 (4 bytes) or, for 3.4,
  HMAC-SHA256 (32 bytes), both over the bytes before it. Frames from a device carry the retcode.
* 6699 (3.5, spec §1.2): ``00006699 0000 seqno cmd length nonce(12) ciphertext tag(16) 00009966``
  with ``length = 12 + len(ciphertext) + 16`` and the 14 bytes after the prefix as GCM AAD.

Command numbers: spec §2.0. Lengths above :data:`MAX_LENGTH` are refused (spec §1.3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .crypto import NONCE_LEN, TAG_LEN, aes_gcm_seal, crc32, hmac_sha256

# command numbers (spec §2.0)
UDP: Final = 0x00
SESS_KEY_NEG_START: Final = 0x03
SESS_KEY_NEG_RESP: Final = 0x04
SESS_KEY_NEG_FINISH: Final = 0x05
CONTROL: Final = 0x07
STATUS: Final = 0x08
HEART_BEAT: Final = 0x09
DP_QUERY: Final = 0x0A
CONTROL_NEW: Final = 0x0D
DP_QUERY_NEW: Final = 0x10
UPDATEDPS: Final = 0x12
UDP_NEW: Final = 0x13
BOARDCAST_LPV34: Final = 0x23
REQ_DEVINFO: Final = 0x25
LAN_EXT_STREAM: Final = 0x40

#: Commands whose payload carries no 15-byte version header (spec §2.1).
HEADERLESS: Final = frozenset(
    {
        DP_QUERY,
        DP_QUERY_NEW,
        UPDATEDPS,
        HEART_BEAT,
        SESS_KEY_NEG_START,
        SESS_KEY_NEG_RESP,
        SESS_KEY_NEG_FINISH,
        LAN_EXT_STREAM,
    }
)
#: The handshake commands, always keyed with the real local key (spec §2.7).
HANDSHAKE: Final = frozenset({SESS_KEY_NEG_START, SESS_KEY_NEG_RESP, SESS_KEY_NEG_FINISH})

MAGIC_55AA: Final = b"\x00\x00\x55\xaa"
END_55AA: Final = b"\x00\x00\xaa\x55"
MAGIC_6699: Final = b"\x00\x00\x66\x99"
END_6699: Final = b"\x00\x00\x99\x66"
#: Largest length field accepted (spec §1.3 quotes 1440 and 2000; IR frames reach ~1 KiB).
MAX_LENGTH: Final = 4096

_HEAD_55AA = struct.Struct(">4sIII")
_HEAD_6699 = struct.Struct(">4sHIII")


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame cut from a stream.

    Attributes:
        gcm: True for a 6699 frame (3.5), False for 55AA.
        seqno: sequence number.
        cmd: command number.
        raw: the whole frame, prefix to suffix.

    """

    gcm: bool
    seqno: int
    cmd: int
    raw: bytes


class BadFrame(ValueError):
    """Bytes that are not a frame (bad length or missing suffix); the splitter resynchronises."""


def pack_55aa(
    seqno: int, cmd: int, body: bytes, *, retcode: int | None = 0, mac_key: bytes | None = None
) -> bytes:
    """A 55AA frame carrying ``body`` (already encrypted as the version needs).

    ``retcode`` (a device frame's return code) is written unless None; ``mac_key`` selects the
    3.4 HMAC trailer instead of CRC-32 (spec §1.1).
    """
    rc = b"" if retcode is None else struct.pack(">I", retcode)
    check_len = 32 if mac_key is not None else 4
    head = _HEAD_55AA.pack(MAGIC_55AA, seqno, cmd, len(rc) + len(body) + check_len + 4)
    signed = head + rc + body
    if mac_key is not None:
        check = hmac_sha256(mac_key, signed)
    else:
        check = struct.pack(">I", crc32(signed))
    return signed + check + END_55AA


def pack_6699(seqno: int, cmd: int, plaintext: bytes, key: bytes, nonce: bytes) -> bytes:
    """A 6699 frame: AES-GCM of ``plaintext`` under ``key`` with ``nonce`` (spec §1.2)."""
    head = _HEAD_6699.pack(MAGIC_6699, 0, seqno, cmd, NONCE_LEN + len(plaintext) + TAG_LEN)
    return head + nonce + aes_gcm_seal(key, nonce, plaintext, head[4:]) + END_6699


def frame_at(data: bytes | bytearray) -> tuple[Frame | None, int]:
    """Cut the frame starting at ``data[0]``.

    Returns:
        ``(frame, size)`` for a complete frame, ``(None, 0)`` when more bytes are needed.

    Raises:
        BadFrame: no prefix at 0, a length out of range or a missing suffix.

    """
    magic = data[:4]
    if len(magic) < 4:
        return None, 0
    if magic == MAGIC_55AA:
        if len(data) < _HEAD_55AA.size:
            return None, 0
        _, seqno, cmd, length = _HEAD_55AA.unpack_from(data)
        if not 8 <= length <= MAX_LENGTH:
            raise BadFrame(f"55AA length {length} out of range")
        size, end, gcm = _HEAD_55AA.size + length, END_55AA, False
    elif magic == MAGIC_6699:
        if len(data) < _HEAD_6699.size:
            return None, 0
        _, _, seqno, cmd, length = _HEAD_6699.unpack_from(data)
        if not NONCE_LEN + TAG_LEN <= length <= MAX_LENGTH:
            raise BadFrame(f"6699 length {length} out of range")
        size, end, gcm = _HEAD_6699.size + length + 4, END_6699, True
    else:
        raise BadFrame("no frame prefix")
    if len(data) < size:
        return None, 0
    if data[size - 4 : size] != end:
        raise BadFrame("frame suffix missing")
    return Frame(gcm, seqno, cmd, bytes(data[:size])), size


class FrameSplitter:
    """Cut a TCP byte stream into :class:`Frame` objects.

    Handles partial reads, several frames per read and junk between frames. The buffer holds at
    most one frame plus a header.
    """

    def __init__(self) -> None:
        """Start with an empty buffer."""
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        """Add ``data``; return the complete frames and, in place, the errors met on the way."""
        self._buf += data
        out: list[Frame | BadFrame] = []
        while self._buf:
            if len(self._buf) >= 4 and bytes(self._buf[:4]) not in (MAGIC_55AA, MAGIC_6699):
                self._skip()  # junk between frames is dropped silently, as real plugs do
                continue
            try:
                frame, size = frame_at(self._buf)
            except BadFrame as err:
                out.append(err)
                self._skip()
                continue
            if frame is None:
                break
            out.append(frame)
            del self._buf[:size]
        return out

    def _skip(self) -> None:
        """Drop bytes up to the next prefix after the first byte (keep a possible partial one)."""
        starts = [i for i in (self._buf.find(m, 1) for m in (MAGIC_55AA, MAGIC_6699)) if i > 0]
        del self._buf[: min(starts) if starts else max(1, len(self._buf) - 3)]

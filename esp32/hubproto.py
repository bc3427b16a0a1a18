# Firmware side of the hub channel (docs/hub-protocol.md is the normative spec; section numbers
# below refer to it). Sans-I/O: record layout and crypto, error codes. The handshake (§4) is in
# hubauth.py, imported only while a client authenticates.
import json
import os
import struct

import cryptolib

from hmacsha import HmacKey, equal

VERSION = const(1)
MAGIC = b"TLEH"
NONCE_LEN = const(16)
MAC_LEN = const(32)
MAX_RECORD = const(4096)  # largest record body (§3)
MIN_SECURE = const(64)  # IV 16 + one AES block 16 + tag 32
MAX_HUB_ID = const(32)

# Error codes carried in result/error messages (§6).
E_BAD_REQUEST = "bad_request"
E_UNKNOWN_TYPE = "unknown_type"
E_UNKNOWN_DEVICE = "unknown_device"
E_EXISTS = "exists"
E_LIMIT = "limit"
E_OFFLINE = "offline"
E_TIMEOUT = "timeout"
E_DEVICE = "device_error"
E_STORAGE = "storage"
E_BUSY = "busy"
E_INTERNAL = "internal"
E_NO_TIME = "no_time"


class ProtoError(Exception):
    """A peer broke the channel rules: the connection must be closed."""


class HubErr(Exception):
    """A request failed with one of the §6 error codes; reported to HA in a result message."""

    def __init__(self, code, msg=""):
        super().__init__(code)
        self.code = code
        self.msg = msg


class Channel:
    """Record protection after the handshake (§5): AES-128-CBC with a random IV, then
    HMAC-SHA256 over (u64 sequence number | u16 length | IV | ciphertext); one key pair and
    one implicit sequence number per direction."""

    def __init__(self, master, server=True):
        m = HmacKey(master)
        mine, theirs = (b"s2c", b"c2s") if server else (b"c2s", b"s2c")
        self._tx_enc = m.digest(mine + b" enc")[:16]
        self._tx_mac = HmacKey(m.digest(mine + b" mac"))
        self._rx_enc = m.digest(theirs + b" enc")[:16]
        self._rx_mac = HmacKey(m.digest(theirs + b" mac"))
        self.tx_seq = 0
        self.rx_seq = 0

    def seal(self, obj, iv=None):
        """Encrypt+MAC one message (a dict, or JSON text already built); returns the whole
        record, length prefix included. Builds it in one buffer, encrypting in place."""
        raw = (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))).encode()
        m = len(raw)
        p = 16 - (m & 15)
        n = 16 + m + p + MAC_LEN
        if n > MAX_RECORD:
            raise ValueError("message too large")
        rec = bytearray(2 + n)
        struct.pack_into(">H", rec, 0, n)
        rec[2:18] = iv or os.urandom(16)
        rec[18 : 18 + m] = raw
        raw = None
        for i in range(18 + m, 18 + m + p):
            rec[i] = p
        mv = memoryview(rec)
        ct = mv[18 : 18 + m + p]
        cryptolib.aes(self._tx_enc, 2, bytes(mv[2:18])).encrypt(ct, ct)
        tag = self._tx_mac.digest(struct.pack(">QH", self.tx_seq, n), mv[2 : 18 + m + p])
        rec[18 + m + p :] = tag
        self.tx_seq += 1
        return rec

    def open(self, body):
        """Verify and decrypt one record body (length prefix removed); returns the JSON object.
        Raises ProtoError on a bad size, bad MAC (tampered, replayed or reordered), bad padding
        or a body that is not a JSON object."""
        n = len(body)
        if n < MIN_SECURE or n > MAX_RECORD or (n - 48) & 15:
            raise ProtoError("bad record size")
        mv = memoryview(body)
        tag = self._rx_mac.digest(struct.pack(">QH", self.rx_seq, n), mv[: n - MAC_LEN])
        if not equal(tag, bytes(mv[n - MAC_LEN :])):
            raise ProtoError("bad record mac")
        self.rx_seq += 1
        pt = cryptolib.aes(self._rx_enc, 2, bytes(mv[:16])).decrypt(bytes(mv[16 : n - MAC_LEN]))
        p = pt[-1]
        if not 1 <= p <= 16:
            raise ProtoError("bad padding")
        try:
            obj = json.loads(pt[: len(pt) - p])
        except ValueError:
            raise ProtoError("bad json")
        if not isinstance(obj, dict):
            raise ProtoError("message is not an object")
        return obj

# Protocol 3.5 codec (tuya-protocol.md §1.2, §2.6, §2.7): 6699 frames protected by AES-128-GCM
# (gcm.py), the same session-key negotiation as 3.4 with a GCM-derived session key. Imported by
# plug.make_codec on demand (3.5 plugs only), so a hub without 3.5 plugs never loads it.
import os
import struct

import gcm
from hmacsha import equal, hmac_sha256
from tuya import (BAD_AUTH, BAD_FRAME, CONTROL_NEW, DP_QUERY_NEW, MAX_FRAME, NO_HEADER_CMDS,
                  SESS_KEY_NEG_FINISH, SESS_KEY_NEG_START, Codec33, FrameError, dumps)

PREFIX_6699 = const(0x00006699)
SUFFIX_6699 = const(0x00009966)
_PREFIX_BYTES = b"\x00\x00\x66\x99"
_HDR = const(18)  # prefix 4 | reserved 2 | seqno 4 | cmd 4 | length 4


def pack_6699(key, seqno, cmd, pt, iv=None, head=False):
    """Client->device 6699 frame (a new bytearray), AES-GCM with key: length = 12 (IV)
    + len(ct) + 16 (tag); AAD = bytes [4, 18) of the header, so the length is final before
    encrypting (§1.2). head: put the version header "3.5" + 12 x 00 in front of pt, inside the
    ciphertext (§2.6). The frame is assembled and encrypted in place: one allocation."""
    n = len(pt) + (15 if head else 0)
    buf = bytearray(_HDR + 12 + n + 16 + 4)
    struct.pack_into(">IHIII", buf, 0, PREFIX_6699, 0, seqno, cmd, 12 + n + 16)
    buf[_HDR : _HDR + 12] = iv or os.urandom(12)
    p = _HDR + 12
    if head:
        buf[p : p + 3] = b"3.5"  # the 12 zero bytes after it are already there
        p += 15
    buf[p : p + len(pt)] = pt
    gcm.seal(key, buf, 4, 14, _HDR, n)
    struct.pack_into(">I", buf, _HDR + 12 + n + 16, SUFFIX_6699)
    return buf


def parse_6699(buf, n, key):
    """Like tuya.parse_55aa for 6699 frames: ((seqno, cmd, retcode, plaintext), consumed), or
    (None, consumed) when more bytes are needed, or (BAD_FRAME / BAD_AUTH, consumed) for a
    skipped frame (bad length or suffix: one byte, to resynchronise on the next prefix; a GCM
    tag that does not verify or no retcode: the whole frame). The retcode is the first 4 bytes
    of the GCM plaintext of device frames (§1.2). The frame is decrypted in place in buf (a
    bytearray; the caller drops the consumed bytes), so the only allocation is the returned
    plaintext."""
    start = buf.find(_PREFIX_BYTES, 0, n) if n >= 4 else -1
    if start < 0:
        return None, (n - 3 if n > 3 else 0)
    if n - start < _HDR:
        return None, start
    _, _, seqno, cmd, length = struct.unpack_from(">IHIII", buf, start)
    total = _HDR + length + 4
    if total > MAX_FRAME or length < 12 + 16:
        return BAD_FRAME, start + 1
    if n - start < total:
        return None, start
    end = start + total
    if struct.unpack_from(">I", buf, end - 4)[0] != SUFFIX_6699:
        return BAD_FRAME, start + 1
    if not isinstance(buf, bytearray):
        buf = bytearray(buf)  # never decrypt in place into an immutable object
    body = start + _HDR
    ptlen = length - 12 - 16
    try:
        gcm.open(key, buf, start + 4, 14, body, ptlen)
    except gcm.FrameAuthError:
        return BAD_AUTH, end
    if ptlen < 4:
        return BAD_FRAME, end
    p = body + 12
    return (seqno, cmd, struct.unpack_from(">I", buf, p)[0],
            bytes(memoryview(buf)[p + 4 : p + ptlen])), end


class Codec35(Codec33):
    version = "3.5"
    query_cmd = DP_QUERY_NEW
    control_cmd = CONTROL_NEW
    needs_session = True

    def __init__(self, dev_id, local_key):
        Codec33.__init__(self, dev_id, local_key)
        self.real_key = local_key
        self.reset()

    def reset(self):
        self.key = self.real_key
        self._nonce = None

    def query_json(self, t):
        return "{}"

    def control_json(self, dps, t):
        return '{"protocol":5,"t":%d,"data":{"dps":%s}}' % (t, dumps(dps))

    def encode(self, seqno, cmd, text, iv=None):
        # version header inside the ciphertext, except for NO_HEADER_CMDS (§2.6)
        return pack_6699(self.key, seqno, cmd, text.encode(), iv, cmd not in NO_HEADER_CMDS)

    def parse(self, buf, n):
        return parse_6699(buf, n, self.key)

    def decrypt_payload(self, payload):
        # parse() has already decrypted and removed the retcode; a source header may remain.
        if payload[:3] == b"3.5" and len(payload) >= 15:
            payload = payload[15:]
        return payload

    def neg_start(self, seqno, nonce, iv=None):
        """SESS_KEY_NEG_START with our 16-byte nonce, keyed with the real local key."""
        self.reset()
        self._nonce = nonce
        return pack_6699(self.real_key, seqno, SESS_KEY_NEG_START, nonce, iv)

    def neg_finish(self, seqno, payload, iv=None):
        """`payload`: plaintext of SESS_KEY_NEG_RESP (retcode removed) = device nonce (16) |
        HMAC(real key, our nonce) (32). Returns SESS_KEY_NEG_FINISH and switches to the session
        key = GCM-CTR(real key, iv = our nonce[:12], our nonce XOR device nonce), i.e. the
        plaintext XORed with ECB(real key, nonce[:12] | 00000002) (§2.7)."""
        if len(payload) < 48 or self._nonce is None:
            raise FrameError("short negotiation reply")
        dev_nonce = payload[:16]
        if not equal(payload[16:48], hmac_sha256(self.real_key, self._nonce)):
            raise FrameError("device proof mismatch (wrong local key?)")
        k = self.real_key  # still the key in use (reset() in neg_start)
        frame = pack_6699(k, seqno, SESS_KEY_NEG_FINISH, hmac_sha256(k, dev_nonce), iv)
        x = bytearray(16)
        for i in range(16):
            x[i] = self._nonce[i] ^ dev_nonce[i]
        self.key = bytes(gcm.keystream_xor(k, self._nonce[:12], x))
        self._nonce = None
        return frame

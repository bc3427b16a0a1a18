# AES-128-GCM (NIST SP 800-38D) from cryptolib's AES-ECB, for Tuya protocol 3.5.
#
# cryptolib on stock ESP32 firmware has ECB and CBC only (no CTR, no GCM;
# micropython-esp32.md §2.1), so: CTR keystream = ECB over a buffer of counter blocks, and
# GHASH in @micropython.viper with Shoup's 4-bit tables: per key, the 16 products n(x)·H of H
# with every 4-bit polynomial n (256 bytes), built once when a Key is made; a block then costs
# 32 table look-ups and 32 shifts by 4 bits (one 16-entry reduction table shared by all keys)
# instead of the 128 conditional XORs and 1-bit shifts of SP 800-38D Algorithm 1.
#
# Word size: the viper code holds 128-bit values as 4 big-endian 32-bit words typed `uint`
# (logical shifts) and never creates a value of more than 32 bits (left shifts only move 4-bit
# or 16-bit quantities to the top of a word), so the same source gives the same results on
# 32-bit (ESP32) and 64-bit (unix port) machine words. Constants stay below 2**30 (small ints
# on every port): 0xE1 << 24 is computed, not written.
#
# Allocation: a Key holds its cipher object and table; the counter blocks, GHASH state and
# length block live in module-level scratch buffers (the calls never yield, so one set serves
# every plug). Key.seal()/Key.open() work in place on a frame buffer and allocate nothing.
# Viper needs a native target: mpy-cross -march=xtensawin (ESP32) or -march=x64 (unix port).
import struct
from array import array

import cryptolib
import micropython

_CHUNK = const(256)  # counter blocks encrypted per cryptolib call (16 blocks)


def _r4():
    # R4[d]: the top 16 bits XORed into Z when Z·x^4 shifts the 4 bits d out of the bottom
    # (Z·x = Z >> 1, ^ 0xE1 << 120 when the bit shifted out was set; SP 800-38D §6.3). The
    # bits shifted out never reach the bottom 112 bits, so 16 bits per entry suffice.
    r = array("H", bytes(32))
    for d in range(16):
        v = d
        t = 0
        for _ in range(4):
            lsb = v & 1
            v >>= 1
            t >>= 1
            if lsb:
                t ^= 0xE100
        r[d] = t
    return r


_R4 = _r4()
_Y = bytearray(16)  # GHASH state / tag
_LEN = bytearray(16)  # len(A) | len(C) block
_CB = bytearray(_CHUNK)  # counter blocks, encrypted in place into keystream
_CBV = memoryview(_CB)
_J0 = _CBV[:16]


@micropython.viper
def _table(h: ptr8, t: ptr32):
    # t[4n .. 4n+3] = n(x)·H as 4 big-endian words, n's bit 3 being the coefficient of x^0
    # (GCM bit order: the first bit of a block is x^0). T[8] = H, T[4] = H·x, T[2] = H·x^2,
    # T[1] = H·x^3, and T[a ^ b] = T[a] ^ T[b].
    v0 = uint((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3])
    v1 = uint((h[4] << 24) | (h[5] << 16) | (h[6] << 8) | h[7])
    v2 = uint((h[8] << 24) | (h[9] << 16) | (h[10] << 8) | h[11])
    v3 = uint((h[12] << 24) | (h[13] << 16) | (h[14] << 8) | h[15])
    rpoly = uint(0xE1) << 24
    for i in range(4):
        t[i] = 0
    n = 8
    while n > 0:
        k = n * 4
        t[k] = v0
        t[k + 1] = v1
        t[k + 2] = v2
        t[k + 3] = v3
        lsb = v3 & 1
        v3 = (v3 >> 1) | ((v2 & 1) << 31)
        v2 = (v2 >> 1) | ((v1 & 1) << 31)
        v1 = (v1 >> 1) | ((v0 & 1) << 31)
        v0 = v0 >> 1
        if lsb:
            v0 = v0 ^ rpoly
        n = n >> 1
    for n in range(3, 16):
        p = 8
        while p > n:
            p = p >> 1
        if p != n:
            a = p * 4
            b = (n - p) * 4
            k = n * 4
            for i in range(4):
                t[k + i] = t[a + i] ^ t[b + i]


@micropython.viper
def _ghash(y: ptr8, data: ptr8, off: int, n: int, t: ptr32, r4: ptr16):
    # y = (...((y ^ X1)·H ^ X2)·H ...)·H over data[off : off + n], the last block zero-padded.
    # Z = X·H by Horner's rule over the 32 nibbles of X, last (highest powers of x) first:
    # Z = Z·x^4 ^ T[nibble].
    end = off + n
    p = off
    while p < end:
        z0 = uint(0)
        z1 = uint(0)
        z2 = uint(0)
        z3 = uint(0)
        i = 15
        while i >= 0:
            q = p + i
            if q < end:
                x = y[i] ^ data[q]
            else:
                x = y[i]
            # low nibble of byte i (x^(8i+4) .. x^(8i+7)), then the high one
            d = z3 & 15
            z3 = (z3 >> 4) | ((z2 & 15) << 28)
            z2 = (z2 >> 4) | ((z1 & 15) << 28)
            z1 = (z1 >> 4) | ((z0 & 15) << 28)
            z0 = (z0 >> 4) ^ (uint(r4[d]) << 16)
            k = (x & 15) << 2
            z0 = z0 ^ uint(t[k])
            z1 = z1 ^ uint(t[k + 1])
            z2 = z2 ^ uint(t[k + 2])
            z3 = z3 ^ uint(t[k + 3])
            d = z3 & 15
            z3 = (z3 >> 4) | ((z2 & 15) << 28)
            z2 = (z2 >> 4) | ((z1 & 15) << 28)
            z1 = (z1 >> 4) | ((z0 & 15) << 28)
            z0 = (z0 >> 4) ^ (uint(r4[d]) << 16)
            k = (x >> 4) << 2
            z0 = z0 ^ uint(t[k])
            z1 = z1 ^ uint(t[k + 1])
            z2 = z2 ^ uint(t[k + 2])
            z3 = z3 ^ uint(t[k + 3])
            i -= 1
        y[0] = z0 >> 24
        y[1] = (z0 >> 16) & 0xFF
        y[2] = (z0 >> 8) & 0xFF
        y[3] = z0 & 0xFF
        y[4] = z1 >> 24
        y[5] = (z1 >> 16) & 0xFF
        y[6] = (z1 >> 8) & 0xFF
        y[7] = z1 & 0xFF
        y[8] = z2 >> 24
        y[9] = (z2 >> 16) & 0xFF
        y[10] = (z2 >> 8) & 0xFF
        y[11] = z2 & 0xFF
        y[12] = z3 >> 24
        y[13] = (z3 >> 16) & 0xFF
        y[14] = (z3 >> 8) & 0xFF
        y[15] = z3 & 0xFF
        p += 16


@micropython.viper
def _counters(cb: ptr8, iv: ptr8, iv_off: int, ctr: int, nblocks: int):
    # nblocks counter blocks iv | ctr, iv | ctr + 1, ... (32-bit big-endian counter)
    for b in range(nblocks):
        o = b * 16
        for i in range(12):
            cb[o + i] = iv[iv_off + i]
        c = ctr + b
        cb[o + 12] = (c >> 24) & 0xFF
        cb[o + 13] = (c >> 16) & 0xFF
        cb[o + 14] = (c >> 8) & 0xFF
        cb[o + 15] = c & 0xFF


@micropython.viper
def _xor_into(dst: ptr8, off: int, src: ptr8, n: int):
    for i in range(n):
        dst[off + i] = dst[off + i] ^ src[i]


@micropython.viper
def _diff(a: ptr8, b: ptr8, b_off: int) -> int:
    # 0 when the 16 bytes a[0:16] and b[b_off:b_off+16] are equal (no early exit)
    d = 0
    for i in range(16):
        d = d | (a[i] ^ b[b_off + i])
    return d


def _ctr(ecb, iv, iv_off, buf, off, n):
    cb = _CB
    ctr = 2
    while n > 0:
        nb = (n + 15) >> 4
        if nb > _CHUNK // 16:
            nb = _CHUNK // 16
        _counters(cb, iv, iv_off, ctr, nb)
        if nb == _CHUNK // 16:
            ecb.encrypt(cb, cb)
        else:
            mv = _CBV[: nb * 16]  # the one allocation: a memoryview (~20-30 B)
            ecb.encrypt(mv, mv)
        k = nb * 16 if n > nb * 16 else n
        _xor_into(buf, off, cb, k)
        ctr += nb
        off += k
        n -= k


class FrameAuthError(Exception):
    pass


class Key:
    """One AES-128-GCM key: its cipher object and GHASH table (about 0.3 KB of live heap on a
    32-bit port, see docs/benchmarks.md). Frames are handled in place in a caller's buffer."""

    def __init__(self, key):
        self.ecb = ecb = cryptolib.aes(key, 1)
        h = bytearray(16)
        ecb.encrypt(h, h)  # H = E(K, 0^128)
        self.t = bytearray(256)
        _table(h, self.t)

    def crypt(self, iv, iv_off, buf, off, n):
        """buf[off : off + n] ^= CTR keystream from counter block iv[iv_off : iv_off + 12] | 2
        (in place: encrypts or decrypts)."""
        _ctr(self.ecb, iv, iv_off, buf, off, n)

    def _tag(self, iv, iv_off, aad, aad_off, aad_len, ct, ct_off, ct_len):
        """The tag, in the module's 16-byte scratch _Y (valid until the next call)."""
        y = _Y
        t = self.t
        for i in range(16):
            y[i] = 0
        if aad_len:
            _ghash(y, aad, aad_off, aad_len, t, _R4)
        if ct_len:
            _ghash(y, ct, ct_off, ct_len, t, _R4)
        struct.pack_into(">IIII", _LEN, 0, 0, aad_len << 3, 0, ct_len << 3)
        _ghash(y, _LEN, 0, 16, t, _R4)
        cb = _J0
        _counters(cb, iv, iv_off, 1, 1)
        self.ecb.encrypt(cb, cb)  # E(K, J0)
        _xor_into(y, 0, cb, 16)
        return y

    def seal(self, buf, aad_off, aad_len, iv_off, n):
        """Encrypt in place a frame laid out as buf = ... AAD ... | IV (12) | plaintext (n) |
        room for the tag (16): the plaintext becomes ciphertext, the tag is written after it."""
        ct = iv_off + 12
        self.crypt(buf, iv_off, buf, ct, n)
        buf[ct + n : ct + n + 16] = self._tag(buf, iv_off, buf, aad_off, aad_len, buf, ct, n)

    def open(self, buf, aad_off, aad_len, iv_off, n):
        """Verify and decrypt in place buf = ... AAD ... | IV (12) | ciphertext (n) | tag (16);
        raises FrameAuthError (buf unchanged) when the tag does not verify."""
        ct = iv_off + 12
        if _diff(self._tag(buf, iv_off, buf, aad_off, aad_len, buf, ct, n), buf, ct + n):
            raise FrameAuthError("bad gcm tag")
        self.crypt(buf, iv_off, buf, ct, n)

    def encrypt(self, iv, aad, pt):
        """(ciphertext, tag) for a 12-byte iv, in new buffers."""
        ct = bytearray(pt)
        self.crypt(iv, 0, ct, 0, len(ct))
        return ct, bytes(self._tag(iv, 0, aad, 0, len(aad), ct, 0, len(ct)))

    def decrypt(self, iv, aad, ct, tag):
        """Plaintext in a new bytearray; raises FrameAuthError when the tag does not verify."""
        if len(tag) != 16 or _diff(self._tag(iv, 0, aad, 0, len(aad), ct, 0, len(ct)), tag, 0):
            raise FrameAuthError("bad gcm tag")
        pt = bytearray(ct)
        self.crypt(iv, 0, pt, 0, len(pt))
        return pt


# One-shot helpers (a new Key per call: table set-up included).
def encrypt(key, iv, aad, pt):
    """(ciphertext, tag) for a 12-byte iv."""
    return Key(key).encrypt(iv, aad, pt)


def decrypt(key, iv, aad, ct, tag):
    """Plaintext; raises FrameAuthError when the tag does not verify."""
    return Key(key).decrypt(iv, aad, ct, tag)


def keystream_xor(key, iv, data):
    """CTR part only (no tag): the 3.5 session key derivation (tuya-protocol.md §2.7)."""
    out = bytearray(data)
    _ctr(cryptolib.aes(key, 1), iv, 0, out, 0, len(out))
    return out

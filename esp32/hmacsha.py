# HMAC-SHA256 (RFC 2104 / FIPS 198-1) over hashlib.sha256, because MicroPython firmware has no
# `hmac` module and its sha256 objects have no copy() (see docs/micropython-esp32.md §2.1).
# H(K xor opad || H(K xor ipad || m)), block size 64, K zero-padded (hashed first if longer).
import hashlib

_BLOCK = const(64)


class HmacKey:
    """A key prepared once (inner/outer pads), then used for many digests."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        k = bytearray(_BLOCK)
        k[0 : len(key)] = key
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            ipad[i] = k[i] ^ 0x36
            opad[i] = k[i] ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def digest(self, *parts):
        """HMAC-SHA256 of the concatenation of `parts` (bytes-like), 32 bytes."""
        h = hashlib.sha256(self._ipad)
        for p in parts:
            h.update(p)
        o = hashlib.sha256(self._opad)
        o.update(h.digest())
        return o.digest()


def hmac_sha256(key, *parts):
    return HmacKey(key).digest(*parts)


def equal(a, b):
    """Constant-time comparison of two byte strings (no early exit on the first difference)."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0

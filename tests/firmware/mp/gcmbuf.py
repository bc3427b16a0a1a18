# encrypt()/decrypt() with separate buffers, built on the firmware's in-place gcm.seal/open
# (the firmware itself only seals and opens whole frames; these are for tests and benchmarks).
import gcm


def encrypt(key, iv, aad, pt):
    """(ciphertext, tag) for a 12-byte iv."""
    a = len(aad)
    n = len(pt)
    buf = bytearray(a + 12 + n + 16)
    buf[0:a] = aad
    buf[a : a + 12] = iv
    buf[a + 12 : a + 12 + n] = pt
    gcm.seal(key, buf, 0, a, a, n)
    return buf[a + 12 : a + 12 + n], bytes(buf[a + 12 + n :])


def decrypt(key, iv, aad, ct, tag):
    """Plaintext; raises gcm.FrameAuthError when the tag does not verify."""
    if len(tag) != 16:
        raise gcm.FrameAuthError("bad tag length")
    a = len(aad)
    n = len(ct)
    buf = bytearray(aad) + iv + ct + tag
    gcm.open(key, buf, 0, a, a, n)
    return buf[a + 12 : a + 12 + n]

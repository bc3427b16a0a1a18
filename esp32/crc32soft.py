# Software CRC-32 (zlib: reflected polynomial 0xEDB88320, init and xorout 0xFFFFFFFF) for
# MicroPython builds without binascii.crc32; tuya.py imports it only on such builds.
from array import array

_table = None


def crc32(data, crc=0):
    global _table
    if _table is None:
        t = array("I", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t[i] = c
        _table = t
    t = _table
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

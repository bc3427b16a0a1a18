"""Per-frame cost of the firmware's AES-128-GCM (``esp32/gcm.py``) on MicroPython.

Run with the MicroPython unix port, not CPython::

    .venv/bin/micropython benchmarks/mp_gcm_bench.py [FIRMWARE_DIR] [ITERATIONS]

``FIRMWARE_DIR`` (default ``esp32``) holds ``gcm.py`` or a precompiled ``gcm.mpy``
(``mpy-cross -march=x64``); ``hmacsha`` and ``cryptolib`` are used for the comparison rows.
The frame is shaped like a Tuya 3.5 one: 200 bytes of plaintext, a 14-byte AAD (the 0x6699
header after the prefix), a 12-byte IV. Every operation is checked first: GCM against the
NIST SP 800-38D test case 4 and a round trip, so a broken build cannot report a fast time.

Firmware revisions with ``gcm.seal`` (4-bit table GHASH) get extra rows: the in-place
``seal``/``open`` of a whole 0x6699 frame buffer as ``tuya35`` does it, and ``seal`` with a
key that changes on every call (the cached GHASH table and cipher object rebuilt each time:
the worst case with several plugs).

Output: one JSON object per line: ``op``, ``us`` (mean of the best of 5 runs of ITERATIONS
calls, ``time.ticks_us``), ``us_runs`` (the 5 means), and ``alloc_bytes``: heap allocated by
one call, ``gc.mem_alloc()`` after minus before with the collector disabled (nothing is freed
in between, so this is the garbage one call creates plus anything it keeps).

Valid Python syntax on purpose (ruff checks this directory); it only runs on MicroPython.
"""

import gc
import json
import sys
import time

import cryptolib  # MicroPython only

FW = sys.argv[1] if len(sys.argv) > 1 else "esp32"
ITER = int(sys.argv[2]) if len(sys.argv) > 2 else 500
sys.path.insert(0, FW)

import gcm  # noqa: E402
import hmacsha  # noqa: E402

if not hasattr(gcm, "encrypt"):  # gcm.py after 4-bit tables: seal/open in place only
    sys.path.insert(0, "tests/firmware/mp")
    import gcmbuf

    gcm.encrypt = gcmbuf.encrypt
    gcm.decrypt = gcmbuf.decrypt

TC4_K = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
TC4_IV = bytes.fromhex("cafebabefacedbaddecaf888")
TC4_A = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
TC4_P = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
TC4_C = bytes.fromhex(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
)
TC4_T = bytes.fromhex("5bc94fbc3221a5db94fae95ae7121a47")

KEY = b"0123456789abcdef"  # demo key
IV = b"bench-iv-12b"
AAD = b"\x00\x00\x00\x00\x00\x08\x00\x00\x00\xe4\x00\x00\x00\x00"  # 14 B
PT = (b'{"protocol":5,"t":1763769600,"data":{"dps":{"1":true,"9":0,"18":1234}}}' * 3)[:200]


def check():
    ct, tag = gcm.encrypt(TC4_K, TC4_IV, TC4_A, TC4_P)
    if bytes(ct) != TC4_C or bytes(tag) != TC4_T:
        raise SystemExit("gcm.encrypt does not match NIST test case 4")
    if bytes(gcm.decrypt(TC4_K, TC4_IV, TC4_A, TC4_C, TC4_T)) != TC4_P:
        raise SystemExit("gcm.decrypt does not match NIST test case 4")
    ct, tag = gcm.encrypt(KEY, IV, AAD, PT)
    if bytes(gcm.decrypt(KEY, IV, AAD, ct, tag)) != PT:
        raise SystemExit("round trip failed")
    bad = bytearray(tag)
    bad[0] ^= 1
    try:
        gcm.decrypt(KEY, IV, AAD, ct, bytes(bad))
    except gcm.FrameAuthError:
        pass
    else:
        raise SystemExit("tampered tag accepted")
    return ct, tag


def alloc_of(fn):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    fn()
    a1 = gc.mem_alloc()
    gc.enable()
    return a1 - a0


def bench(name, fn, iterations=ITER):
    for _ in range(20):
        fn()
    runs = []
    for _ in range(5):
        gc.collect()
        t0 = time.ticks_us()
        for _ in range(iterations):
            fn()
        runs.append(time.ticks_diff(time.ticks_us(), t0) / iterations)
    row = {
        "op": name,
        "us": min(runs),
        "us_runs": [round(r, 2) for r in runs],
        "alloc_bytes": min(alloc_of(fn) for _ in range(3)),
        "iterations": iterations,
    }
    print(json.dumps(row))


def bench_in_place(ct, tag):
    n = len(PT)
    # a 0x6699 frame: header 18 (AAD = bytes 4..18) | IV 12 | payload | tag 16 | suffix 4
    frame = bytearray(4) + AAD + IV + PT + bytearray(20)
    sealed = bytearray(frame)
    gcm.seal(KEY, sealed, 4, 14, 18, n)
    work = bytearray(sealed)
    gcm.open(KEY, work, 4, 14, 18, n)
    if bytes(work[30 : 30 + n]) != PT or bytes(sealed[30 : 30 + n + 16]) != bytes(ct) + tag:
        raise SystemExit("seal/open disagree with encrypt")
    key2 = bytes(b ^ 0x5A for b in KEY)
    keys = [KEY, key2]
    i = [0]

    def seal():
        work[:] = frame
        gcm.seal(KEY, work, 4, 14, 18, n)

    def open_():
        work[:] = sealed
        gcm.open(KEY, work, 4, 14, 18, n)

    def seal_switch():  # every call with the other key: table and cipher rebuilt each time
        work[:] = frame
        i[0] ^= 1
        gcm.seal(keys[i[0]], work, 4, 14, 18, n)

    bench("gcm_seal_frame_200B_in_place", seal)
    bench("gcm_open_frame_200B_in_place", open_)
    bench("gcm_seal_frame_200B_key_switch", seal_switch)


def main():
    ct, tag = check()
    hk = hmacsha.HmacKey(KEY)
    frame228 = PT + bytes(28)
    block208 = PT + bytes(8)
    print(
        json.dumps(
            {
                "micropython": sys.version,
                "implementation": sys.implementation._machine,
                "gcm_module": getattr(gcm, "__file__", "?"),
                "checks": "NIST TC4 encrypt/decrypt, round trip, tamper: ok",
                "frame": {"plaintext": len(PT), "aad": len(AAD), "iv": len(IV)},
            }
        )
    )
    bench("gcm_encrypt_tag_200B", lambda: gcm.encrypt(KEY, IV, AAD, PT))
    bench("gcm_decrypt_verify_200B", lambda: gcm.decrypt(KEY, IV, AAD, ct, tag))
    bench("ctr_only_200B", lambda: gcm.keystream_xor(KEY, IV, PT))
    bench("aes_ecb_208B_new_object", lambda: cryptolib.aes(KEY, 1).encrypt(block208))
    bench("hmac_sha256_228B_prepared_key", lambda: hk.digest(frame228))
    if hasattr(gcm, "seal"):
        bench_in_place(ct, tag)


main()

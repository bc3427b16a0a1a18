"""The firmware's AES-128-GCM (esp32/gcm.py, run by MicroPython) against pyca/cryptography's
AESGCM over random keys, IVs and lengths: empty and partial blocks, the 16-block CTR chunk
boundary, frames up to tuya.MAX_FRAME; encrypt/decrypt (mp/gcmbuf.py over gcm.seal/open), the
cached per-key state (GHASH table
and cipher object, rebuilt when the key changes: keys alternate here) and the in-place seal/open
on a frame buffer as the 3.5 codec uses them. Run on the sources
and on the -march=x64 .mpy build (viper compiled ahead of time, as deployed)."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .conftest import ESP32, MICROPYTHON, MPY_CROSS

MP_DIR = ESP32.parent / "tests" / "firmware" / "mp"  # gcmbuf.py

SCRIPT = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import gcm
from gcmbuf import encrypt, decrypt
cases = json.loads(sys.stdin.read())
out = []
for c in cases:
    k = bytes.fromhex(c["k"]); iv = bytes.fromhex(c["iv"])
    a = bytes.fromhex(c["a"]); p = bytes.fromhex(c["p"])
    ct, tag = encrypt(k, iv, a, p)
    # another key in between: the cached table and cipher object must follow the key
    other = bytes(b ^ 0x5A for b in k)
    encrypt(other, iv, a, p)
    ct2, tag2 = encrypt(bytearray(k), iv, a, p)
    n = len(p)
    buf = bytearray(3) + a + iv + p + bytearray(16)
    gcm.seal(k, buf, 3, len(a), 3 + len(a), n)
    sealed = bytes(buf)
    gcm.open(k, buf, 3, len(a), 3 + len(a), n)
    opened = bytes(buf[3 + len(a) + 12 : 3 + len(a) + 12 + n])
    dec = bytes(decrypt(k, iv, a, ct, tag))
    bad = 0
    for fn in (lambda: decrypt(k, iv, a, ct, bytes([tag[0] ^ 1]) + tag[1:]),
               lambda: decrypt(k, iv, a + b"x", ct, tag)):
        try:
            fn()
        except gcm.FrameAuthError:
            bad += 1
    ks = bytes(gcm.keystream_xor(k, iv, p))
    out.append({"ct": bytes(ct).hex(), "tag": bytes(tag).hex(), "ct2": bytes(ct2).hex(),
                "tag2": bytes(tag2).hex(), "sealed": sealed.hex(), "opened": opened.hex(),
                "dec": dec.hex(), "bad": bad, "ks": ks.hex()})
print(json.dumps(out))
"""

LENGTHS = [
    0,
    1,
    4,
    15,
    16,
    17,
    31,
    32,
    33,
    200,
    239,
    240,
    241,
    255,
    256,
    257,
    272,
    511,
    512,
    513,
    1000,
]


def _cases() -> list[dict[str, str]]:
    rnd = random.Random(35)
    keys = [bytes(rnd.randrange(256) for _ in range(16)) for _ in range(3)]
    cases = []
    for i, n in enumerate(LENGTHS):
        for alen in (0, 14, 20 + i):
            k = keys[(i + alen) % 3]
            cases.append(
                {
                    "k": k.hex(),
                    "iv": bytes(rnd.randrange(256) for _ in range(12)).hex(),
                    "a": bytes(rnd.randrange(256) for _ in range(alen)).hex(),
                    "p": os.urandom(n).hex(),
                }
            )
    return cases


@pytest.mark.parametrize("build", ["py", "mpy"])
def test_gcm_matches_cryptography(tmp_path, build) -> None:
    fw = ESP32
    if build == "mpy":
        fw = tmp_path
        res = subprocess.run(
            [MPY_CROSS, "-march=x64", "-o", str(tmp_path / "gcm.mpy"), str(ESP32 / "gcm.py")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stderr
    script = tmp_path / "gcm_check.py"
    script.write_text(SCRIPT)
    cases = _cases()
    res = subprocess.run(
        [MICROPYTHON, str(script), str(fw), str(MP_DIR)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout)
    assert len(got) == len(cases)
    for c, g in zip(cases, got, strict=True):
        k, iv, a, p = (bytes.fromhex(c[x]) for x in ("k", "iv", "a", "p"))
        want = AESGCM(k).encrypt(iv, p, a)
        ct, tag = want[:-16].hex(), want[-16:].hex()
        label = f"len(p)={len(p)} len(a)={len(a)}"
        assert (g["ct"], g["tag"]) == (ct, tag), label
        assert (g["ct2"], g["tag2"]) == (ct, tag), label
        assert g["sealed"] == (b"\0\0\0" + a + iv).hex() + ct + tag, label
        assert g["opened"] == c["p"], label
        assert g["dec"] == c["p"], label
        assert g["ks"] == ct, label  # CTR part alone = ciphertext
        assert g["bad"] == 2, label

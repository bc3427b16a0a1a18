# HMAC-SHA256 against RFC 4231 test cases 1-4, 6, 7 (TC5 is a truncated-output case).
from hmacsha import HmacKey, equal, hmac_sha256
from testutil import eq, h

CASES = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        h("0102030405060708090a0b0c0d0e0f10111213141516171819"),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data."
        b" The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


def test_rfc4231():
    for i, (key, msg, want) in enumerate(CASES):
        eq(hmac_sha256(key, msg).hex(), want, f"case {i}")


def test_parts_and_reuse():
    k = HmacKey(b"Jefe")
    a = k.digest(b"what do ya ", b"want for nothing?")
    b = k.digest(memoryview(b"what do ya want for nothing?"))
    eq(a, b)
    eq(a.hex(), CASES[1][2])


def test_equal():
    eq(equal(b"abc", b"abc"), True)
    eq(equal(b"abc", b"abd"), False)
    eq(equal(b"abc", b"ab"), False)

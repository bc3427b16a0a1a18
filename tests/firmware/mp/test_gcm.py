# gcm.py (viper GHASH) against NIST SP 800-38D / McGrew-Viega test cases 2-4 (AES-128),
# through gcm.seal/open (gcmbuf wraps them as encrypt/decrypt).
import gcm
import gcmbuf
from testutil import eq, h, raises

K = h("feffe9928665731c6d6a8f9467308308")
IV = h("cafebabefacedbaddecaf888")
P = h(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
C = (
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)


def test_nist_case_2():
    ct, tag = gcmbuf.encrypt(bytes(16), bytes(12), b"", bytes(16))
    eq(bytes(ct).hex(), "0388dace60b6a392f328c2b971b2fe78")
    eq(tag.hex(), "ab6e47d42cec13bdf53a67b21257bddf")


def test_nist_case_3():
    ct, tag = gcmbuf.encrypt(K, IV, b"", P)
    eq(bytes(ct).hex(), C)
    eq(tag.hex(), "4d5c2af327cd64a62cf35abd2ba6fab4")


def test_nist_case_4_aad_and_partial_block():
    aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    ct, tag = gcmbuf.encrypt(K, IV, aad, P[:60])
    eq(bytes(ct).hex(), C[:120])
    eq(tag.hex(), "5bc94fbc3221a5db94fae95ae7121a47")
    eq(bytes(gcmbuf.decrypt(K, IV, aad, ct, tag)), P[:60])
    bad = bytearray(tag)
    bad[0] ^= 1
    raises(gcm.FrameAuthError, gcmbuf.decrypt, K, IV, aad, ct, bytes(bad))


def test_keystream_and_key_switch():
    # CTR part alone = ciphertext; the cached table follows a change of key
    eq(bytes(gcm.keystream_xor(K, IV, P)).hex(), C)
    gcmbuf.encrypt(bytes(16), bytes(12), b"", bytes(16))
    _, tag = gcmbuf.encrypt(K, IV, b"", P)
    eq(tag.hex(), "4d5c2af327cd64a62cf35abd2ba6fab4")

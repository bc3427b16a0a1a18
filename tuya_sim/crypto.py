"""Cryptographic primitives of a Tuya device, written for the simulator from the spec alone.

Independent of the integration (``custom_components/``): a bug shared by both ends would otherwise
pass every test. Depends only on ``cryptography`` and the standard library. Spec =
``/work/shared/docs/tuya-protocol.md``:

* AES-128-ECB with PKCS#7 padding for 3.1-3.4 payloads (spec §2.2, §2.4, §2.5);
* AES-128-GCM, 12-byte nonce, 16-byte tag, for 3.5 frames and 3.5 UDP (spec §1.2, §2.6);
* HMAC-SHA256 for 3.4 frames and the session handshake (spec §1.1, §2.7);
* CRC-32 (zlib polynomial) for 3.1-3.3 frames and every 55AA UDP packet (spec §1.1, §3);
* the 3.1 md5 signature ``md5("data=" + b64 + "||lpv=3.1||" + key)[8:24]`` (spec §2.2).

Every key is 16 bytes. Errors are :class:`SimCryptoError`.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AES_BLOCK = 16
NONCE_LEN = 12
TAG_LEN = 16


class SimCryptoError(ValueError):
    """Ciphertext that does not decrypt: bad length, bad padding or a GCM tag that fails."""


def _pad(data: bytes) -> bytes:
    count = AES_BLOCK - (len(data) % AES_BLOCK)
    return data + bytes((count,)) * count


def _unpad(data: bytes) -> bytes:
    count = data[-1] if data else 0
    if count < 1 or count > AES_BLOCK or data[-count:] != bytes((count,)) * count:
        raise SimCryptoError("invalid PKCS#7 padding")
    return data[:-count]


def aes_ecb_encrypt(key: bytes, plaintext: bytes, *, padding: bool = True) -> bytes:
    """AES-128-ECB of ``plaintext``, PKCS#7 padded unless ``padding`` is false.

    Without padding the length must be a multiple of 16.
    """
    data = _pad(plaintext) if padding else plaintext
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - Tuya's choice
    return encryptor.update(data) + encryptor.finalize()


def aes_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Decrypt AES-128-ECB and remove the PKCS#7 padding.

    Raises:
        SimCryptoError: empty, not whole blocks, or bad padding (usually a wrong key).

    """
    if not ciphertext or len(ciphertext) % AES_BLOCK:
        raise SimCryptoError("ciphertext is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return _unpad(decryptor.update(ciphertext) + decryptor.finalize())


def aes_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes | None) -> bytes:
    """AES-128-GCM: returns ciphertext followed by the 16-byte tag."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aes_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes | None) -> bytes:
    """Check the tag and decrypt ``ciphertext || tag``.

    Raises:
        SimCryptoError: the tag does not verify (wrong key or altered frame).

    """
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise SimCryptoError("GCM tag does not verify") from None


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """32-byte HMAC-SHA256."""
    return hmac.new(key, data, hashlib.sha256).digest()


def crc32(data: bytes) -> int:
    """CRC-32 as an unsigned 32-bit integer (spec §1.1: zlib's, reflected poly 0xEDB88320)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def md5_signature_31(b64_payload: bytes, key: bytes) -> bytes:
    """The 16 ASCII hex characters that sign a 3.1 encrypted payload (spec §2.2)."""
    text = b"data=" + b64_payload + b"||lpv=3.1||" + key
    return hashlib.md5(text).hexdigest()[8:24].encode()  # noqa: S324 - protocol-defined


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two MACs/signatures."""
    return hmac.compare_digest(a, b)

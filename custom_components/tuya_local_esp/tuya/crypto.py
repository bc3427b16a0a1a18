"""Payload cryptography of the Tuya local protocol, built on ``cryptography``.

Shapes: every key is 16 bytes (the local key's ASCII bytes, a session key or the UDP key).
Sources: spec §2.2-§2.7 (tinytuya ``core/crypto_helper.py``, tuyapi ``lib/cipher.js``).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import TuyaProtocolError

BLOCK = 16
GCM_IV_LEN = 12
GCM_TAG_LEN = 16


def pkcs7_pad(data: bytes) -> bytes:
    """Pad ``data`` to a multiple of 16 bytes; a full block is added when already aligned."""
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes) -> bytes:
    """Remove PKCS#7 padding.

    Raises:
        TuyaProtocolError: the padding is invalid (usually a wrong key).

    """
    if not data or len(data) % BLOCK:
        raise TuyaProtocolError("ciphertext is not a whole number of AES blocks")
    n = data[-1]
    if not 1 <= n <= BLOCK or data[-n:] != bytes([n]) * n:
        raise TuyaProtocolError("bad PKCS#7 padding (wrong key?)")
    return data[:-n]


def ecb_encrypt(key: bytes, data: bytes, *, pad: bool = True) -> bytes:
    """AES-128-ECB encrypt ``data`` (PKCS#7 padded unless ``pad`` is false)."""
    if pad:
        data = pkcs7_pad(data)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - Tuya uses ECB
    return enc.update(data) + enc.finalize()


def ecb_decrypt(key: bytes, data: bytes, *, unpad: bool = True) -> bytes:
    """AES-128-ECB decrypt ``data`` and strip PKCS#7 padding unless ``unpad`` is false.

    Raises:
        TuyaProtocolError: the length is not a multiple of 16 or the padding is invalid.

    """
    if not data or len(data) % BLOCK:
        raise TuyaProtocolError("ciphertext is not a whole number of AES blocks")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    plain = dec.update(data) + dec.finalize()
    return pkcs7_unpad(plain) if unpad else plain


def gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes, aad: bytes | None) -> bytes:
    """AES-128-GCM encrypt; returns ``ciphertext || tag`` (16-byte tag)."""
    return AESGCM(key).encrypt(iv, plaintext, aad)


def gcm_decrypt(key: bytes, iv: bytes, ciphertext_and_tag: bytes, aad: bytes | None) -> bytes:
    """AES-128-GCM decrypt and verify the tag.

    Raises:
        TuyaProtocolError: the tag does not verify (tampered frame or wrong key).

    """
    try:
        return AESGCM(key).decrypt(iv, ciphertext_and_tag, aad)
    except InvalidTag:
        raise TuyaProtocolError("GCM tag mismatch (tampered frame or wrong key)") from None


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` (32 bytes)."""
    return hmac.new(key, data, hashlib.sha256).digest()


def v31_signature(b64_payload: bytes, key: bytes) -> bytes:
    """Protocol 3.1 CONTROL signature: 16 hex chars of md5 (spec §2.2).

    ``md5(b"data=" + b64 + b"||lpv=3.1||" + key).hexdigest()[8:24]`` (tinytuya
    ``XenonDevice._encode_message``, tuyapi ``cipher.md5``).
    """
    digest = hashlib.md5(b"data=" + b64_payload + b"||lpv=3.1||" + key).hexdigest()  # noqa: S324
    return digest[8:24].encode()

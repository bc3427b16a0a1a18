"""Client side of the session-key negotiation of protocols 3.4 and 3.5, as a sans-I/O state machine.

The device side lives in the simulator (``tuya_sim.codec.DeviceHandshake``), written independently.

The exchange (spec §2.7; tinytuya ``XenonDevice._negotiate_session_key*``, tuyapi ``index.js``
``_packetHandler``, openHAB ``CryptoUtil``), all keyed with the real local key:

1. client -> device ``SESS_KEY_NEG_START`` (0x03): ``client_nonce`` (16 bytes, fresh random);
2. device -> client ``SESS_KEY_NEG_RESP`` (0x04):
   ``device_nonce`` (16) ``|| HMAC(key, client_nonce)``;
3. client -> device ``SESS_KEY_NEG_FINISH`` (0x05): ``HMAC(key, device_nonce)``.

Session key: 3.4 ``AES-ECB(key, client_nonce XOR device_nonce)``; 3.5 the 16 ciphertext bytes of
``AES-GCM(key, iv=client_nonce[:12]).encrypt(client_nonce XOR device_nonce)``.
"""

from __future__ import annotations

import hmac
import os

from .crypto import ecb_encrypt, gcm_encrypt, hmac_sha256
from .errors import TuyaKeyError, TuyaProtocolError

NONCE_LEN = 16


def random_nonce() -> bytes:
    """A fresh 16-byte client nonce (looked up at call time, so replay tests can pin it)."""
    return os.urandom(NONCE_LEN)


def derive_session_key(
    version: str, local_key: bytes, client_nonce: bytes, device_nonce: bytes
) -> bytes:
    """Compute the 16-byte session key of a 3.4 or 3.5 connection (see module docstring)."""
    mixed = bytes(a ^ b for a, b in zip(client_nonce, device_nonce, strict=True))
    if float(version) >= 3.5:
        return gcm_encrypt(local_key, client_nonce[:12], mixed, None)[:NONCE_LEN]
    return ecb_encrypt(local_key, mixed, pad=False)


class ClientNegotiation:
    """Client side of the negotiation.

    Usage: send :attr:`start_payload` with cmd 0x03; pass the device's 0x04 payload to
    :meth:`handle_response`, send the returned bytes with cmd 0x05, then use
    :attr:`session_key`.
    """

    def __init__(self, version: str, local_key: bytes, client_nonce: bytes | None = None) -> None:
        """Start a negotiation; ``client_nonce`` is random unless given (tests only)."""
        self.version = version
        self._key = local_key
        self.client_nonce = client_nonce or random_nonce()
        self.session_key: bytes | None = None

    @property
    def start_payload(self) -> bytes:
        """Plaintext of the 0x03 message: the client nonce."""
        return self.client_nonce

    def handle_response(self, payload: bytes) -> bytes:
        """Check the device's 0x04 payload and return the 0x05 payload.

        Raises:
            TuyaProtocolError: the payload is not 48 bytes.
            TuyaKeyError: the device's HMAC of our nonce does not verify (wrong local key).

        """
        if len(payload) < NONCE_LEN + 32:
            raise TuyaProtocolError(f"session response has {len(payload)} bytes, expected 48")
        device_nonce = payload[:NONCE_LEN]
        proof = payload[NONCE_LEN : NONCE_LEN + 32]
        if not hmac.compare_digest(proof, hmac_sha256(self._key, self.client_nonce)):
            raise TuyaKeyError("device failed to prove the local key")
        self.session_key = derive_session_key(
            self.version, self._key, self.client_nonce, device_nonce
        )
        return hmac_sha256(self._key, device_nonce)

# Protocol 3.1 payload codec (tuya-protocol.md §2.2); imported by plug.make_codec on demand.
import binascii
import hashlib

from tuya import CONTROL, Codec33, FrameError, ecb_decrypt, ecb_encrypt, pad, unpad


class Codec31(Codec33):
    """Protocol 3.1: only CONTROL is encrypted, as "3.1" + md5 signature + base64(ECB) (§2.2);
    queries and heartbeats travel as plaintext JSON."""

    version = "3.1"

    def encrypt_payload(self, cmd, raw):
        if cmd != CONTROL:
            return raw
        b64 = binascii.b2a_base64(ecb_encrypt(self.key, pad(raw)))[:-1]  # drop the newline
        sig = binascii.hexlify(hashlib.md5(b"data=" + b64 + b"||lpv=3.1||" + self.key).digest())
        return b"3.1" + sig[8:24] + b64

    def decrypt_payload(self, payload):
        if payload[:3] == b"3.1":
            try:
                ct = binascii.a2b_base64(payload[19:])
            except ValueError:
                raise FrameError("bad base64")
            return unpad(ecb_decrypt(self.key, ct))
        return payload

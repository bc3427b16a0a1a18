# Protocol 3.4 codec and session-key negotiation (tuya-protocol.md §2.5, §2.7); imported by
# plug.make_codec on demand.
from hmacsha import HmacKey, equal, hmac_sha256
from tuya import (CONTROL_NEW, dumps, DP_QUERY_NEW, NO_HEADER_CMDS, SESS_KEY_NEG_FINISH,
                  SESS_KEY_NEG_START, Codec33, FrameError, ecb_decrypt, ecb_encrypt, pack_55aa,
                  pad, unpad)


class Codec34(Codec33):
    """Protocol 3.4 (§2.5, §2.7): HMAC-SHA256 frame trailer; the version header goes INSIDE
    the ECB ciphertext; CONTROL_NEW/DP_QUERY_NEW with the "protocol":5 wrapper; a session key
    negotiated on every new connection (0x03/0x04/0x05) before anything else."""

    version = "3.4"
    query_cmd = DP_QUERY_NEW
    control_cmd = CONTROL_NEW
    needs_session = True

    def __init__(self, dev_id, local_key):
        Codec33.__init__(self, dev_id, local_key)
        self.real_key = local_key
        self.reset()

    def reset(self):
        """Back to the real local key (a new TCP connection always renegotiates, §2.7)."""
        self.key = self.real_key
        self.mac_key = HmacKey(self.real_key)
        self._nonce = None

    def query_json(self, t):
        return "{}"

    def control_json(self, dps, t):
        return '{"protocol":5,"t":%d,"data":{"dps":%s}}' % (t, dumps(dps))

    def encrypt_payload(self, cmd, raw):
        if cmd not in NO_HEADER_CMDS:
            raw = b"3.4" + bytes(12) + raw
        return ecb_encrypt(self.key, pad(raw))

    def decrypt_payload(self, payload):
        if not payload:
            return b""
        raw = unpad(ecb_decrypt(self.key, payload))
        if raw[:3] == b"3.4":
            raw = raw[15:]
        return raw

    def neg_start(self, seqno, nonce):
        """SESS_KEY_NEG_START frame carrying our 16-byte random nonce (step 1, §2.7)."""
        self.reset()
        self._nonce = nonce
        return pack_55aa(seqno, SESS_KEY_NEG_START, ecb_encrypt(self.key, pad(nonce)),
                         self.mac_key)

    def neg_finish(self, seqno, payload):
        """Check the device's SESS_KEY_NEG_RESP payload (retcode removed) and return the
        SESS_KEY_NEG_FINISH frame; switches this codec to the session key. Raises FrameError
        when the device did not prove knowledge of the local key (wrong key)."""
        raw = unpad(ecb_decrypt(self.real_key, payload))
        if len(raw) < 48 or self._nonce is None:
            raise FrameError("short negotiation reply")
        dev_nonce = raw[:16]
        if not equal(raw[16:48], hmac_sha256(self.real_key, self._nonce)):
            raise FrameError("device proof mismatch (wrong local key?)")
        frame = pack_55aa(seqno, SESS_KEY_NEG_FINISH,
                          ecb_encrypt(self.real_key, pad(hmac_sha256(self.real_key, dev_nonce))),
                          self.mac_key)
        x = bytes(a ^ b for a, b in zip(self._nonce, dev_nonce))
        sk = ecb_encrypt(self.real_key, x)  # session key: ECB(real key, nc XOR nd), no padding
        self.key = sk
        self.mac_key = HmacKey(sk)
        self._nonce = None
        return frame

# Hub channel handshake, server side (docs/hub-protocol.md §4, §5), within one short deadline.
# Imported by server.py for the duration of a handshake and dropped afterwards (it is needed
# once per HA connection, so its code does not stay in the heap); the slot rules and failure
# bookkeeping before and after it are in hubgate.py.
import asyncio
import os
import time

from hmacsha import HmacKey, equal
from hubproto import MAC_LEN, MAGIC, NONCE_LEN, VERSION, Channel, ProtoError

HANDSHAKE_MS = const(3000)  # the whole handshake (both records), after the penalty delay

LABEL_SERVER = b"tuya-local-esp hub v1 server proof"
LABEL_CLIENT = b"tuya-local-esp hub v1 client proof"
LABEL_KEYS = b"tuya-local-esp hub v1 session keys"


class ServerHandshake:
    """§4: CLIENT_HELLO -> SERVER_HELLO -> CLIENT_PROOF, then session keys (§5)."""

    def __init__(self, secret, hub_id):
        self._secret = HmacKey(secret)
        self._hub_id = hub_id.encode()
        self._t = None

    def server_hello(self, body, nonce_s=None):
        """Answer a CLIENT_HELLO body; returns the SERVER_HELLO body. Raises ProtoError.

        A client that speaks another version gets the 6-byte reject body instead; the caller
        sends it and closes (`self.rejected` is True)."""
        self.rejected = False
        if len(body) != 4 + 1 + NONCE_LEN or body[:4] != MAGIC:
            raise ProtoError("bad client hello")
        if body[4] != VERSION:
            self.rejected = True
            return MAGIC + bytes((0, VERSION))
        if nonce_s is None:  # tests pass a fixed nonce to check the spec's example
            nonce_s = os.urandom(NONCE_LEN)
        self._t = bytes(body[5:21]) + nonce_s + bytes((len(self._hub_id),)) + self._hub_id
        proof = self._secret.digest(LABEL_SERVER, self._t)
        return MAGIC + bytes((VERSION,)) + nonce_s + bytes((len(self._hub_id),)) + self._hub_id + proof

    def finish(self, body):
        """Check CLIENT_PROOF; returns the server-side Channel or raises ProtoError."""
        if self._t is None or len(body) != MAC_LEN:
            raise ProtoError("bad client proof length")
        if not equal(body, self._secret.digest(LABEL_CLIENT, self._t)):
            raise ProtoError("bad client proof")
        ch = Channel(self._secret.digest(LABEL_KEYS, self._t), server=True)
        self._t = None
        return ch


async def handshake(srv, r, w):
    """CLIENT_HELLO -> SERVER_HELLO -> CLIENT_PROOF (§4) for server `srv`, within HANDSHAKE_MS.
    Handshake records have fixed lengths: any other length is refused from the header alone
    (§3). Returns the Channel; raises ProtoError, asyncio.TimeoutError, EOFError or OSError."""
    t0 = time.ticks_ms()
    hs = ServerHandshake(srv.secret, srv.hub.hub_id)
    n = 5 + NONCE_LEN
    while True:
        b = await asyncio.wait_for_ms(r.readexactly(2), _left(t0))
        k = (b[0] << 8) | b[1]
        if k != n:
            raise ProtoError("handshake record of %d bytes, expected %d" % (k, n))
        b = await asyncio.wait_for_ms(r.readexactly(n), _left(t0))
        if n == MAC_LEN:
            return hs.finish(b)
        b = hs.server_hello(b)
        w.write(bytes((0, len(b))) + b)  # record header (§3); the body is < 256 bytes
        await asyncio.wait_for_ms(w.drain(), _left(t0))
        if hs.rejected:
            raise ProtoError("unsupported client version")
        n = MAC_LEN


def _left(t0):
    """Milliseconds left of the handshake deadline that started at ticks t0 (at least 1)."""
    return max(1, HANDSHAKE_MS - time.ticks_diff(time.ticks_ms(), t0))

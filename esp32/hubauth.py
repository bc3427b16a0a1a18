# Setting up a hub channel connection, server side (docs/hub-protocol.md §2, §4, §5): the
# slot rules, the per-source delay after failed handshakes, the handshake itself within one
# deadline, and the rate-limited log of strangers. Imported by server.py while connections are
# being set up and dropped once none is (its code does not stay in the heap); its state lives
# in the server object (pending, bad, log_*).
#
# Strangers cannot lock HA out: a connection still in its handshake gives up its slot to a
# newcomer whose source has no more recent failures than its own (HA's address has none), the
# handshake has one short deadline, failures slow down only their own source address, and
# their log lines are limited to LOG_BURST per LOG_WINDOW_MS plus one summary.
import asyncio
import os
import time

import log
from hmacsha import HmacKey, equal
from hubproto import MAC_LEN, MAGIC, NONCE_LEN, VERSION, Channel, ProtoError

HANDSHAKE_MS = const(3000)  # the whole handshake (both records), after the penalty delay
# Failed handshakes slow down the following ones from the same source address (§4): 0.25 s
# after the first failure, doubling per failure up to 3 s, which stays below HA's 5 s connect
# timeout so the real client always gets through; all failures are forgotten after a minute
# without any. At most MAX_SOURCES addresses are remembered.
PENALTY_STEP_MS = const(250)
MAX_PENALTY_MS = const(3000)
FAIL_MEMORY_MS = const(60000)
MAX_SOURCES = const(8)
LOG_WINDOW_MS = const(10000)
LOG_BURST = const(5)

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


def _admit(srv, c, rank):
    """Give the new connection a slot (§2): a free one, or the one of the pending connection
    whose source has the most failures (oldest first), if that is at least `rank`, the
    newcomer's source's count. Authenticated clients are never evicted. Returns False when
    the newcomer must be refused."""
    if len(srv.clients) + len(srv.pending) >= srv.max_clients:
        victim = None
        for p in srv.pending:
            f = srv.bad.get(p.ip, 0)
            if f >= rank and (victim is None or f > srv.bad.get(victim.ip, 0)):
                victim = p
        if victim is None:
            return False
        srv.pending.remove(victim)
        victim.kill()
        _note(srv, "%s evicted by %s, failures=%d", (victim.peer, c.peer, _failed(srv, victim.ip)))
    srv.pending.append(c)
    return True


def _failed(srv, ip):
    """Count one failed handshake for `ip` (at most MAX_SOURCES addresses are remembered: a
    new one replaces the one with the fewest failures); returns its failure count."""
    bad = srv.bad
    if ip not in bad and len(bad) >= MAX_SOURCES:
        least = ip
        for k in bad:
            if least == ip or bad[k] < bad[least]:
                least = k
        del bad[least]
    bad[ip] = f = bad.get(ip, 0) + 1
    srv.bad_at = time.ticks_ms()
    return f


def _note(srv, fmt, args):
    """Log a stranger's connection event (fmt % args): LOG_BURST lines per LOG_WINDOW_MS; the
    rest are counted and summarised in one line when the next window starts."""
    now = time.ticks_ms()
    if time.ticks_diff(now, srv.log_at) >= LOG_WINDOW_MS:
        if srv.skipped:
            log.warn("srv", "%d refused/evicted/failed connections not logged" % srv.skipped)
            srv.skipped = 0
        srv.log_n = 0
        srv.log_at = now
    if srv.log_n < LOG_BURST:
        srv.log_n += 1
        log.warn("srv", fmt % args)
    else:
        srv.skipped += 1


async def run(srv, c, r, w):
    """Admit connection `c` (server.Client) and authenticate it: wait the delay its source
    earned by failed handshakes, then CLIENT_HELLO -> SERVER_HELLO -> CLIENT_PROOF within
    HANDSHAKE_MS (§4). Handshake records have fixed lengths: any other length is refused from
    the header alone (§3). Returns the Channel, or None when the connection was refused (closed
    at once: every connection is an lwIP socket) or failed (counted for its source); both are
    logged within the rate limit. `c` is no longer pending when this returns."""
    if time.ticks_diff(time.ticks_ms(), srv.bad_at) > FAIL_MEMORY_MS:
        srv.bad.clear()  # a minute without failures: forget them all
    f = srv.bad.get(c.ip, 0)
    if not _admit(srv, c, f):
        _note(srv, "%s refused: too many connections", c.peer)
        return None
    try:
        if f:
            await asyncio.sleep_ms(min(PENALTY_STEP_MS << min(f - 1, 4), MAX_PENALTY_MS))
        t0 = time.ticks_ms()
        try:
            hs = ServerHandshake(srv.secret, srv.hub.hub_id)
            n = 5 + NONCE_LEN
            while True:
                b = await asyncio.wait_for_ms(r.readexactly(2), _left(t0))
                if (b[0] << 8) | b[1] != n:
                    raise ProtoError("handshake record of %d bytes, expected %d"
                                     % ((b[0] << 8) | b[1], n))
                b = await asyncio.wait_for_ms(r.readexactly(n), _left(t0))
                if n == MAC_LEN:
                    ch = hs.finish(b)
                    break
                b = hs.server_hello(b)
                w.write(bytes((0, len(b))) + b)  # record header (§3); the body is < 256 bytes
                await asyncio.wait_for_ms(w.drain(), _left(t0))
                if hs.rejected:
                    raise ProtoError("unsupported client version")
                n = MAC_LEN
        except (ProtoError, asyncio.TimeoutError, EOFError, OSError) as e:
            f = _failed(srv, c.ip)
            _note(srv, "%s handshake failed (%s: %s), failures=%d, next delay %d ms",
                  (c.peer, type(e).__name__, e, f, min(PENALTY_STEP_MS << min(f - 1, 4),
                                                       MAX_PENALTY_MS)))
            return None
        srv.bad.pop(c.ip, None)  # a successful handshake clears the source's record
        return ch
    finally:
        if c in srv.pending:
            srv.pending.remove(c)


def _left(t0):
    """Milliseconds left of the handshake deadline that started at ticks t0 (at least 1)."""
    return max(1, HANDSHAKE_MS - time.ticks_diff(time.ticks_ms(), t0))

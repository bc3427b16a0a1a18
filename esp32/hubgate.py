# Admission of hub channel connections, server side (docs/hub-protocol.md §2, §4): the slot
# rules, the per-source delay after failed handshakes and the rate-limited log of strangers'
# connections. Imported by server.py before and (after a failure) after each handshake, and
# dropped again, so its code does not stay in the heap; its state lives in the server object
# (pending, bad, bad_at, log_at, log_n, skipped).
#
# Strangers cannot lock HA out: a connection still in its handshake gives up its slot to a
# newcomer whose source has no more failures than its own (HA's address has none), the
# handshake has one short deadline (hubauth.py), failures slow down only their own source
# address, and their log lines are limited to LOG_BURST per LOG_WINDOW_MS plus one summary.
import time

import log

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


def _take_slot(srv, c, rank):
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
        n = _failed(srv, victim.ip)
        _note(srv, "%s evicted by %s, failures=%d", (victim.peer, c.peer, n))
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


def admit(srv, c):
    """A new connection `c` (server.Client): a slot per the rules above, and the delay (ms) its
    source earned by failed handshakes, or -1 when it must be refused (logged within the rate
    limit; the caller closes it at once: every connection is an lwIP socket)."""
    if time.ticks_diff(time.ticks_ms(), srv.bad_at) > FAIL_MEMORY_MS:
        srv.bad.clear()  # a minute without failures: forget them all
    f = srv.bad.get(c.ip, 0)
    if not _take_slot(srv, c, f):
        _note(srv, "%s refused: too many connections", c.peer)
        return -1
    return _delay(f)


def failed(srv, c, e):
    """The handshake of `c` failed with exception `e`: count it for its source, log it."""
    f = _failed(srv, c.ip)
    _note(srv, "%s handshake failed (%s: %s), failures=%d, next delay %d ms",
          (c.peer, type(e).__name__, e, f, _delay(f)))


def _delay(f):
    return min(PENALTY_STEP_MS << min(f - 1, 4), MAX_PENALTY_MS) if f else 0

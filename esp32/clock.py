# The hub's clock policy: which source set the time (Home Assistant's `time` request or NTP)
# and when. Plugs ignore commands whose "t" is far from real time, so `set` is refused until
# one of them has set the clock (docs/hub-protocol.md §7.3). NTP is optional (`ntp_host`, an
# IPv4 literal: a name would need a DNS lookup that blocks the event loop) and is queried over
# UDP without blocking: the event loop waits for the answer like for any socket.
import asyncio
import socket
import struct

import board
import log

MIN_TIME = 1700000000  # a `time` below this (2023-11-14) is refused as bad_request
NTP_FRESH_S = const(86400)  # NTP set within this many seconds wins over HA's time
NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 5905 §6)
NTP_MS = const(1000)  # wait for an NTP answer
RETRY_S = const(60)  # NTP retry while it does not answer
RESYNC_S = const(3600)  # NTP resync once it answered
MAX_DIFF_S = const(60)

_source = None  # None, "ha" or "ntp"
_set_up_s = 0  # board.uptime_s() when the clock was last set
_warned = False  # the HA/NTP disagreement was logged since the last NTP sync


def source():
    """"ha", "ntp" or None (clock never set)."""
    return _source


def synced():
    return _source is not None


def from_ha(t):
    """Apply HA's clock (`time` request, int Unix seconds UTC). Taken when the clock was never
    set or was set by HA; an NTP time less than 24 h old is kept (a difference over 60 s is
    logged once). Returns {"time": hub time after applying, "source": "ha"|"ntp"}.
    Raises ValueError for a time that is not an int >= MIN_TIME."""
    global _source, _set_up_s, _warned
    if not isinstance(t, int) or isinstance(t, bool) or t < MIN_TIME:
        raise ValueError("time must be an integer >= %d" % MIN_TIME)
    up = board.uptime_s()
    if _source == "ntp" and up - _set_up_s < NTP_FRESH_S:
        d = t - board.unix_time()
        if (d > MAX_DIFF_S or d < -MAX_DIFF_S) and not _warned:
            _warned = True
            log.warn("clock", "Home Assistant's clock differs from NTP by %d s; keeping NTP" % d)
    else:
        board.set_unix_time(t)
        if _source != "ha":
            log.info("clock", "time set by Home Assistant")
        _source = "ha"
        _set_up_s = up
    return {"time": board.unix_time(), "source": _source}


def ntp_host(cfg):
    """The configured NTP server (IPv4 literal) or None: null/false/"" mean no NTP; a name
    is refused with a log line (its lookup would block the event loop)."""
    h = cfg.get("ntp_host")
    if not h:
        return None
    if not isinstance(h, str) or not _ipv4(h):
        log.error("clock", "ntp_host %s is not an IPv4 address (a name needs a blocking DNS "
                           "lookup): NTP disabled, the time comes from Home Assistant" % h)
        return None
    return h


def _ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


async def _readable(s):
    yield asyncio.core._io_queue.queue_read(s)


async def ntp_time(host, port=123):
    """One SNTP query (RFC 4330: 48-byte client request, transmit timestamp of the answer).
    Returns Unix seconds; raises OSError, asyncio.TimeoutError (no answer in NTP_MS) or
    ValueError (not a usable server answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        q = bytearray(48)
        q[0] = 0x1B  # LI 0, version 3, mode 3 (client)
        s.sendto(q, socket.getaddrinfo(host, port)[0][-1])
        await asyncio.wait_for_ms(_readable(s), NTP_MS)
        m = s.recv(48)
    finally:
        s.close()
    if len(m) < 48 or m[0] & 7 != 4 or not m[1]:  # mode 4 (server); stratum 0 = kiss-o'-death
        raise ValueError("not an NTP server answer")
    t = struct.unpack(">I", m[40:44])[0]
    if t < 0x80000000:
        t += 0x100000000  # era 1 (from 2036-02-07)
    t -= NTP_DELTA
    if t < MIN_TIME:
        raise ValueError("NTP time before 2023")
    return t


async def ntp_sync(host, port=123):
    """Set the clock from NTP; returns True on success (failures are logged, never raised)."""
    global _source, _set_up_s, _warned
    try:
        t = await ntp_time(host, port)
    except Exception as e:  # noqa: BLE001 - no socket left, timeout, bad answer, ...
        log.warn("clock", "NTP %s: no time (%s)" % (host, type(e).__name__))
        return False
    board.set_unix_time(t)
    if _source != "ntp":
        log.info("clock", "time set by NTP %s" % host)
    _source = "ntp"
    _set_up_s = board.uptime_s()
    _warned = False
    return True


async def run_ntp(host, port, ok):
    """Keep the clock set from NTP: retry every minute while it fails, resync hourly. `ok` is
    the result of the first sync (done before the hub starts serving)."""
    while True:
        await asyncio.sleep(RESYNC_S if ok else RETRY_S)
        ok = await ntp_sync(host, port)

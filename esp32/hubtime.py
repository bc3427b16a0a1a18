# The hub clock's two sources (board.py keeps it): Home Assistant's `time` request
# (from_ha, docs/hub-protocol.md §7.3) and optional NTP, without blocking the event loop: one
# SNTP query (RFC 4330) is a 48-byte client request over UDP to an IPv4 literal (a name would
# need a DNS lookup that blocks), and the server's transmit timestamp answers it. Imported by
# app.py for each sync and by server.py for each `time` request only, so its code does not
# stay in the heap.
import asyncio
import socket
import struct

import board
import log
from hubproto import E_BAD_REQUEST, HubErr

NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 5905 §6)
NTP_MS = const(1000)  # wait for the answer
MIN_TIME = 1700000000  # an NTP or HA time below this (2023-11-14) is refused


def is_ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


async def _readable(s):
    yield asyncio.core._io_queue.queue_read(s)


async def query(host, port=123):
    """Unix seconds from the NTP server `host` (IPv4 literal: getaddrinfo does no DNS lookup).
    Raises OSError, asyncio.TimeoutError (no answer within NTP_MS) or ValueError (not a
    usable server answer)."""
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


async def sync(host, port):
    """Query `host` and set the clock. Returns True/False (failures logged, never raised),
    or None for a host that is not an IPv4 literal (logged: resolving a name would block the
    event loop)."""
    if not isinstance(host, str) or not is_ipv4(host):
        log.error("clock", "ntp_host %s is not an IPv4 address (a name needs a blocking DNS "
                           "lookup): NTP disabled, the time comes from Home Assistant" % host)
        return None
    try:
        t = await query(host, port)
    except Exception as e:  # noqa: BLE001 - no socket left, timeout, bad answer, ...
        log.warn("clock", "NTP %s: no time (%s)" % (host, type(e).__name__))
        return False
    if board.time_source != "ntp":
        log.info("clock", "time set by NTP %s" % host)
    board.set_unix_time(t, "ntp")
    return True




def from_ha(server, t):
    """`time` request: HA's clock `t` (int Unix seconds UTC), sent after every hello. Taken
    when the clock was never set or was set by HA; an NTP time less than 24 h old is kept
    (a difference over 60 s is logged once per NTP sync, server.time_warned). Returns
    {"time": hub time after, "source": "ha"|"ntp"}; raises HubErr(bad_request) for a time
    that is not an int >= MIN_TIME."""
    if not isinstance(t, int) or isinstance(t, bool) or t < MIN_TIME:
        raise HubErr(E_BAD_REQUEST, "time must be an integer >= %d" % MIN_TIME)
    if board.time_source == "ntp" and board.uptime_s() - board.time_set_s < 86400:
        d = t - board.unix_time()
        if (d > 60 or d < -60) and server.time_warned != board.time_set_s:
            server.time_warned = board.time_set_s
            log.warn("clock", "HA's clock differs from NTP by %d s; keeping NTP" % d)
    else:
        if board.time_source != "ha":
            log.info("clock", "time set by Home Assistant")
        board.set_unix_time(t, "ha")
    return {"time": board.unix_time(), "source": board.time_source}

# One Tuya plug seen from the hub: a persistent TCP connection, driven by events.
#
# Memory is the constraint (a plain ESP32 has ~100 KB of heap for everything), so a connected
# plug costs one asyncio task (the connection task, which reads frames), one stream and one
# preallocated frame buffer. Everything periodic is done from the hub's 1-second tick (tick()),
# without a task per plug:
#   * liveness: any frame from the plug is a sign of life. After heartbeat_s - 1 s without
#     hearing anything (9 s) a heartbeat goes out, 1 s later (nothing heard still) a status query
#     (some plugs ignore heartbeats), and after heartbeat_s + 1 s of silence (11 s) the plug is
#     offline: with the 0.5 s tick, at most 11.5 s after its last frame. A heartbeat also goes out
#     after 2 x heartbeat_s without sending anything (plugs drop a client idle ~30 s;
#     tuya-protocol.md §4), so a plug that only pushes is kept;
#   * UPDATEDPS 0x12 every refresh_s for the plug's refresh DPs (its profile's "refresh" list,
#     by default 18/19/20; power DPs often update only when asked; §2.9, §5); its reply is
#     empty and the values come as STATUS pushes; when a heartbeat is due at the same time,
#     the refresh stands for it;
#   * reconnect after a loss at once (~1 s), then every 2 s for 10 minutes, then with exponential
#     backoff up to plug_backoff_max_s (60 s), with jitter; 15 s (+-20 %) while another client
#     holds the plug (below).
# Why a plug is offline (Plug.fault, sent to HA, docs/hub-protocol.md §7.1): "unreachable" when
# the TCP connect fails or times out; "busy" when the plug accepted and then closed (FIN or RST)
# _BUSY_AFTER connections in a row within _BUSY_MS of opening them (another client holds it: a
# plug takes one connection and drops the older, §4), cleared once a connection lasts _BUSY_MS;
# "key" after _KEY_AFTER frames in a row, before the plug is online, that fail to authenticate
# (3.4 HMAC, 3.5 GCM tag), fail to decrypt (3.1/3.3) or a 3.4/3.5 session-key reply that does
# not verify or a FIN in answer to our session-key request (as the HA side's tuya/device.py);
# never on silence; cleared by a frame that decrypts. The same evidence rules as the direct path.
# Bad frames (bad CRC/HMAC/tag, bad length or suffix) are skipped by the parsers, which
# resynchronise on the next prefix, and counted; once the plug is online they never drop the
# connection: a command whose ACK was damaged is confirmed by the STATUS or a status query.
# The connection task: connect -> [3.4 session-key negotiation, §2.7] -> DP_QUERY -> read
# frames forever (STATUS pushes 0x08, replies). set_dps() runs in the requesting task: CONTROL,
# then the empty ACK, then the STATUS with the new values (§2.4); a DP_QUERY if no STATUS comes.
#
# Sockets: the socket is created here (_open), not by asyncio.open_connection(), which keeps its
# socket in a local variable and leaks it when the connect is cancelled by a timeout
# (MicroPython extmod/asyncio/stream.py, 1.27: no close on cancellation; an unreachable plug
# leaked one socket per attempt and a few plugs off at the wall exhausted the ESP32's 10 lwIP
# sockets). The stream is stored in self._w before the connect starts and the connection task
# closes it in a `finally` on every path (timeout, refusal, cancellation, MemoryError).
#
# MicroPython traps (micropython-esp32.md §3.2): the connect completes asynchronously, so errors
# surface on the first read/write (ECONNREFUSED on the first write: the plug is unreachable),
# which end the connection task; Stream.close() is a no-op, so the socket itself is closed. Bytes
# are read into our own buffer, so a cancelled read never loses half a frame; a frame stalled
# mid-way past the reply timeout drops the connection.
import asyncio
import os
import time
from array import array

import board
import log
import tuya
from hubproto import E_BUSY, E_DEVICE, E_OFFLINE, E_TIMEOUT, HubErr
from tuya import BAD_AUTH

# Frame buffer: plug frames are mostly 28-300 B (micropython-esp32.md §1.3). Each plug starts
# with _BUF_SIZE bytes; a longer frame grows its buffer up to tuya.MAX_FRAME, and the buffer
# shrinks back once empty.
_BUF_SIZE = const(256)
_CONFIRM_MS = const(3000)
_STEADY_S = const(2)  # reconnect pacing during the first _SLOW_AFTER_MS of an outage
_SLOW_AFTER_MS = const(600000)
_WRITE_MS = const(5000)
_BUSY_MS = const(5000)  # a connection the plug closes this soon after accepting it: an early drop
_BUSY_AFTER = const(2)  # early drops in a row that mean another client holds the plug
_POLITE_MS = const(12000)  # the polite wait: 12 s + 0..6 s of jitter (15 s +-20 %)
_KEY_AFTER = const(2)  # key evidence in a row before the fault is "key"

# indexes into Plug._t (tick timestamps in one small int array instead of five attributes:
# every attribute costs a slot in the instance's dict)
_EXPECT_AT = const(0)
_LAST_TX = const(1)
_LAST_RX = const(2)
_REFRESH_AT = const(3)
_RETRY_AT = const(4)
_DOWN_AT = const(5)  # when the plug was last seen online (start of an outage)
_OPENED = const(6)  # when the plug accepted the current connection (first write went out)
_STAGE = const(7)  # of the current connection: _S_CONNECT, _S_OPEN, _S_KEYED
_FAULT = const(8)  # index into _FAULTS
_KEYS = const(9)  # key evidence in a row (frames that did not verify before the plug was online)
_EARLY = const(10)  # early drops in a row
_BADN = const(11)  # bad frames skipped since the hub started
_S_CONNECT = const(0)  # TCP connect in flight
_S_OPEN = const(1)  # accepted; 3.4/3.5 session-key negotiation in flight
_S_KEYED = const(2)  # first query (the plug goes online with its answer)
_END_EOF = const(1)  # how the connection ended: closed by the plug (FIN) ...
_END_ERR = const(2)  # ... or reset / socket error (0: by us: timeout, drop, bad frames)
_FAULTS = (None, "key", "busy", "unreachable")
_F_KEY = const(1)
_F_BUSY = const(2)
_F_UNREACH = const(3)
# indexes into the per-command list Plug._cmd
_WANT = const(0)
_GOT = const(1)
_CONFIRM = const(2)
_EVT = const(3)
# Plug._expect while the TCP connect is in flight (tick() enforces the connect timeout)
_CONNECTING = const(-1)

_MISSING = object()

# Shared settings, set once by configure(): saves attributes per plug.
_hb_ms = 10000
_win_ms = 1000  # liveness windows: heartbeat answer, then status query answer
_quiet_ms = 9000  # silence before the heartbeat
_refresh_ms = 30000
_connect_ms = 5000
_reply_ms = 5000
_max_backoff_s = 60
_on_state = None
# Test-only fault injection: a testhooks.Faults when config.json has "test_faults" (set by
# app.Hub), None in normal operation, so each hook costs one global lookup.
faults = None


def configure(heartbeat_s, refresh_s, on_state, connect_ms=5000, reply_ms=5000,
              max_backoff_s=60):
    """Settings shared by all plugs: heartbeat_s (a plug silent for heartbeat_s + 1 s is
    offline, module comment) and the UPDATEDPS period (s, 0 = no refresh), the state callback
    on_state(plug, changed_dps), the connect and reply timeouts (ms), the longest reconnect
    backoff (s)."""
    global _hb_ms, _refresh_ms, _on_state, _connect_ms, _reply_ms, _max_backoff_s
    global _win_ms, _quiet_ms
    _hb_ms = heartbeat_s * 1000
    _win_ms = min(reply_ms >> 1, 1000)
    _quiet_ms = max(_hb_ms - _win_ms, _win_ms)
    _refresh_ms = refresh_s * 1000
    _on_state = on_state
    _connect_ms = connect_ms
    _reply_ms = reply_ms
    _max_backoff_s = max(1, max_backoff_s)


def make_codec(version, dev_id, local_key):
    """Codec for protocol `version` ("3.1", "3.3", "3.4" or "3.5"); local_key as 16 bytes.
    Raises ValueError for another version.

    This registry lives here, with its one caller, so that tuya.py never imports the modules
    that build on it (no import cycle). 3.1, 3.4 and 3.5 live in their own modules, imported
    only when a plug needs them."""
    if version == "3.3":
        return tuya.Codec33(dev_id, local_key)
    if version == "3.1":
        from tuya31 import Codec31

        return Codec31(dev_id, local_key)
    if version == "3.4":
        from tuya34 import Codec34

        return Codec34(dev_id, local_key)
    if version == "3.5":
        from tuya35 import Codec35

        return Codec35(dev_id, local_key)
    raise ValueError("unsupported protocol version")


def _writable(s):
    # Park the calling task until socket `s` is writable (connected or failed), the same I/O
    # wait asyncio's own open_connection() and Stream.drain() use (extmod/asyncio/stream.py).
    yield asyncio.core._io_queue.queue_write(s)


def _profile(cfg):
    # Plug.prof of a plug record with "refresh" and/or "dps" (config.check_plug)
    r = cfg.get("refresh")
    d = cfg.get("dps")
    return (tuya.REFRESH_DPS if r is None else bytes(r),
            None if d is None else bytes(int(k) for k in d))


class ConnLost(Exception):
    pass


class Plug:
    """State and connection of one plug.

    Read-only for other modules: id, name, ver, host, port, dps (DP id int -> value; use
    dps_json() for string keys), online (bool: connected and answered the first query), ts
    (unix time of the last DP update or None), refresh (the DP ids refreshed with UPDATEDPS,
    as bytes: the profile's "refresh" list or tuya.REFRESH_DPS), fault (why it is offline:
    None, "key", "busy" or "unreachable"; module comment), bad_frames (frames skipped)."""

    prof = None  # no profile: tuya.REFRESH_DPS, and a switch plug's DPs for device22

    def __init__(self, cfg):
        self.id = cfg["id"]
        self.name = cfg["name"]
        self.host = cfg["host"]
        self.port = cfg["port"]
        # The codec holds the local key; neither it nor cfg["key"] is ever logged or sent.
        self.codec = make_codec(cfg["ver"], cfg["id"], cfg["key"].encode())
        self.dps = {}
        # The plug's profile, only when config has one: (refresh DP ids, the DP ids it uses or
        # None), each as bytes (one DP id 1-255 per byte). Without one the class default
        # None stands in: an instance attribute more would grow every plug's attribute table
        # (17 -> 23 slots).
        if "refresh" in cfg or "dps" in cfg:
            self.prof = _profile(cfg)
        self.online = False
        self.ts = None
        self._buf = bytearray(_BUF_SIZE)
        self._n = 0
        self._seq = 0
        self._w = None
        self._task = None  # the connection task, while connecting or connected
        self._cmd = None  # [want, got, confirm, Event] while a command is in flight
        self._expect = 0  # command whose reply tick() waits for (heartbeat, query)
        # tick timestamps and small counters in one int array: every attribute more would cost
        # a slot in each plug's attribute table
        self._t = array("i", (0, 0, 0, 0, time.ticks_ms(), time.ticks_ms(), 0, 0, 0, 0, 0, 0))
        self._backoff = 1  # seconds; 0 once stopped

    @property
    def ver(self):
        return self.codec.version

    @property
    def refresh(self):
        p = self.prof
        return tuya.REFRESH_DPS if p is None else p[0]

    @property
    def fault(self):
        return _FAULTS[self._t[_FAULT]]

    @property
    def bad_frames(self):
        return self._t[_BADN]

    # --- lifecycle ---------------------------------------------------------------------------
    def tick(self, now):
        """Called by the hub twice a second (sync; allocates nothing when idle)."""
        if not self._backoff:
            return
        t = self._t
        task = self._task
        if task is not None and task.done():
            # The connection task ended without its cleanup (cancelled before it first ran):
            # close whatever it left and schedule a new attempt instead of waiting forever.
            self._close()
            self._task = task = None
        if task is None:
            if time.ticks_diff(now, t[_RETRY_AT]) >= 0:
                self._expect = 0
                self._task = asyncio.create_task(self._connection())
            return
        if not self.online:
            # Connecting, negotiating, first query: the tick enforces the connect and reply
            # timeouts by cancelling the connection task, which waits on the socket itself
            # (no asyncio.wait_for helper task that could outlive the socket).
            e = self._expect
            if e and time.ticks_diff(now, t[_EXPECT_AT]) > (
                    _connect_ms if e == _CONNECTING else _reply_ms):
                log.info("plug", "%s connection ended: TimeoutError %s" % (
                    self.id, "connect" if e == _CONNECTING else "no reply to cmd 0x%02x" % e))
                task.cancel()
            return
        if t[_FAULT] == _F_BUSY and time.ticks_diff(now, t[_OPENED]) >= _BUSY_MS:
            t[_EARLY] = 0  # this connection outlived the rival's pattern: the plug is ours
            self._state(True, 0)
        quiet = time.ticks_diff(now, t[_LAST_RX])
        # (the parsers keep at most 3 bytes of junk: more is a frame that began)
        stalled = self._n > 3
        if quiet > _quiet_ms + 2 * _win_ms or (stalled and quiet > _reply_ms):
            self._drop("frame stalled mid-way" if stalled else "silent for %d ms" % quiet)
        elif self._expect == tuya.HEART_BEAT:
            if quiet > _quiet_ms + _win_ms and time.ticks_diff(now, t[_EXPECT_AT]) >= _win_ms \
                    and not stalled:  # (part of a frame came: the stall check decides)
                # Heartbeat unanswered: some plugs ignore heartbeats, a status query decides
                c = self.codec
                self._expect = c.query_cmd
                t[_EXPECT_AT] = now
                self._send(c.query_cmd, c.query_json(board.unix_time()))
        elif self._cmd is not None or self._expect:
            pass
        else:
            # The UPDATEDPS refresh keeps its own schedule; when it is due it also serves as
            # the liveness probe (the plug ACKs it), else a heartbeat goes out
            r = None
            if _refresh_ms and time.ticks_diff(now, t[_REFRESH_AT]) >= 0:
                t[_REFRESH_AT] = time.ticks_add(now, _refresh_ms)
                r = self.refresh
                if r:
                    self._send(tuya.UPDATEDPS, self.codec.refresh_json(r))
            if quiet >= _quiet_ms or time.ticks_diff(now, t[_LAST_TX]) >= 2 * _hb_ms:
                self._expect = tuya.HEART_BEAT  # a probe is out: any frame answers it
                t[_EXPECT_AT] = now
                if not r:
                    self._send(tuya.HEART_BEAT, self.codec.heartbeat_json())

    async def stop(self):
        """Stop for good (plug removed): cancel the connection task and close the socket."""
        self._backoff = 0
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.sleep_ms(0)  # let the cancelled task run its cleanup
        self._close()
        self._state(False, self._t[_FAULT])

    def set_host(self, host, port=None):
        """Point the plug at a new address (IPv4 string, checked by the caller): drop the
        current connection and reconnect at once, without the backoff wait."""
        self.host = host
        if port is not None:
            self.port = port
        if self._backoff:
            self._backoff = 1
            self._t[_RETRY_AT] = time.ticks_ms()
            self._t[_EARLY] = 0
            self._drop("host changed")

    def set_profile(self, cfg):
        """Take the profile of plug record `cfg` (its "refresh"/"dps", checked by the caller;
        both absent: the defaults) without reconnecting; the next tick sends the new refresh."""
        self.prof = _profile(cfg) if "refresh" in cfg or "dps" in cfg else None
        self._t[_REFRESH_AT] = time.ticks_ms()

    def _drop(self, why):
        log.info("plug", "%s dropping connection: %s" % (self.id, why))
        t = self._task
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    def _close(self):
        # Close the socket itself: Stream.close() does nothing and Stream.wait_closed() only
        # calls socket.close(), so this is synchronous and cannot be interrupted half-way.
        # A task still waiting on the socket (a write drain) is first taken off asyncio's
        # poller: a closed socket left registered there can crash the interpreter's poll
        # (seen on the unix port under memory pressure); the drain's own timeout then ends it.
        w = self._w
        self._w = None
        if w is not None:
            s = w.s
            try:
                q = asyncio.core._io_queue
                if id(s) in q.map:
                    q._dequeue(s)
            except Exception:  # noqa: BLE001
                pass
            try:
                s.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _open(self):
        """Connect without blocking; the stream is in self._w before the connect starts, so
        the caller's cleanup closes the socket whatever happens. Raises OSError (refused,
        unreachable, no free socket); tick() cancels the task after the connect timeout."""
        import socket

        ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        self._w = w = asyncio.StreamWriter(s)
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            import errno

            if e.errno != errno.EINPROGRESS:
                raise
        self._t[_EXPECT_AT] = time.ticks_ms()
        self._expect = _CONNECTING
        await _writable(s)
        self._expect = 0
        return w

    def _state(self, online, fault):
        # one state push to HA when either changed
        t = self._t
        if self.online != online or t[_FAULT] != fault:
            self.online = online
            t[_FAULT] = fault
            _on_state(self, {})

    def _strike(self):
        """Key evidence (module comment); the fault is "key" after _KEY_AFTER in a row."""
        t = self._t
        t[_KEYS] += 1
        if t[_KEYS] >= _KEY_AFTER:
            self._state(self.online, _F_KEY)

    def _bad(self, kind):
        """A frame was skipped (tuya.BAD_FRAME / BAD_AUTH, or BAD_AUTH for a payload that does
        not decrypt). Before the plug is online, an authentication or decryption failure is key
        evidence and ends the connection (raises tuya.FrameError); once online, the frame is
        only counted and, when a command waits for its ACK, stands for that ACK (the STATUS or
        a status query confirms the command)."""
        t = self._t
        t[_BADN] += 1
        n = t[_BADN]
        if not n & (n - 1):  # 1, 2, 4, 8...: bounded log lines
            log.info("plug", "%s skipped a bad frame (%s), %d so far" % (
                self.id, "auth" if kind == BAD_AUTH else "crc/framing", n))
        if not self.online:
            if kind == BAD_AUTH:
                self._strike()
                raise tuya.FrameError("a frame from the plug did not verify")
            return
        c = self._cmd
        if c is not None and c[_GOT] is None and c[_WANT] and self.codec.control_cmd in c[_WANT]:
            c[_GOT] = False
            if c[_EVT] is not None:
                c[_EVT].set()

    # --- the connection task -----------------------------------------------------------------
    async def _connection(self):
        self._n = 0
        self._expect = 0
        self._t[_STAGE] = _S_CONNECT
        end = 0
        try:
            # connect, [3.4/3.5 session key], first query, then read frames until the link
            # fails: always ends by an exception (ConnLost, OSError, TimeoutError, FrameError)
            t = self._t
            r = await self._start()
            while True:
                k = await r.readinto(self._room())
                if not k:
                    raise ConnLost("closed by plug")
                self._n += k
                t[_LAST_RX] = time.ticks_ms()
                if faults:
                    faults.hit("plug_rx")
                self._parse()
                if not self._n and len(self._buf) > _BUF_SIZE:
                    self._buf = bytearray(_BUF_SIZE)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - EOF, reset, timeout, bad frame, MemoryError
            if isinstance(e, ConnLost):
                end = _END_EOF
            elif isinstance(e, OSError):
                end = _END_ERR
            try:
                log.info("plug", "%s connection ended: %s %s" % (self.id, type(e).__name__, e))
            except Exception:  # noqa: BLE001 - no memory even for the log line
                pass
        finally:
            self._ended(end)

    async def _start(self):
        """Connect, [3.4/3.5 session key], first query and its answer; returns the stream.
        A coroutine of its own, so its frame is freed once the plug is online: the
        connection task's frame, kept for the whole connection, holds only the read loop."""
        t = self._t
        r = w = await self._open()
        if faults:
            faults.hit("connect")
        nd = board.nodelay(w)
        log.log(log.DEBUG if nd else log.WARN, "plug", "%s nodelay %s" % (self.id, nd))
        t[_LAST_RX] = time.ticks_ms()
        c = self.codec
        if c.needs_session:
            await self._negotiate(r)
        # The first answer must come within the reply timeout (tick() does not watch before
        # the plug is online).
        fr, dec = await self._answer(r)
        if fr[2] and c.version == "3.3" and c.query_cmd == tuya.DP_QUERY and \
                b"data unvalid" in (dec[1] or b""):
            # "device22" firmware refuses DP_QUERY: read the state with nulls instead, for
            # the profile's DPs (or a switch plug's 1/9/17/18/19/20) and those already seen
            ids = set()
            for k in (self.prof or (0, None))[1] or b"\x01\x09\x11\x12\x13\x14":
                ids.add(str(k))
            for k in self.dps:
                ids.add(str(k))
            c.set_device22(ids)
            log.info("plug", "%s is a device22 plug: polling with CONTROL_NEW" % self.id)
            fr, dec = await self._answer(r)
        t[_REFRESH_AT] = time.ticks_add(time.ticks_ms(), 2000)
        t[_KEYS] = 0  # the key works
        # online; "busy" stays until this connection has lasted _BUSY_MS (tick)
        self._state(True, _F_BUSY if t[_FAULT] == _F_BUSY else 0)
        self._backoff = 1
        self._on_frame(fr, dec)
        fr = dec = None
        return r

    async def _answer(self, r):
        """Send the status query and return its answer (the first frame that decrypts) and
        its decoded payload (obj, text); a frame that does not decrypt is key evidence."""
        c = self.codec
        self._expect = c.query_cmd
        self._t[_EXPECT_AT] = time.ticks_ms()
        self._send(c.query_cmd, c.query_json(board.unix_time()))
        while True:
            fr = await self._read_frame(r)
            try:
                return fr, (c.decode(fr[3]) if fr[3] else (None, b""))
            except tuya.FrameError:
                self._bad(BAD_AUTH)  # raises: the plug is not online yet

    def _ended(self, end):
        # Every exit of the connection task, synchronous so nothing can cancel it half-way:
        # socket closed first, the failure classified (module comment), waiters and HA told,
        # then the retry scheduled (jitter from ticks_us, which allocates nothing). A method
        # rather than inline: its locals do not sit in every connected plug's task frame.
        self._close()
        t = self._t
        now = time.ticks_ms()
        ok = self.online  # got as far as the first answer: the backoff does not grow
        st = t[_STAGE]
        f = t[_FAULT]
        polite = False
        if st == _S_CONNECT:
            if end == _END_ERR or self._expect == _CONNECTING:
                f = _F_UNREACH  # the TCP connect failed or timed out
        else:
            if f == _F_UNREACH:
                f = 0
            if end and time.ticks_diff(now, t[_OPENED]) < _BUSY_MS:
                if end == _END_EOF and st == _S_OPEN:
                    # hung up on our session-key request: a key the plug refuses
                    t[_KEYS] += 1
                    if t[_KEYS] >= _KEY_AFTER:
                        f = _F_KEY
                else:
                    t[_EARLY] += 1
                    if t[_EARLY] >= _BUSY_AFTER:
                        f = _F_BUSY
                        polite = True
            else:
                t[_EARLY] = 0
                if f == _F_BUSY:
                    f = 0
        try:
            cmd = self._cmd
            if cmd is not None and cmd[_EVT] is not None:
                cmd[_EVT].set()
            self._state(False, f)
        except Exception:  # noqa: BLE001 - e.g. MemoryError while notifying HA
            self.online = False
            t[_FAULT] = f
        b = self._backoff
        if b:
            if polite:
                # another client holds the plug: a few polite attempts a minute
                t[_RETRY_AT] = time.ticks_add(now, _POLITE_MS + (time.ticks_us() & 255) * 23)
                self._task = None
                return
            if ok:
                t[_DOWN_AT] = now
            else:
                # 2 s between attempts for the first 10 minutes of an outage (a plug back from
                # a power cut is found within ~2.5 s), then doubling to _max_backoff_s; the
                # same pacing as the HA side (tuya/backoff.py)
                cap = _max_backoff_s
                if b <= _STEADY_S and time.ticks_diff(now, t[_DOWN_AT]) < _SLOW_AFTER_MS:
                    cap = min(_STEADY_S, cap)
                self._backoff = b = min(b * 2, cap)
            t[_RETRY_AT] = time.ticks_add(now, b * 1000 + ((time.ticks_us() & 255) * b * 250) // 256)
        self._task = None

    async def _read_frame(self, r):
        """Read until one frame is complete (used before the main loop; tick() cancels the
        task when the reply is late). Bad frames are skipped (_bad: a BAD_AUTH one raises)."""
        while True:
            fr = self._parse_one()
            if type(fr) is int:
                self._bad(fr)
                continue
            if fr is not None:
                return fr
            k = await r.readinto(self._room())
            if not k:
                raise ConnLost("closed by plug")
            self._n += k
            self._t[_LAST_RX] = time.ticks_ms()

    def _room(self):
        """Free tail of the frame buffer for the next read (grown when full)."""
        n = self._n
        if n >= len(self._buf):
            if n >= tuya.MAX_FRAME:
                raise tuya.FrameError("frame larger than %d bytes" % tuya.MAX_FRAME)
            b = bytearray(min(2 * n, tuya.MAX_FRAME))
            b[0:n] = self._buf
            self._buf = b
        return memoryview(self._buf)[n:]

    def _parse_one(self):
        fr, used = self.codec.parse(self._buf, self._n)
        if used:
            self._buf[0 : self._n - used] = memoryview(self._buf)[used : self._n]
            self._n -= used
        return fr

    def _parse(self):
        while self._n:
            fr = self._parse_one()
            if fr is None:
                break
            if type(fr) is int:
                self._bad(fr)
            else:
                self._on_frame(fr)

    def _on_frame(self, fr, dec=None):
        seq, cmd, ret, payload = fr
        obj = text = None
        if dec is not None:
            obj, text = dec
        elif payload:
            try:
                obj, text = self.codec.decode(payload)
            except tuya.FrameError:
                self._bad(BAD_AUTH)
                return
        if obj is not None:
            dps = obj.get("dps")
            if isinstance(dps, dict):
                self._merge(dps)
        # Any frame answers a heartbeat or a status query (a sign of life: push-only plugs
        # stay connected).
        self._expect = 0
        c = self._cmd
        if c is not None:
            if c[_GOT] is None and c[_WANT] and cmd in c[_WANT]:
                c[_GOT] = (cmd, ret, obj, text)
            if c[_EVT] is not None:
                c[_EVT].set()

    def _merge(self, dps):
        # DP ids are kept as small ints: an int key costs nothing on the heap, a str key ~48 B
        # (measured on the unix port: 240 B instead of 944 B for a plug's 11 DPs).
        changed = {}
        mine = self.dps
        for k in dps:
            v = dps[k]
            ik = int(k) if k.isdigit() else k
            if mine.get(ik, _MISSING) != v:
                changed[k] = v
                mine[ik] = v
        c = self._cmd
        if c is not None and c[_CONFIRM] is not None:
            conf = c[_CONFIRM]
            for k in conf:
                if k in dps:
                    conf[k] = dps[k]
        self.ts = board.unix_time()
        if changed:
            _on_state(self, changed)

    def dps_json(self):
        """The DPs with string keys, as JSON wants them (a new, short-lived dict)."""
        out = {}
        for k in self.dps:
            out[str(k)] = self.dps[k]
        return out

    async def _negotiate(self, r):
        """3.4 session key (tuya-protocol.md §2.7); raises on a wrong local key."""
        c = self.codec
        c.reset()
        self._seq += 1
        self._expect = tuya.SESS_KEY_NEG_RESP
        self._t[_EXPECT_AT] = time.ticks_ms()
        self._write(c.neg_start(self._seq, os.urandom(16)))
        while True:
            seq, cmd, ret, payload = await self._read_frame(r)
            if cmd == tuya.SESS_KEY_NEG_RESP:
                break
        self._seq += 1
        try:
            fin = c.neg_finish(self._seq, payload)
        except tuya.FrameError:
            self._strike()  # the plug's proof of the local key does not verify
            raise
        self._write(fin)
        self._t[_STAGE] = _S_KEYED

    # --- sending -----------------------------------------------------------------------------
    def _write(self, frame):
        w = self._w
        if w is None:
            raise ConnLost("not connected")
        w.write(frame)
        t = self._t
        t[_LAST_TX] = time.ticks_ms()
        if t[_STAGE] == _S_CONNECT:  # the first write went out: the plug accepted
            t[_STAGE] = _S_OPEN if self.codec.needs_session else _S_KEYED
            t[_OPENED] = t[_LAST_TX]
        # MicroPython's Stream.write sends at once when it can; whatever the socket did not
        # take stays in out_buf until drain() (CPython streams buffer internally).
        if getattr(w, "out_buf", None):
            asyncio.create_task(self._drain(w))

    async def _drain(self, w):
        try:
            await asyncio.wait_for_ms(w.drain(), _WRITE_MS)
        except Exception:  # noqa: BLE001
            self._drop("write stalled")

    def _send(self, cmd, text):
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        self._write(self.codec.encode(self._seq, cmd, text))

    async def _wait(self, c, pred, ms):
        """Wait until pred() is true; TimeoutError after `ms`, ConnLost if the link dies."""
        end = time.ticks_add(time.ticks_ms(), ms)
        c[_EVT] = evt = asyncio.Event()
        while not pred():
            if self._w is None:
                raise ConnLost("connection lost")
            rem = time.ticks_diff(end, time.ticks_ms())
            if rem <= 0:
                raise asyncio.TimeoutError()
            evt.clear()
            try:
                await asyncio.wait_for_ms(evt.wait(), rem)
            except asyncio.TimeoutError:
                pass

    async def _request(self, c, cmd, text, want):
        """Send and wait for the first frame whose command is in `want`."""
        c[_WANT] = want
        c[_GOT] = None
        self._send(cmd, text)
        await self._wait(c, lambda: c[_GOT] is not None, _reply_ms)
        c[_WANT] = None
        return c[_GOT]

    async def set_dps(self, dps):
        """Send a CONTROL and return the DP values the plug confirmed.

        One command at a time per plug: a second one waits up to _reply_ms for the first.
        Raises HubErr(offline | busy | timeout | device_error)."""
        end = time.ticks_add(time.ticks_ms(), _reply_ms)
        while self._cmd is not None:
            if time.ticks_diff(end, time.ticks_ms()) <= 0:
                raise HubErr(E_BUSY, "plug busy with another command")
            await asyncio.sleep_ms(50)
        if not self.online or self._w is None:
            raise HubErr(E_OFFLINE, "plug not connected")
        confirm = {}
        for k in dps:
            confirm[k] = _MISSING
        self._cmd = c = [None, None, confirm, None]
        co = self.codec
        def done():
            for k in confirm:
                if confirm[k] is _MISSING:
                    return False
            return True

        def applied():
            # the plug reported every value asked for: the command took effect
            for k in confirm:
                if confirm[k] != dps[k]:
                    return False
            return True

        try:
            c[_WANT] = (co.control_cmd,)
            c[_GOT] = None
            self._send(co.control_cmd, co.control_json(dps, board.unix_time()))
            # The ACK, or (ACK lost) a STATUS reporting every value asked for (§2.4), or a
            # frame that failed its CRC/HMAC/tag (_bad: most likely the ACK)
            acked = True
            try:
                await self._wait(c, lambda: c[_GOT] is not None or applied(), _reply_ms)
            except asyncio.TimeoutError:
                acked = False  # lost, or never reached the plug: the plug's state decides
            c[_WANT] = None
            got = c[_GOT]
            if got and got[1] != 0:
                msg = got[3] if isinstance(got[3], (bytes, bytearray)) else b""
                raise HubErr(E_DEVICE, "retcode %d %s" % (got[1], msg.decode()[:64]))
            if not done():
                if acked:
                    try:
                        await self._wait(c, done, _CONFIRM_MS)
                    except asyncio.TimeoutError:
                        pass
                if not done():
                    # No STATUS with every DP: ask for the full state instead (unanswered:
                    # TimeoutError, the connection is dropped). A device22 plug acknowledges
                    # its CONTROL_NEW query first: wait for STATUS.
                    await self._request(c, co.query_cmd, co.query_json(board.unix_time()),
                                        (tuya.STATUS,) if co.query_cmd == tuya.CONTROL_NEW
                                        and co.version == "3.3" else (co.query_cmd, tuya.STATUS))
            if not acked and not applied():
                # no ACK and the plug reports other values: not applied (the plug answers:
                # the connection stays)
                raise HubErr(E_TIMEOUT, "no answer from plug to the command")
            out = {}
            for k in confirm:
                if confirm[k] is not _MISSING:
                    out[k] = confirm[k]
            return out
        except asyncio.TimeoutError:
            self._drop("command timed out")
            raise HubErr(E_TIMEOUT, "no answer from plug")
        except ConnLost:
            raise HubErr(E_OFFLINE, "connection lost")
        finally:
            self._cmd = None

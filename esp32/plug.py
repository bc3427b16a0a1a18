# One Tuya plug seen from the hub: a persistent TCP connection with its own supervisor task.
#
# Per connection (design notes "Real plug behaviour"; tuya-protocol.md §2.9, §4):
#   connect -> [3.4: session-key negotiation] -> DP_QUERY -> loop {heartbeat every
#   heartbeat_s (plugs drop a client idle ~30 s), UPDATEDPS [18,19,20] every refresh_s (power
#   DPs often update only when asked)}; STATUS pushes are parsed by a reader task at any time.
# A CONTROL is answered by an empty ACK and then a STATUS carrying the new values; set_dps()
# waits for both (falls back to a DP_QUERY if the STATUS does not come).
#
# MicroPython traps handled here (micropython-esp32.md §3.2): open_connection() returns before
# the connect succeeds (errors show on first I/O, which the reader/writer catch); close() is a
# no-op, so wait_closed() is always awaited; no wait_for() around a read of a frame: the reader
# reads whatever arrives into a preallocated buffer, and a reply timeout with a partial frame
# in that buffer drops the connection instead of resynchronising.
import asyncio
import os
import time

import board
import log
import tuya
from hubproto import E_DEVICE, E_OFFLINE, E_TIMEOUT, HubErr

_BUF = const(1024)
CONNECT_MS = const(5000)
REPLY_MS = const(5000)
CONFIRM_MS = const(3000)
WRITE_MS = const(5000)
MAX_BACKOFF_S = const(60)

_MISSING = object()


class ConnLost(Exception):
    pass


class Plug:
    """State and connection of one plug.

    Public, read-only for other modules: id, name, ver, host, port, dps (dict of DP id string
    -> value), online (bool), ts (unix time of the last DP update or None)."""

    def __init__(self, cfg, on_state, heartbeat_s=10, refresh_s=30):
        self.id = cfg["id"]
        self.name = cfg["name"]
        self.ver = cfg["ver"]
        self.host = cfg["host"]
        self.port = cfg["port"]
        self.cfg = cfg  # holds the local key: never log or send this dict
        self.codec = tuya.make_codec(cfg["ver"], cfg["id"], cfg["key"].encode())
        self.dps = {}
        self.online = False
        self.ts = None
        self.connects = 0
        self.last_error = None
        self._on_state = on_state
        self._hb_ms = heartbeat_s * 1000
        self._refresh_ms = refresh_s * 1000 if refresh_s else 0
        self._buf = bytearray(_BUF)
        self._n = 0
        self._seq = 0
        self._r = None
        self._w = None
        self._dead = True
        self._lock = asyncio.Lock()
        self._evt = asyncio.Event()  # pulsed on every received frame and on connection loss
        self._want = None  # commands a pending request waits for
        self._got = None  # (cmd, retcode, obj, text) of the first matching frame
        self._confirm = None  # DP values seen while a set_dps() waits for its STATUS
        self._task = None
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self._stopping = False
        self._task = asyncio.create_task(self._supervise())

    async def stop(self):
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._close()
        self._set_online(False)

    async def _supervise(self):
        backoff = 1
        while not self._stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure means reconnect
                self.last_error = "%s %s" % (type(e).__name__, e)
                log.info("plug", "%s disconnected: %s" % (self.id, self.last_error))
            await self._close()
            was_online = self.online
            self._set_online(False)
            if was_online:
                backoff = 1
            if self._stopping:
                break
            # exponential backoff with up to 25% jitter
            await asyncio.sleep_ms(backoff * 1000 + (os.urandom(1)[0] * backoff * 250) // 256)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _close(self):
        w = self._w
        self._w = self._r = None
        self._dead = True
        self._evt.set()
        if w is not None:
            try:
                w.close()
                await w.wait_closed()
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _set_online(self, online):
        if self.online != online:
            self.online = online
            self._on_state(self, {})

    # --- one connection ----------------------------------------------------------------------
    async def _session(self):
        self._n = 0
        self._want = self._got = self._confirm = None
        r, w = await asyncio.wait_for_ms(asyncio.open_connection(self.host, self.port), CONNECT_MS)
        self._r, self._w = r, w
        self._dead = False
        self.connects += 1
        reader = asyncio.create_task(self._reader(r))
        try:
            if self.codec.needs_session:
                await self._negotiate()
            await self._query()
            self._set_online(True)
            next_refresh = time.ticks_add(time.ticks_ms(), 2000)
            while not self._stopping:
                await self._idle(self._hb_ms)
                async with self._lock:
                    await self._request(tuya.HEART_BEAT, self.codec.heartbeat_json(),
                                        (tuya.HEART_BEAT,))
                if self._refresh_ms and time.ticks_diff(time.ticks_ms(), next_refresh) >= 0:
                    next_refresh = time.ticks_add(time.ticks_ms(), self._refresh_ms)
                    # The reply is empty; new values come as STATUS pushes (§2.9).
                    await self._send(tuya.UPDATEDPS, self.codec.refresh_json())
        finally:
            reader.cancel()

    async def _reader(self, r):
        mv = memoryview(self._buf)
        try:
            while True:
                if self._n >= _BUF:
                    raise tuya.FrameError("frame larger than buffer")
                k = await r.readinto(mv[self._n :])
                if not k:
                    raise ConnLost("closed by plug")
                self._n += k
                while self._n:
                    fr, used = self.codec.parse(self._buf, self._n)
                    if used:
                        self._buf[0 : self._n - used] = mv[used : self._n]
                        self._n -= used
                    if fr is None:
                        break
                    self._on_frame(fr)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - EOF, reset, bad frame: all end the connection
            self.last_error = "%s %s" % (type(e).__name__, e)
            log.info("plug", "%s read ended: %s" % (self.id, self.last_error))
            self._dead = True
            self._evt.set()

    def _on_frame(self, fr):
        seq, cmd, ret, payload = fr
        obj = text = None
        if cmd == tuya.SESS_KEY_NEG_RESP:
            text = payload  # raw, decrypted by the codec's negotiation step
        elif payload:
            try:
                obj, text = self.codec.decode(payload)
            except tuya.FrameError as e:
                log.warn("plug", "%s undecodable cmd 0x%02x: %s" % (self.id, cmd, e))
        if obj is not None:
            dps = obj.get("dps")
            if isinstance(dps, dict):
                self._merge(dps)
        if self._want is not None and self._got is None and cmd in self._want:
            self._got = (cmd, ret, obj, text)
        self._evt.set()

    def _merge(self, dps):
        changed = {}
        for k in dps:
            v = dps[k]
            if self.dps.get(k, _MISSING) != v:
                changed[k] = v
                self.dps[k] = v
        if self._confirm is not None:
            for k in self._confirm:
                if k in dps:
                    self._confirm[k] = dps[k]
        self.ts = board.unix_time()
        if changed:
            self._on_state(self, changed)

    # --- requests ----------------------------------------------------------------------------
    async def _send(self, cmd, text):
        w = self._w
        if w is None or self._dead:
            raise ConnLost("not connected")
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        w.write(self.codec.encode(self._seq, cmd, text))
        await asyncio.wait_for_ms(w.drain(), WRITE_MS)

    async def _wait(self, pred, ms):
        """Wait until pred() is true; TimeoutError after `ms`, ConnLost if the link dies."""
        end = time.ticks_add(time.ticks_ms(), ms)
        while not pred():
            if self._dead:
                raise ConnLost(self.last_error or "connection lost")
            rem = time.ticks_diff(end, time.ticks_ms())
            if rem <= 0:
                if self._n:
                    # A reply stalled mid-frame: the stream cannot be trusted any more.
                    self._dead = True
                    await self._close()
                raise asyncio.TimeoutError()
            self._evt.clear()
            try:
                await asyncio.wait_for_ms(self._evt.wait(), rem)
            except asyncio.TimeoutError:
                pass

    async def _request(self, cmd, text, want, ms=REPLY_MS):
        """Send and wait for the first frame whose command is in `want` (caller holds the lock)."""
        self._want = want
        self._got = None
        try:
            await self._send(cmd, text)
            await self._wait(lambda: self._got is not None, ms)
            return self._got
        finally:
            self._want = None

    async def _idle(self, ms):
        end = time.ticks_add(time.ticks_ms(), ms)
        while True:
            if self._dead:
                raise ConnLost(self.last_error or "connection lost")
            rem = time.ticks_diff(end, time.ticks_ms())
            if rem <= 0:
                return
            self._evt.clear()
            try:
                await asyncio.wait_for_ms(self._evt.wait(), rem)
            except asyncio.TimeoutError:
                pass

    async def _negotiate(self):
        """3.4 session key (tuya-protocol.md §2.7); raises on a wrong local key."""
        self.codec.reset()
        async with self._lock:
            self._want = (tuya.SESS_KEY_NEG_RESP,)
            self._got = None
            try:
                self._seq += 1
                self._w.write(self.codec.neg_start(self._seq, os.urandom(16)))
                await asyncio.wait_for_ms(self._w.drain(), WRITE_MS)
                await self._wait(lambda: self._got is not None, REPLY_MS)
                self._seq += 1
                fin = self.codec.neg_finish(self._seq, self._got[3])
                self._w.write(fin)
                await asyncio.wait_for_ms(self._w.drain(), WRITE_MS)
            finally:
                self._want = None

    async def _query(self):
        c = self.codec
        async with self._lock:
            got = await self._request(c.query_cmd, c.query_json(board.unix_time()),
                                      (c.query_cmd, tuya.STATUS))
        if got[1] != 0:
            log.warn("plug", "%s query refused: retcode %d" % (self.id, got[1]))

    async def set_dps(self, dps):
        """Send a CONTROL and return the DP values the plug confirmed.

        Raises HubErr(offline | timeout | device_error)."""
        if not self.online or self._dead:
            raise HubErr(E_OFFLINE, "plug not connected")
        c = self.codec
        async with self._lock:
            if self._dead:
                raise HubErr(E_OFFLINE, "plug not connected")
            confirm = {}
            for k in dps:
                confirm[k] = _MISSING
            self._confirm = confirm
            try:
                try:
                    got = await self._request(c.control_cmd,
                                              c.control_json(dps, board.unix_time()),
                                              (c.control_cmd,))
                except asyncio.TimeoutError:
                    raise HubErr(E_TIMEOUT, "no ack from plug")
                except ConnLost:
                    raise HubErr(E_OFFLINE, "connection lost")
                if got[1] != 0:
                    msg = got[3] if isinstance(got[3], (bytes, bytearray)) else b""
                    raise HubErr(E_DEVICE, "retcode %d %s" % (got[1], msg.decode()[:64]))

                def done():
                    for k in confirm:
                        if confirm[k] is _MISSING:
                            return False
                    return True

                try:
                    await self._wait(done, CONFIRM_MS)
                except asyncio.TimeoutError:
                    # No STATUS: ask for the full state instead.
                    try:
                        await self._request(c.query_cmd, c.query_json(board.unix_time()),
                                            (c.query_cmd,))
                    except asyncio.TimeoutError:
                        raise HubErr(E_TIMEOUT, "no status from plug")
                    except ConnLost:
                        raise HubErr(E_OFFLINE, "connection lost")
                except ConnLost:
                    raise HubErr(E_OFFLINE, "connection lost")
                out = {}
                for k in confirm:
                    if confirm[k] is not _MISSING:
                        out[k] = confirm[k]
                return out
            finally:
                self._confirm = None

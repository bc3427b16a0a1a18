# Hub TCP server for Home Assistant (docs/hub-protocol.md): accepts clients, runs the
# handshake with a growing delay after failures, then reads records and dispatches requests.
# One reader (the connection handler) and one writer task per client; messages are sealed
# when queued, so sequence numbers follow the order on the wire.
import asyncio
import gc
import struct
import sys
import time

import board
import log
import hubproto
from hubproto import E_BAD_REQUEST, E_BUSY, E_INTERNAL, E_UNKNOWN_TYPE, HubErr, ProtoError

HANDSHAKE_MS = const(5000)
IDLE_MS = const(90000)  # a client that sends nothing (not even a ping) for 90 s is dropped
BODY_MS = const(5000)
MAX_OUT = const(16384)  # queued bytes per client before it is considered stuck
# Requests that wait on a plug (set, remove) run as tasks; at most MAX_ACTIVE at a time for
# the whole hub (each costs ~2-3 KB of heap while it waits). When the limit is reached the
# client's records are simply not read until a slot frees (TCP backpressure), so nothing is
# refused and the heap stays bounded.
MAX_ACTIVE = const(2)
# Failed handshakes slow down the following ones (docs/hub-protocol.md §4): 0.25 s after the
# first failure, doubling per failure up to 3 s, which stays below HA's 5 s connect timeout so
# the real client always gets through; failures older than a minute are forgotten.
PENALTY_STEP_MS = const(250)
MAX_PENALTY_MS = const(3000)
FAIL_MEMORY_MS = const(60000)


class Client:
    def __init__(self, server, r, w, peer):
        self.server = server
        self.r = r
        self.w = w
        self.peer = peer
        self.ch = None
        self.out = []
        self.out_bytes = 0
        self.ev = asyncio.Event()
        self.task = None
        self.writer_task = None
        self.closed = False

    def send(self, obj):
        if self.closed or self.ch is None:
            return
        try:
            rec = self.ch.seal(obj)
        except ValueError:
            log.warn("srv", "%s message too large, dropped" % self.peer)
            return
        except MemoryError:
            # A lost push would leave HA out of date: drop the client instead; it reconnects
            # and receives a fresh inventory.
            log.error("srv", "%s out of memory sealing a message; disconnecting" % self.peer)
            self.kill()
            return
        self.out_bytes += len(rec)
        if self.out_bytes > MAX_OUT:
            log.warn("srv", "%s not reading, disconnecting" % self.peer)
            self.kill()
            return
        self.out.append(rec)
        self.ev.set()

    async def writer(self):
        try:
            while not self.closed:
                await self.ev.wait()
                self.ev.clear()
                while self.out:
                    rec = self.out.pop(0)
                    self.out_bytes -= len(rec)
                    self.w.write(rec)
                    await asyncio.wait_for_ms(self.w.drain(), BODY_MS)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.info("srv", "%s write failed: %s" % (self.peer, type(e).__name__))
            self.kill()

    def kill(self):
        if not self.closed:
            self.closed = True
            # MicroPython cannot cancel the running task; the handler then sees `closed`
            # when the current dispatch returns.
            if self.task is not None and self.task is not asyncio.current_task():
                self.task.cancel()


class Server:
    def __init__(self, hub, secret, host="0.0.0.0", port=6670, max_clients=2):
        self.hub = hub
        hub.server = self
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.clients = []  # authenticated clients
        self._conns = 0  # open connections, authenticated or not
        self._fails = 0
        self._fail_at = 0
        self._active = 0
        self._srv = None

    def _penalty(self):
        """Delay (ms) before the next handshake, from the recent failed ones."""
        if self._fails and time.ticks_diff(time.ticks_ms(), self._fail_at) > FAIL_MEMORY_MS:
            self._fails = 0
        if not self._fails:
            return 0
        return min(PENALTY_STEP_MS << min(self._fails - 1, 4), MAX_PENALTY_MS)

    def client_count(self):
        return len(self.clients)

    async def start(self):
        self._srv = await asyncio.start_server(self._handle, self.host, self.port, backlog=2)
        log.info("srv", "listening on %s:%d" % (self.host, self.port))

    def broadcast(self, obj):
        for c in self.clients:
            c.send(obj)

    async def _read_record(self, r, ms, limit):
        hdr = await asyncio.wait_for_ms(r.readexactly(2), ms)
        n = struct.unpack(">H", hdr)[0]
        if n > limit:
            # Never read an oversized body: refuse and close (§3).
            raise ProtoError("record of %d bytes exceeds %d" % (n, limit))
        return await asyncio.wait_for_ms(r.readexactly(n), BODY_MS)

    async def _handshake(self, r, w):
        import hubauth  # needed once per connection: loaded here, dropped in _handle

        hs = hubauth.ServerHandshake(self._secret, self.hub.hub_id)
        hubauth = None
        body = await self._read_record(r, HANDSHAKE_MS, 64)
        reply = hs.server_hello(body)
        w.write(hubproto.record(reply))
        await asyncio.wait_for_ms(w.drain(), HANDSHAKE_MS)
        if hs.rejected:
            raise ProtoError("unsupported client version %d" % body[4])
        body = await self._read_record(r, HANDSHAKE_MS, 64)
        return hs.finish(body)

    async def _handle(self, r, w):
        peer = _peer(w)
        board.nodelay(w)
        self._conns += 1
        c = Client(self, r, w, peer)
        c.task = asyncio.current_task()
        try:
            if self._conns > self.max_clients:
                # Each connection is an lwIP socket (10 in all on a stock ESP32).
                log.warn("srv", "%s refused: too many connections" % peer)
                return
            delay = self._penalty()
            if delay:
                await asyncio.sleep_ms(delay)
            try:
                c.ch = await self._handshake(r, w)
            except (ProtoError, asyncio.TimeoutError, EOFError, OSError) as e:
                self._fails += 1
                self._fail_at = time.ticks_ms()
                sys.modules.pop("hubauth", None)
                log.warn("srv", "%s handshake failed (%s: %s), failures=%d, next delay %d ms" % (
                    peer, type(e).__name__, e, self._fails, self._penalty()))
                return
            self._fails = 0
            sys.modules.pop("hubauth", None)
            if len(self.clients) >= self.max_clients:
                c.send({"t": "error", "err": E_BUSY, "msg": "too many clients"})
                w.write(c.out.pop())
                await asyncio.wait_for_ms(w.drain(), BODY_MS)
                log.warn("srv", "%s refused: %d clients connected" % (peer, self.max_clients))
                return
            log.info("srv", "%s authenticated" % peer)
            self.clients.append(c)
            c.writer_task = asyncio.create_task(c.writer())
            hello = self.hub.hub_info()
            hello["t"] = "hello"
            await self.hub.send_inventory(c, hello)
            hello = None
            while not c.closed:
                while self._active >= MAX_ACTIVE:
                    await asyncio.sleep_ms(20)
                body = await self._read_record(r, IDLE_MS, hubproto.MAX_RECORD)
                msg = c.ch.open(body)
                body = None
                if msg.get("t") == "inventory" and isinstance(msg.get("rid"), int):
                    await self.hub.send_inventory(c, _ok(msg["rid"], self.hub.hub_info()))
                else:
                    self._dispatch(c, msg)
                msg = None
        except asyncio.CancelledError:
            pass
        except ProtoError as e:
            log.warn("srv", "%s protocol error: %s; closing" % (peer, e))
        except (EOFError, OSError, asyncio.TimeoutError) as e:
            log.info("srv", "%s disconnected (%s)" % (peer, type(e).__name__))
        except Exception as e:  # noqa: BLE001 - a bug must not kill the server
            log.error("srv", "%s dropped after internal error %s: %s" % (peer, type(e).__name__,
                                                                         e))
        finally:
            c.closed = True
            self._conns -= 1
            if c in self.clients:
                self.clients.remove(c)
            if c.writer_task is not None:
                c.writer_task.cancel()
            try:
                w.close()
                await w.wait_closed()
            except Exception:  # noqa: BLE001
                pass

    # --- requests --------------------------------------------------------------------------
    def _dispatch(self, c, msg):
        t = msg.get("t")
        rid = msg.get("rid")
        if not isinstance(rid, int):
            c.send({"t": "error", "err": E_BAD_REQUEST, "msg": "missing rid"})
            return
        try:
            if t == "ping":
                c.send(_ok(rid, {"time": board.unix_time()}))
            elif t == "health":
                c.send(_ok(rid, self.hub.health()))
            elif t == "add":
                c.send(_ok(rid, self.hub.add_plug(msg.get("plug"))))
            elif t == "remove":
                self._spawn(c, rid, self.hub.remove_plug(msg.get("id")))
            elif t == "set":
                self._spawn(c, rid, self.hub.set_dps(msg.get("id"), msg.get("dps")))
            else:
                raise HubErr(E_UNKNOWN_TYPE, "unknown message type")
        except HubErr as e:
            c.send(_err(rid, e.code, e.msg))

    def _spawn(self, c, rid, coro):
        self._active += 1
        asyncio.create_task(self._run(c, rid, coro))

    async def _run(self, c, rid, coro):
        try:
            c.send(_ok(rid, await coro))
        except HubErr as e:
            c.send(_err(rid, e.code, e.msg))
        except Exception as e:  # noqa: BLE001 - MemoryError included: report, keep serving
            coro = None
            gc.collect()
            log.error("srv", "request failed: %s %s" % (type(e).__name__, e))
            c.send(_err(rid, E_INTERNAL, type(e).__name__))
        finally:
            self._active -= 1


def _peer(w):
    """"ip:port" of the client: a tuple on ESP32, a raw sockaddr_in on the unix port."""
    try:
        a = w.get_extra_info("peername")
        if isinstance(a, tuple):
            return "%s:%d" % a[:2]
        if len(a) >= 8 and a[0] == 2:
            return "%d.%d.%d.%d:%d" % (a[4], a[5], a[6], a[7], (a[2] << 8) | a[3])
    except Exception:  # noqa: BLE001
        pass
    return "?"


def _ok(rid, data):
    return {"t": "result", "rid": rid, "ok": True, "data": data}


def _err(rid, code, msg):
    return {"t": "result", "rid": rid, "ok": False, "err": code, "msg": msg}

# Hub TCP server for Home Assistant (docs/hub-protocol.md): accepts clients, runs the
# handshake with a growing per-source delay after failures, then reads records and dispatches
# requests. Strangers cannot lock HA out: a connection still in its handshake gives up its
# slot to a newcomer from a source with no more failures (§2, §4), the handshake has one short
# deadline, and their log lines are rate-limited (hubgate.py). The accept task survives its own
# failures (e.g. MemoryError); alive() and hub.server_alive_ms tell the watchdog if it ever
# ends, or if connection after connection is lost for lack of memory before HA is served (a
# hub that runs but can no longer let HA in is reset, not left a zombie). One reader (the connection handler) and one writer task per client; messages are
# sealed when queued, so sequence numbers follow the order on the wire.
import asyncio
import gc
import time

import board
import log
import hubproto
from hubproto import E_BAD_REQUEST, E_INTERNAL, E_UNKNOWN_TYPE, HubErr, ProtoError

_IDLE_MS = const(90000)  # a client that sends nothing (not even a ping) for 90 s is dropped
_BODY_MS = const(5000)
_MAX_OUT = const(16384)  # queued bytes per client before it is considered stuck
# Requests that wait on a plug (set, remove) run as tasks; at most _MAX_ACTIVE at a time for
# the whole hub (each costs ~2-3 KB of heap while it waits). When the limit is reached, the
# client that sent one more waits for a slot before its next record is read (TCP
# backpressure), so nothing is refused and the heap stays bounded; the other clients' pings and
# other requests are still answered (an idle HA connection is not taken for a dead hub).
_MAX_ACTIVE = const(2)
_EAGAIN = const(11)
# Connections lost to MemoryError (accept, handshake, hello) one after the other, at least
# _STARVED_MAX of them over at least _STARVED_MS, and none served: the heap can no longer let
# HA in, so alive() turns False and the watchdog resets the board. A short squeeze of the heap
# (HA retries every 0.25-2 s) stays below it and is ridden out.
_STARVED_MAX = const(8)
_STARVED_MS = const(20000)
_TRIPPED = const(0x10000)


class Client:
    def __init__(self, server, r, w, peer):
        self.server = server
        self.r = r
        self.w = w
        self.peer = peer
        self.ip = peer.rsplit(":", 1)[0]  # the source address, key of the failure table
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
            self.server.starve()
            log.error("srv", "%s out of memory sealing a message; disconnecting" % self.peer)
            self.kill()
            return
        self.out_bytes += len(rec)
        if self.out_bytes > _MAX_OUT:
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
                    await asyncio.wait_for_ms(self.w.drain(), _BODY_MS)
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
    """The listening socket and its accept task, the authenticated clients and their requests
    (the connection rules of docs/hub-protocol.md §2 and §4 are in hubgate.py).

    `alive()` tells the watchdog (app.py) whether connections are still accepted."""

    def __init__(self, hub, secret, host="0.0.0.0", port=6670, max_clients=2):
        self.hub = hub
        hub.server = self
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.clients = []  # authenticated clients
        # State of the connection rules (hubgate.py): connections still in the handshake
        # (oldest first), failures per source address ([count, ticks_ms of the last one]),
        # and the rate limit of strangers' log lines.
        self.pending = []
        self.bad = {}
        self.bad_at = 0
        self._active = 0
        self._sock = None
        self._task = None  # the accept task
        self.restarts = 0  # failures survived by the accept task since boot
        self.starved = 0  # connections lost to MemoryError since one was last served
        self.starved_ms = 0  # ticks_ms of the first of them
        self.log_at = time.ticks_ms()
        self.log_n = 0
        self.skipped = 0
        self.time_warned = -1  # board.time_set_s of the NTP sync whose gap to HA was logged
        # Test hook (unix-port tests only): the next N readiness events of the listening socket
        # raise MemoryError inside the accept task, as a failing allocation there would.
        self._faults = hub.cfg.get("test_accept_faults", 0)
        # and the next N authenticated connections fail for lack of memory before their hello
        self._hello_faults = hub.cfg.get("test_hello_faults", 0)

    def client_count(self):
        return len(self.clients)

    def alive(self):
        """True while the accept task runs and connections are not lost one after the other
        for lack of memory (_STARVED_MAX over _STARVED_MS); for the watchdog in app.py: stop
        feeding it when this turns False, so the board resets instead of staying deaf."""
        n = self.starved
        if n >= _STARVED_MAX and time.ticks_diff(time.ticks_ms(), self.starved_ms) >= _STARVED_MS:
            if n < _TRIPPED:
                self.starved = _TRIPPED
                try:
                    log.error("srv", "%d connections in a row lost for lack of memory; the "
                              "watchdog will restart the hub" % n)
                except Exception:  # noqa: BLE001 - MemoryError
                    pass
            return False
        return self._task is not None and not self._task.done()

    def starve(self):
        """Count a connection lost to MemoryError before it was served; never raises."""
        if not self.starved:
            self.starved_ms = time.ticks_ms()
        self.starved += 1

    async def start(self):
        import socket

        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # bind is an IPv4 literal (config.json): getaddrinfo does no DNS lookup for it.
        s.bind(socket.getaddrinfo(self.host, self.port)[0][-1])
        s.listen(2)  # pending connections hold lwIP netconns too (§9): keep the backlog short
        self._sock = s
        self._task = asyncio.create_task(self._accept())
        if self.hub.cfg.get("ota"):  # main.py's firmware loader state (otaboot.py)
            asyncio.create_task(self._confirm_boot())
        log.info("srv", "listening on %s:%d" % (self.host, self.port))

    def broadcast(self, obj):
        for c in self.clients:
            c.send(obj)

    # --- accepting -------------------------------------------------------------------------
    async def _accept(self):
        """Accept connections and start a handler task for each. A failure (MemoryError above
        all) is logged and accepting goes on. Should this task end anyway, alive() turns False
        and hub.server_alive_ms is set far in the past, so the watchdog (app.py) stops being
        fed and the board resets instead of staying deaf."""
        s = self._sock
        try:
            while True:
                try:
                    yield asyncio.core._io_queue.queue_read(s)
                    if self._faults:
                        self._faults -= 1
                        raise MemoryError("injected accept failure")
                    for _ in range(4):  # drain a few queued connections per wake-up
                        try:
                            s2, addr = s.accept()
                        except OSError as e:
                            if e.errno != _EAGAIN:  # e.g. no socket left: do not spin on it
                                await asyncio.sleep_ms(100)
                            break
                        try:
                            s2.setblocking(False)
                            st = asyncio.StreamReader(s2, {"peername": addr})
                            asyncio.create_task(self._handle(st, st))
                        except BaseException:
                            s2.close()
                            raise
                        s2 = st = None
                except Exception as e:  # noqa: BLE001 - MemoryError above all: accept again
                    s2 = st = None
                    self.restarts += 1
                    self.starve()
                    gc.collect()
                    log.error("srv", "accept failed (%s); accepting again" % type(e).__name__)
                    await asyncio.sleep_ms(100)
        finally:
            self.hub.server_alive_ms = time.ticks_add(time.ticks_ms(), -(1 << 28))

    # --- one connection --------------------------------------------------------------------
    async def _handle(self, r, w):
        c = None
        try:
            c = Client(self, r, w, _peer(w))
            c.task = asyncio.current_task()
            peer = c.peer
            # Admission (hubgate.py) and handshake (hubauth.py) are loaded one after the other
            # and dropped after use, so only one of them is in the heap at a time.
            try:
                import hubgate

                delay = hubgate.admit(self, c)
            finally:
                hubgate = None
                board.unload("hubgate")
            if delay < 0:
                return  # refused: closed at once
            err = None
            try:
                if delay:
                    await asyncio.sleep_ms(delay)
                try:
                    import hubauth

                    c.ch = await hubauth.handshake(self, r, w)
                finally:
                    hubauth = None
                    board.unload("hubauth")
            except (ProtoError, asyncio.TimeoutError, EOFError, OSError) as e:
                err = e
            finally:
                if c in self.pending:
                    self.pending.remove(c)
            if err is not None:
                try:
                    import hubgate

                    hubgate.failed(self, c, err)
                finally:
                    hubgate = None
                    board.unload("hubgate")
                return
            self.bad.pop(c.ip, None)  # a successful handshake clears its source's failures
            nd = board.nodelay(w)
            log.log(log.DEBUG if nd else log.WARN, "srv", "%s nodelay %s" % (peer, nd))
            # authenticated clients + pending connections never exceed max_clients (admission
            # in hubgate.py), so there is always room here
            log.info("srv", "%s authenticated" % peer)
            self.clients.append(c)
            c.writer_task = asyncio.create_task(c.writer())
            if self._hello_faults:
                self._hello_faults -= 1
                raise MemoryError("injected hello failure")
            hello = self.hub.hub_info()
            hello["t"] = "hello"
            await self.hub.send_inventory(c, hello)
            hello = None
            if not c.closed:
                self.starved = 0  # HA got in: the heap still serves
            while not c.closed:
                # One secure record (§3, §5). Its size is checked from the header alone: 64
                # to 4096 bytes, 48 + a multiple of 16; anything else is refused unread.
                n = await asyncio.wait_for_ms(r.readexactly(2), _IDLE_MS)
                n = (n[0] << 8) | n[1]
                if n > hubproto.MAX_RECORD:
                    raise ProtoError("record of %d bytes exceeds %d" % (n, hubproto.MAX_RECORD))
                if n < hubproto.MIN_SECURE or (n - 48) & 15:
                    raise ProtoError("record of %d bytes refused: not a valid size" % n)
                body = await asyncio.wait_for_ms(r.readexactly(n), _BODY_MS)
                msg = c.ch.open(body)
                body = None
                if msg.get("t") in ("set", "remove"):
                    # a request that waits on a plug needs a slot: until one frees, this
                    # client's next records stay unread; the others' pings are still answered
                    while self._active >= _MAX_ACTIVE:
                        await asyncio.sleep_ms(20)
                if msg.get("t") == "inventory" and isinstance(msg.get("rid"), int):
                    await self.hub.send_inventory(c, _ok(msg["rid"], self.hub.hub_info()))
                else:
                    self._dispatch(c, msg)
                msg = None
        except asyncio.CancelledError:
            pass
        except ProtoError as e:
            log.warn("srv", "%s protocol error: %s; closing" % (c.peer, e))
        except (EOFError, OSError, asyncio.TimeoutError) as e:
            log.info("srv", "%s disconnected (%s)" % (c.peer, type(e).__name__))
        except Exception as e:  # noqa: BLE001 - a bug or MemoryError must not kill the server
            if isinstance(e, MemoryError):
                self.starve()
            try:
                log.error("srv", "%s dropped after internal error %s: %s" % (
                    c.peer if c else "?", type(e).__name__, e))
            except Exception:  # noqa: BLE001
                pass
        finally:
            if c is not None:
                c.closed = True
                if c in self.pending:
                    self.pending.remove(c)
                if c in self.clients:
                    self.clients.remove(c)
                self.end_update(c)
                if c.writer_task is not None:
                    c.writer_task.cancel()
            try:
                w.close()
                await w.wait_closed()
            except Exception:  # noqa: BLE001
                pass

    def end_update(self, c=None):
        """End the firmware update (ota.py's state, self.ota) of client `c`, or whichever when
        `c` is None: the state is dropped and its open file closed (the state's last member);
        returns the state, None when there was no such update. Here rather than in ota.py: it
        runs when the updating client is dropped, often for lack of memory, so it loads nothing
        and never raises; ota.abort calls it too."""
        u = getattr(self, "ota", None)
        if u is None or c is not None and u[0] is not c:
            return None
        self.ota = None
        try:
            if u[-1] is not None:
                u[-1].close()
            log.info("ota", "update to %s abandoned" % u[3])
        except Exception:  # noqa: BLE001 - OSError, MemoryError
            pass
        return u

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
            elif t == "set":
                self._spawn(c, rid, self.hub.set_dps(msg.get("id"), msg.get("dps")))
            elif t == "time":
                try:
                    import hubtime  # rare requests: their code is loaded for this one and dropped

                    c.send(_ok(rid, hubtime.from_ha(self, msg.get("time"))))
                finally:
                    hubtime = None
                    board.unload("hubtime")
            elif t == "add" or t == "remove" or t == "host" or t == "profile":
                try:
                    import plugadmin

                    if t == "add":
                        c.send(_ok(rid, plugadmin.add(self.hub, msg.get("plug"))))
                    elif t == "remove":
                        self._spawn(c, rid, plugadmin.remove(self.hub, msg.get("id")))
                    elif t == "profile":
                        c.send(_ok(rid, plugadmin.profile(self.hub, msg.get("id"),
                                                          msg.get("refresh"), msg.get("dps"))))
                    else:
                        c.send(_ok(rid, plugadmin.move(self.hub, msg.get("id"), msg.get("host"))))
                finally:
                    plugadmin = None
                    board.unload("plugadmin")
            elif t == "update_chunk":  # firmware update (ota.py): its code loaded per request
                try:
                    import otachunk

                    c.send(_ok(rid, otachunk.chunk(self, c, msg)))
                finally:
                    otachunk = None
                    board.unload("otachunk")
            elif isinstance(t, str) and t.startswith("update_"):
                try:
                    import ota

                    c.send(_ok(rid, ota.request(self, c, t, msg)))
                finally:
                    ota = None
                    board.unload("ota")
            else:
                raise HubErr(E_UNKNOWN_TYPE, "unknown message type")
        except HubErr as e:
            c.send(_err(rid, e.code, e.msg))

    async def _confirm_boot(self):
        """Once the hub has run `ota_confirm_s` (30 s), with an authenticated client for a new
        firmware on trial, confirm this boot to the firmware loader (otaboot.finish); a trial
        still unconfirmed after `ota_trial_s` (600 s) restarts instead. Waits here rather than
        in otaboot.py, so the loader's code is loaded only for the end."""
        cfg = self.hub.cfg
        t0 = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(1000)
            up = time.ticks_diff(time.ticks_ms(), t0) // 1000
            ok = up >= cfg.get("ota_confirm_s", 30) and (self.clients or not cfg["ota"][1])
            if ok or cfg["ota"][1] and up >= cfg.get("ota_trial_s", 600):
                break
        try:
            import otaboot

            otaboot.finish(cfg, ok)
        finally:
            board.unload("otaboot")

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

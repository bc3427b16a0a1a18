# The hub's state: the plug registry (add/remove/host requests in plugadmin.py), inventory and
# health snapshots, the fan-out of plug state changes to connected HA clients, the periodic
# tick that drives every plug, its supervision and the watchdog, and the event loop (run).
import asyncio
import gc
import time

import board
import log
import plug
from hubproto import E_BAD_REQUEST, E_NO_TIME, E_UNKNOWN_DEVICE, HubErr

FW_VERSION = "0.2.1"

_TICK_MS = const(500)
_SUPERVISE_MS = const(1000)
# The watchdog is fed only while the tick has completed a round within _TICK_STALE_MS and the
# server still accepts connections (Hub.server_ok).
_TICK_STALE_MS = const(10000)


class Hub:
    def __init__(self, cfg):
        self.cfg = cfg
        self.hub_id = cfg.get("hub_id") or board.unique_id()
        self.max_plugs = cfg["max_plugs"]
        self.plugs = {}  # device id -> Plug
        self.server = None  # set by server.Server; receives broadcasts
        self.tick_ok_ms = time.ticks_ms()  # end of the last complete tick round
        self.kept = []  # [factory, task] of the long-lived tasks the supervisor restarts
        plug.configure(cfg["heartbeat_s"], cfg["refresh_s"], self._on_state,
                       cfg.get("plug_connect_ms", 5000), cfg.get("plug_reply_ms", 5000),
                       cfg.get("plug_backoff_max_s", 60))
        if cfg.get("test_faults"):
            import testhooks

            plug.faults = testhooks.Faults(cfg["test_faults"])

    def start(self, records):
        """Create the plugs of the stored list; housekeeping() connects them."""
        for rec in records:
            if len(self.plugs) >= self.max_plugs:
                log.warn("hub", "plug %s not started: limit of %d plugs" % (rec["id"],
                                                                           self.max_plugs))
                continue
            self._start_plug(rec)

    def _start_plug(self, rec):
        p = plug.Plug(rec)
        self.plugs[p.id] = p
        log.info("hub", "plug %s (%s, %s:%d) added" % (p.id, p.ver, p.host, p.port))

    # --- HA requests ---------------------------------------------------------------------------
    # add, remove and host are in plugadmin.py, loaded per request (server.py).
    async def set_dps(self, dev_id, dps):
        p = self.plugs.get(dev_id)
        if p is None:
            raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
        if not isinstance(dps, dict) or not dps:
            raise HubErr(E_BAD_REQUEST, "dps must be a non-empty object")
        for k in dps:
            v = dps[k]
            if not k.isdigit() or not (v is None or isinstance(v, (bool, int, str))):
                raise HubErr(E_BAD_REQUEST, "bad dp %s" % k)
        if board.time_source is None:
            # Plugs ignore commands whose "t" is far from real time (design notes); until NTP
            # or Home Assistant's `time` sets it, the ESP32 clock reads 2000-01-01.
            raise HubErr(E_NO_TIME, "hub clock not set (no time from NTP or Home Assistant)")
        return {"id": dev_id, "dps": await p.set_dps(dps)}

    # --- snapshots -------------------------------------------------------------------------
    def hub_info(self):
        """Hub identity for hello/inventory (the plugs follow as separate "plug" messages, so
        no message grows with the number of plugs; docs/hub-protocol.md §7.1)."""
        return {"hub_id": self.hub_id, "fw": FW_VERSION, "proto": 1, "time": board.unix_time(),
                "time_source": board.time_source, "max_plugs": self.max_plugs,
                "plugs": len(self.plugs)}

    @staticmethod
    def plug_msg(p):
        return {"t": "plug", "id": p.id, "name": p.name, "ver": p.ver, "host": p.host,
                "port": p.port, "online": p.online, "dps": p.dps_json(), "ts": p.ts,
                "refresh": list(p.refresh), "fault": p.fault}

    async def send_inventory(self, client, final):
        """One "plug" message per plug, then `final` (hello or the inventory result). Each
        message is handed to the writer only once the previous one is on the wire, so only
        one is in memory at a time."""
        for p in list(self.plugs.values()):
            client.send(self.plug_msg(p))
            while client.out and not client.closed:
                await asyncio.sleep_ms(2)
        client.send(final)

    def health(self):
        free, alloc = board.heap()
        online = 0
        for p in self.plugs.values():
            if p.online:
                online += 1
        h = {"heap_free": free, "heap_alloc": alloc, "uptime_s": board.uptime_s(), "rssi": board.rssi(), "plugs": len(self.plugs),
                "plugs_online": online,
                "clients": self.server.client_count() if self.server else 0,
                "time": board.unix_time(), "time_synced": board.time_source is not None,
                "time_source": board.time_source}
        # on trial: a firmware installed by an update that is not confirmed yet (otaboot.py);
        # update_begin is refused with busy meanwhile (docs/hub-protocol.md §7.3.1)
        o = self.cfg.get("ota")
        h["trial"] = bool(o and o[1])
        # HUB-ADDITIONS item 3: reset cause and the two heaps, the IDF heap (Wi-Fi, lwIP, mbedTLS)
        # and the MicroPython heap, as free bytes and largest free block; None where the port
        # cannot tell (the unix port: all but mp_heap_free, without loading diag.py at all).
        # diag.py is loaded for this and dropped again.
        h["reset_cause"] = h["idf_heap_free"] = h["idf_heap_largest"] = None
        h["mp_heap_largest"] = None
        if board.is_hardware():
            try:
                import diag

                h["reset_cause"] = diag.reset_cause()
                h["idf_heap_free"], h["idf_heap_largest"] = diag.idf_heap()
                h["mp_heap_largest"] = diag.mp_heap_largest()
            finally:
                diag = None
                board.unload("diag")
        h["mp_heap_free"] = free
        return h

    def _broadcast(self, msg):
        if self.server is not None and self.server.clients:
            self.server.broadcast(msg)

    def _on_state(self, p, changed):
        self._broadcast({"t": "state", "id": p.id, "online": p.online, "dps": changed,
                         "ts": p.ts or board.unix_time(), "fault": p.fault})

    def keep(self, factory):
        """Run `factory()` (a coroutine) as a supervised task: housekeeping() starts it again
        within a second whenever it ends (exception, cancellation, or return)."""
        self.kept.append([factory, None])

    def server_ok(self):
        """Whether the HA server still accepts connections: server.alive() where the server
        provides it, else its asyncio.start_server accept task has not ended."""
        srv = self.server
        if srv is None:
            return False
        f = getattr(srv, "alive", None)
        if f is not None:
            return f()
        t = getattr(getattr(srv, "_srv", None), "task", None)
        return t is None or not t.done()

    async def housekeeping(self):
        """The supervisor (runs in the main task, for ever): keeps the tick task and every
        keep() task running, and feeds the watchdog only while the tick completed a round
        within _TICK_STALE_MS and server_ok(), so a wedged or deaf hub resets instead of staying
        a zombie. The unix port has no watchdog: there the same condition, unmet for
        `watchdog_ms`, ends the process (RuntimeError to main.py, exit status 1), as the reset
        would on a board."""
        self.keep(self._ticker)
        wdt_ms = self.cfg.get("watchdog_ms") or 0
        fed = time.ticks_ms()
        while True:
            try:
                for k in self.kept:
                    t = k[1]
                    if t is None or t.done():
                        if t is not None:
                            log.error("hub", "task ended; restarting it")
                        k[1] = None
                        k[1] = asyncio.create_task(k[0]())
                now = time.ticks_ms()
                if time.ticks_diff(now, self.tick_ok_ms) <= _TICK_STALE_MS and self.server_ok():
                    board.wdt_feed()
                    fed = now
            except Exception:  # noqa: BLE001 - MemoryError: try again next round
                pass
            if wdt_ms and time.ticks_diff(time.ticks_ms(), fed) > wdt_ms and \
                    not board.is_hardware():
                raise RuntimeError("watchdog: not fed for %d ms" % wdt_ms)
            await asyncio.sleep_ms(_SUPERVISE_MS)

    async def _ticker(self):
        """Twice a second: drive the plugs (connect, heartbeat, refresh, timeouts). Every
        minute: uptime, GC. An error in a round (MemoryError) is logged and
        the next round runs as usual; one plug's error does not stop the others."""
        n = 0
        f = plug.faults  # test-only hooks (testhooks.py), normally None
        while True:
            try:
                if f:
                    f.squeeze()
                    f.hit("tick")
                now = time.ticks_ms()
                for p in self.plugs.values():
                    try:
                        if f:
                            f.hit("plug_tick")
                        p.tick(now)
                    except Exception as e:  # noqa: BLE001
                        log.error("hub", "tick %s: %s" % (p.id, type(e).__name__))
                        p._drop("tick failed")
                if n % 120 == 0:
                    board.uptime_s()
                    gc.collect()
                self.tick_ok_ms = time.ticks_ms()
            except Exception as e:  # noqa: BLE001
                try:
                    log.error("hub", "tick: %s" % type(e).__name__)
                except Exception:  # noqa: BLE001
                    pass
            n += 1
            await asyncio.sleep_ms(_TICK_MS)
            if f:
                f.hit("kill_tick")


async def _ntp(cfg, ok=None):
    """Set the clock from NTP (`ntp_host`, `ntp_port`) through hubtime.py, imported for each
    sync only. With ok=None: one sync, returns True/False, or None when the host is refused
    (logged by hubtime.py). Otherwise run forever: retry every minute while NTP fails, resync
    hourly (`ok`: result of the previous sync)."""
    while True:
        if ok is not None:
            await asyncio.sleep(3600 if ok else 60)
        try:
            import hubtime

            r = await hubtime.sync(cfg.get("ntp_host"), cfg.get("ntp_port", 123))
        finally:
            hubtime = None
            board.unload("hubtime")
        if ok is None:
            return r
        ok = r


async def _run(box):
    from server import Server

    cfg = box[0]
    records = box[1]
    box[1] = None
    hub = Hub(cfg)
    srv = Server(hub, cfg["secret"], cfg["bind"], cfg["port"], cfg["max_clients"])
    hub.start(records)
    records = None
    if cfg.get("ntp_host"):  # optional: otherwise the time comes from HA's `time` requests
        ok = await _ntp(cfg)  # first try before serving, then in the background
        if ok is not None:
            hub.keep(lambda: _ntp(cfg, ok))
    await srv.start()
    gc.collect()
    log.info("main", "hub %s ready, %d plugs" % (hub.hub_id, len(hub.plugs)))
    await hub.housekeeping()


def run(box):
    """Run the hub until the board resets (never returns in normal operation). `box` is
    startup.boot's [cfg, plug records]: the records (with the local keys) are taken out of it
    once the plugs are created, so that neither the caller's reference nor this frame keeps
    the stored plug list in RAM."""
    gc.collect()
    try:
        asyncio.run(_run(box))
    finally:
        asyncio.new_event_loop()

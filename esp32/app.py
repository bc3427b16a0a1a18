# The hub's state: the plug registry (add/remove persisted through config.py), inventory and
# health snapshots, the fan-out of plug state changes to connected HA clients, the periodic
# tick that drives every plug, and the boot sequence (main).
import asyncio
import gc
import sys
import time

import board
import log
import plug
from hubproto import (E_BAD_REQUEST, E_EXISTS, E_LIMIT, E_NO_TIME, E_STORAGE, E_UNKNOWN_DEVICE,
                      HubErr)

FW_VERSION = "0.1.0"


def _config():
    # config.py is needed at boot and on add/remove only: imported on demand and dropped
    # afterwards, so its code does not sit in the heap in between.
    import config

    return config


def _unload_config():
    sys.modules.pop("config", None)


class Hub:
    def __init__(self, cfg):
        self.cfg = cfg
        self.hub_id = cfg.get("hub_id") or board.unique_id()
        self.max_plugs = cfg["max_plugs"]
        self.plugs = {}  # device id -> Plug
        self.server = None  # set by server.Server; receives broadcasts
        plug.configure(cfg["heartbeat_s"], cfg["refresh_s"], self._on_state)

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
    # The stored plug list (with local keys) is not kept in RAM: add/remove read it back from
    # flash, change it and write it atomically (config.save_plugs).
    def add_plug(self, fields):
        """Validate, persist, then start a plug. Raises HubErr."""
        config = _config()
        try:
            try:
                rec = config.check_plug(fields)
            except ValueError as e:
                raise HubErr(E_BAD_REQUEST, str(e))
            if rec["id"] in self.plugs:
                raise HubErr(E_EXISTS, "device id already configured")
            if len(self.plugs) >= self.max_plugs:
                raise HubErr(E_LIMIT,
                             "hub serves at most %d plugs (socket budget)" % self.max_plugs)
            try:
                records = [r for r in config.load_plugs(self.cfg) if r["id"] in self.plugs]
                records.append(rec)
                config.save_plugs(self.cfg, records)
            except OSError as e:
                raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
        finally:
            records = None
            config = None
            _unload_config()
        self._start_plug(rec)
        self._broadcast(self.plug_msg(self.plugs[rec["id"]]))
        return {"id": rec["id"]}

    async def remove_plug(self, dev_id):
        p = self.plugs.get(dev_id)
        if p is None:
            raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
        config = _config()
        try:
            keep = [r for r in config.load_plugs(self.cfg)
                    if r["id"] != dev_id and r["id"] in self.plugs]
            config.save_plugs(self.cfg, keep)
        except OSError as e:
            raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
        finally:
            keep = None
            config = None
            _unload_config()
        del self.plugs[dev_id]
        await p.stop()
        gc.collect()
        log.info("hub", "plug %s removed" % dev_id)
        self._broadcast({"t": "removed", "id": dev_id})
        return {"id": dev_id}

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
                "port": p.port, "online": p.online, "dps": p.dps_json(), "ts": p.ts}

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
        return {"heap_free": free, "heap_alloc": alloc, "uptime_s": board.uptime_s(), "rssi": board.rssi(), "plugs": len(self.plugs),
                "plugs_online": online,
                "clients": self.server.client_count() if self.server else 0,
                "time": board.unix_time(), "time_synced": board.time_source is not None,
                "time_source": board.time_source}

    def _broadcast(self, msg):
        if self.server is not None and self.server.clients:
            self.server.broadcast(msg)

    def _on_state(self, p, changed):
        self._broadcast({"t": "state", "id": p.id, "online": p.online, "dps": changed,
                         "ts": p.ts or board.unix_time()})

    async def housekeeping(self):
        """Twice a second: drive the plugs (connect, heartbeat, refresh, timeouts) and feed the
        watchdog while the loop runs. Every minute: uptime, GC."""
        n = 0
        while True:
            board.wdt_feed()
            now = time.ticks_ms()
            for p in self.plugs.values():
                try:
                    p.tick(now)
                except Exception as e:  # noqa: BLE001 - one plug must not stop the others
                    log.error("hub", "tick %s: %s %s" % (p.id, type(e).__name__, e))
                    p._drop("tick failed")
            if n % 120 == 0:
                board.uptime_s()
                gc.collect()
            n += 1
            await asyncio.sleep_ms(500)


async def _ntp(cfg, ok=None):
    """Set the clock from NTP (`ntp_host`, `ntp_port`) through hubtime.py, imported for each
    sync only. With ok=None: one sync, returns True/False, or None when the host is refused
    (logged by hubtime.py). Otherwise run forever: retry every minute while NTP fails, resync
    hourly (`ok`: result of the previous sync)."""
    while True:
        if ok is not None:
            await asyncio.sleep(3600 if ok else 60)
        import hubtime

        try:
            r = await hubtime.sync(cfg.get("ntp_host"), cfg.get("ntp_port", 123))
        finally:
            hubtime = None
            sys.modules.pop("hubtime", None)
        if ok is None:
            return r
        ok = r


async def _run(cfg, records):
    from server import Server

    hub = Hub(cfg)
    srv = Server(hub, cfg["secret"], cfg["bind"], cfg["port"], cfg["max_clients"])
    hub.start(records)
    records = None
    if cfg.get("ntp_host"):  # optional: otherwise the time comes from HA's `time` requests
        ok = await _ntp(cfg)  # first try before serving, then in the background
        if ok is not None:
            asyncio.create_task(_ntp(cfg, ok))
    await srv.start()
    gc.collect()
    log.info("main", "hub %s ready, %d plugs" % (hub.hub_id, len(hub.plugs)))
    await hub.housekeeping()


def run(cfg, records):
    """Run the hub until the board resets (never returns in normal operation)."""
    gc.collect()
    try:
        asyncio.run(_run(cfg, records))
    finally:
        asyncio.new_event_loop()

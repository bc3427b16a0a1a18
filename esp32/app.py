# The hub's state: the plug registry (add/remove persisted through config.py), inventory and
# health snapshots, and the fan-out of plug state changes to connected HA clients.
import asyncio
import gc
import sys
import time

import board
import log
from hubproto import E_BAD_REQUEST, E_EXISTS, E_LIMIT, E_STORAGE, E_UNKNOWN_DEVICE, HubErr
from plug import Plug

FW_VERSION = "0.1.0"


def _config():
    # config.py is needed at boot and on add/remove only; it is imported on demand and dropped
    # afterwards so its code does not occupy the heap in between (~2-4 KB).
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
        self._records = []  # checked plug configs, in the order they are persisted

    def start(self, records):
        for rec in records:
            if len(self.plugs) >= self.max_plugs:
                log.warn("hub", "plug %s not started: limit of %d plugs" % (rec["id"],
                                                                           self.max_plugs))
                continue
            self._records.append(rec)
            self._start_plug(rec)

    def _start_plug(self, rec):
        p = Plug(rec, self._on_state, self.cfg["heartbeat_s"], self.cfg["refresh_s"])
        self.plugs[p.id] = p  # housekeeping() connects it on its next tick
        log.info("hub", "plug %s (%s, %s:%d) started" % (p.id, p.ver, p.host, p.port))

    # --- HA requests ---------------------------------------------------------------------------
    def add_plug(self, fields):
        """Validate, persist atomically, then start. Raises HubErr."""
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
                config.save_plugs(self.cfg, self._records + [rec])
            except OSError as e:
                raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
        finally:
            _unload_config()
        self._records.append(rec)
        self._start_plug(rec)
        self._inventory_changed()
        return {"id": rec["id"]}

    async def remove_plug(self, dev_id):
        p = self.plugs.get(dev_id)
        if p is None:
            raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
        keep = [r for r in self._records if r["id"] != dev_id]
        try:
            _config().save_plugs(self.cfg, keep)
        except OSError as e:
            raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
        finally:
            _unload_config()
        self._records = keep
        del self.plugs[dev_id]
        await p.stop()
        gc.collect()
        log.info("hub", "plug %s removed" % dev_id)
        self._inventory_changed()
        return {"id": dev_id}

    async def set_dps(self, dev_id, dps):
        p = self.plugs.get(dev_id)
        if p is None:
            raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
        if not isinstance(dps, dict) or not dps:
            raise HubErr(E_BAD_REQUEST, "dps must be a non-empty object")
        for k in dps:
            v = dps[k]
            if not k.isdigit() or not isinstance(v, (bool, int, str)) and v is not None:
                raise HubErr(E_BAD_REQUEST, "bad dp %s" % k)
        return {"id": dev_id, "dps": await p.set_dps(dps)}

    # --- snapshots -------------------------------------------------------------------------
    @staticmethod
    def plug_info(p):
        return {"id": p.id, "name": p.name, "ver": p.ver, "host": p.host, "port": p.port,
                "online": p.online, "dps": p.dps_json(), "ts": p.ts}

    def inventory(self):
        return {"hub_id": self.hub_id, "fw": FW_VERSION, "proto": 1, "time": board.unix_time(),
                "max_plugs": self.max_plugs,
                "plugs": [self.plug_info(self.plugs[r["id"]]) for r in self._records
                          if r["id"] in self.plugs]}

    def health(self):
        free, alloc = board.heap()
        online = 0
        for p in self.plugs.values():
            if p.online:
                online += 1
        return {"heap_free": free, "heap_alloc": alloc, "heap_peak": board.heap_peak(),
                "uptime_s": board.uptime_s(),
                "rssi": board.rssi(), "plugs": len(self.plugs), "plugs_online": online,
                "clients": self.server.client_count() if self.server else 0,
                "time": board.unix_time(), "time_synced": board.time_synced()}

    def _inventory_changed(self):
        if self.server is not None:
            msg = self.inventory()
            msg["t"] = "inventory"
            self.server.broadcast(msg)

    def _on_state(self, p, changed):
        if self.server is not None:
            self.server.broadcast({"t": "state", "id": p.id, "online": p.online,
                                   "dps": changed, "ts": p.ts or board.unix_time()})

    async def housekeeping(self):
        """Twice a second: drive the plugs (connect, heartbeat, refresh, timeouts) and feed the
        watchdog while the loop runs. Every minute: uptime, GC. Every hour: NTP."""
        n = 0
        while True:
            board.wdt_feed()
            now = time.ticks_ms()
            for p in self.plugs.values():
                p.tick(now)
            if n % 120 == 0:
                board.uptime_s()
                gc.collect()
            if n % 7200 == 3600 and self.cfg.get("ntp_host") is not False:
                board.ntp_sync(self.cfg.get("ntp_host"))
            n += 1
            await asyncio.sleep_ms(500)


async def _run(cfg, records):
    from server import Server

    hub = Hub(cfg)
    srv = Server(hub, cfg["secret"], cfg["bind"], cfg["port"], cfg["max_clients"])
    hub.start(records)
    await srv.start()
    gc.collect()
    log.info("main", "hub %s ready, %d plugs" % (hub.hub_id, len(hub.plugs)))
    await hub.housekeeping()


def main(path):
    """Boot sequence: config, hostname, Wi-Fi, NTP, watchdog, then the asyncio hub."""
    config = _config()
    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        log.error("main", str(e))
        return
    records = config.load_plugs(cfg)
    config = None
    _unload_config()
    log.level = {"debug": log.DEBUG, "info": log.INFO, "warn": log.WARN}.get(
        cfg["log_level"], log.INFO)
    hub_id = cfg.get("hub_id") or board.unique_id()
    board.set_hostname(hub_id)
    wifi = cfg.get("wifi")
    if wifi:
        if not board.wifi_connect(wifi.get("ssid"), wifi.get("password")):
            log.error("main", "wifi not connected; rebooting in 10 s")
            time.sleep(10)
            board.reset()
        log.info("main", "wifi up, ip %s" % board.ip_address())
        if cfg.get("ntp_host") is not False:
            for _ in range(3):
                if board.ntp_sync(cfg.get("ntp_host")):
                    break
    board.wdt_start(cfg["watchdog_ms"])
    gc.collect()
    try:
        asyncio.run(_run(cfg, records))
    finally:
        asyncio.new_event_loop()

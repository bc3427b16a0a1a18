# Hub entry point. On a board MicroPython runs this after boot.py; on the unix port:
#   micropython esp32/main.py path/to/config.json
import asyncio
import gc
import sys

import board
import config
import log
from app import Hub
from server import Server

DEFAULT_CONFIG = "config.json"


def _config_path():
    argv = getattr(sys, "argv", None) or []
    return argv[1] if len(argv) > 1 else DEFAULT_CONFIG


async def _main(cfg):
    hub = Hub(cfg)
    srv = Server(hub, cfg["secret"], cfg["bind"], cfg["port"], cfg["max_clients"])
    hub.start(config.load_plugs(cfg))
    await srv.start()
    gc.collect()
    log.info("main", "hub %s ready, %d plugs" % (hub.hub_id, len(hub.plugs)))
    await hub.housekeeping()


def main():
    try:
        cfg = config.load(_config_path())
    except config.ConfigError as e:
        log.error("main", str(e))
        return
    log.level = {"debug": log.DEBUG, "info": log.INFO, "warn": log.WARN}.get(
        cfg["log_level"], log.INFO)
    hub_id = cfg.get("hub_id") or board.unique_id()
    board.set_hostname(hub_id)
    wifi = cfg.get("wifi")
    if wifi:
        if not board.wifi_connect(wifi.get("ssid"), wifi.get("password")):
            log.error("main", "wifi not connected; rebooting in 10 s")
            import time

            time.sleep(10)
            board.reset()
        log.info("main", "wifi up, ip %s" % board.ip_address())
        if cfg.get("ntp_host") is not False:
            for _ in range(3):
                if board.ntp_sync(cfg.get("ntp_host")):
                    break
    board.wdt_start(cfg["watchdog_ms"])
    try:
        asyncio.run(_main(cfg))
    finally:
        asyncio.new_event_loop()


main()

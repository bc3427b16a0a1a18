# Boot sequence of the hub, run once by main.py before the event loop starts: read the
# configuration, then hostname, Wi-Fi and watchdog through board.py (NTP, if configured, runs
# in the event loop: hubtime.py). main.py drops this module afterwards, so its code does not
# stay in the heap.
import sys
import time

import board
import log


def boot(path):
    """Config, log level, hostname, Wi-Fi, watchdog. Returns (cfg, plug records), or
    None when the configuration is unusable."""
    import config

    try:
        cfg = config.load(path)
        records = config.load_plugs(cfg)
    except config.ConfigError as e:
        log.error("main", str(e))
        return None
    finally:
        config = None
        sys.modules.pop("config", None)
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
    board.wdt_start(cfg["watchdog_ms"])
    return cfg, records

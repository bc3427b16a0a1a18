# Boot sequence of the hub, run once by main.py before the event loop starts: read the
# configuration, then hostname, Wi-Fi, NTP and watchdog through board.py. main.py drops this
# module afterwards, so its code does not stay in the heap.
import sys

import board
import log


def boot(path):
    """Config, log level, hostname, Wi-Fi, NTP, watchdog. Returns (cfg, plug records), or
    None when the configuration is unusable."""
    import config

    cfg = None
    try:
        cfg = config.load(path)
        records = config.load_plugs(cfg)
    except config.ConfigError as e:
        log.error("main", str(e))
    finally:
        config = None
        sys.modules.pop("config", None)
    if cfg is None or (board.is_hardware() and not cfg.get("wifi")):
        # no secret or no Wi-Fi yet: Improv serial + setup AP, then boot again (hub-setup.md)
        return boot(path) if _provision(path, 0) else None
    log.level = {"debug": log.DEBUG, "info": log.INFO, "warn": log.WARN}.get(
        cfg["log_level"], log.INFO)
    hub_id = cfg.get("hub_id") or board.unique_id()
    board.set_hostname(hub_id)
    wifi = cfg.get("wifi")
    if wifi:
        if not board.wifi_connect(wifi.get("ssid"), wifi.get("password")):
            log.error("main", "wifi not connected; setup AP for 3 min, then reboot")
            _provision(path, 180, True)
            board.reset()
        log.info("main", "wifi up, ip %s" % board.ip_address())
        if cfg.get("ntp_host") is not False:
            for _ in range(3):
                if board.ntp_sync(cfg.get("ntp_host")):
                    break
    board.wdt_start(cfg["watchdog_ms"])
    return cfg, records


def _provision(path, timeout_s, force=False):
    """provision.setup when needed (or `force`): True once config.json is usable; None when
    nothing was needed. provision.py is imported only here, so a configured hub never loads
    it (its names would stay interned in the heap)."""
    import provision

    try:
        if force or provision.needed(path):
            return provision.setup(path, timeout_s=timeout_s)
    finally:
        sys.modules.pop("provision", None)

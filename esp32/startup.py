# Boot sequence of the hub, run once by main.py before the event loop starts: read the
# configuration, then hostname, Wi-Fi (power save off, wifi.py) and watchdog (NTP, if configured, runs
# in the event loop: hubtime.py). The boot-only hardware steps live here rather than in
# board.py: main.py drops this module afterwards, so their code does not stay in the heap. They
# leave the Wi-Fi interface and the watchdog in board._wlan and board._wdt for the running hub.
import sys
import time

import board
import log


def boot(path):
    """Config, log level, hostname, Wi-Fi, watchdog. Returns [cfg, plug records] (a list:
    app.run takes the records out of it), or None when the configuration is unusable."""
    import config

    cfg = None
    try:
        cfg = config.load(path)
        records = config.load_plugs(cfg)
        if "plugs" in cfg:
            # config.json's initial plug list is copied once to plugs.json, which the running
            # hub reads on add/remove, so cfg (kept for the hub's lifetime) does not hold the
            # list and its local keys in RAM. While that copy fails, cfg keeps the list.
            pf = cfg["plugs_file"]
            try:
                if not (config._exists(pf) or config._exists(pf + ".tmp")):
                    config.save_plugs(cfg, records)
                    log.info("main", "initial plug list copied to %s" % pf)
                if config._exists(pf):
                    del cfg["plugs"]
            except OSError as e:
                log.warn("main", "cannot write %s: %s" % (pf, e))
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
    if board.is_hardware():
        import diag

        log.info("main", "reset cause: %s" % diag.reset_cause())
        diag = None
        sys.modules.pop("diag", None)
    hub_id = cfg.get("hub_id") or board.unique_id()
    if board.is_hardware() and not set_hostname(hub_id):
        log.error("main", "DHCP hostname refused: HA will not discover the hub")
    creds = cfg.get("wifi")
    if creds:
        import wifi

        try:
            if not wifi.connect(creds.get("ssid"), creds.get("password"),
                                power_save=cfg.get("wifi_power_save") is True):
                log.error("main", "wifi not connected; setup AP for 3 min, then reboot")
                _provision(path, 180, True)
                board.reset()
            log.info("main", "wifi up, ip %s" % wifi.ip_address())
        finally:
            wifi = None
            sys.modules.pop("wifi", None)
    wdt_start(cfg["watchdog_ms"])
    return [cfg, records]


def set_hostname(hub_id):
    """Set the DHCP hostname `tuya-esp-hub-<hub_id>` (before Wi-Fi starts) so Home Assistant
    finds the hub by DHCP (manifest "dhcp": "tuya-esp-hub-*"). config.py keeps hub_id within
    MicroPython's 32-byte hostname limit. Returns True when set; False on the unix port or
    when refused (ValueError)."""
    if board.network is None:
        return False
    try:
        board.network.hostname("tuya-esp-hub-" + hub_id)
        return True
    except Exception as e:  # noqa: BLE001
        log.error("main", "hostname: %s" % type(e).__name__)
        return False


def wdt_start(timeout_ms):
    """Enable the watchdog (it cannot be stopped again on ESP32; board.wdt_feed feeds it);
    no-op for 0 and on the unix port, whose `machine` module has no WDT."""
    m = board.machine
    if m is not None and timeout_ms > 0 and hasattr(m, "WDT"):
        board._wdt = m.WDT(timeout=timeout_ms)


def _provision(path, timeout_s, force=False):
    """hubsetup.setup when needed (or `force`): True once config.json is usable; None when
    nothing was needed. provision.py is imported only here, so a configured hub never loads
    it (its names would stay interned in the heap)."""
    import provision

    try:
        if force or provision.needed(path):
            import hubsetup

            try:
                return hubsetup.setup(path, timeout_s=timeout_s)
            finally:
                sys.modules.pop("hubsetup", None)
    finally:
        sys.modules.pop("provision", None)

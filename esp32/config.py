# Configuration on flash. `config.json` (static, written by the installer, see
# config.example.json and README.md) and `plugs.json` (the plug list, rewritten by add/remove
# requests from Home Assistant). Every write is atomic: write `<file>.tmp`, then os.rename over
# the old file, so a power cut leaves either the old or the new list, never half a file.
import json
import os

DEFAULTS = {
    "port": 6670,
    "bind": "0.0.0.0",
    "max_plugs": 7,
    "max_clients": 2,
    "heartbeat_s": 10,
    "refresh_s": 30,
    "plugs_file": "plugs.json",
    # Hardware watchdog, on by default (startup.wdt_start does nothing on the unix port); fed only
    # while the plug tick and the HA server are alive (app.Hub.housekeeping).
    "watchdog_ms": 30000,
    "ntp_host": None,
    "log_level": "info",
    "wifi": None,
}
# Optional keys, read with cfg.get(key, default) where used rather than copied into cfg (the
# dict stays in RAM for the hub's lifetime): "wifi_power_save" (false: Wi-Fi modem power save
# delays packets to the hub by up to a beacon interval and makes it miss broadcasts; the hub is
# mains powered), "plug_connect_ms" (5000), "plug_reply_ms" (5000), "plug_backoff_max_s" (60),
# and "test_faults" (tests only, testhooks.py).

# DHCP hostname "tuya-esp-hub-<hub_id>" (startup.set_hostname): MicroPython's network.hostname()
# refuses names over MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN = 32 bytes (extmod/modnetwork.h/.c),
# which left the board with its default name and HA's DHCP discovery (manifest "dhcp":
# "tuya-esp-hub-*") silent. 32 - len("tuya-esp-hub-") = 19.
HOSTNAME_PREFIX = "tuya-esp-hub-"
MAX_HUB_ID = const(19)

MIN_SECRET_LEN = const(16)
# Longest "refresh"/"dps" list of a plug's profile (DP ids are 1-255).
MAX_DPS = const(32)
VERSIONS = ("3.1", "3.3", "3.4", "3.5")


class ConfigError(Exception):
    pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load(path):
    """Read config.json, apply defaults, check the secret. Raises ConfigError."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError("cannot read %s: %s" % (path, e))
    for k in DEFAULTS:
        if k not in cfg:
            cfg[k] = DEFAULTS[k]
    sec = cfg.get("secret")
    if not isinstance(sec, str) or len(sec) < MIN_SECRET_LEN:
        raise ConfigError("secret missing or shorter than %d characters" % MIN_SECRET_LEN)
    hub_id = cfg.get("hub_id")
    if hub_id is not None and not hub_id_ok(hub_id):
        raise ConfigError("hub_id must be 1-%d characters a-z, 0-9 or '-', not ending with "
                          "'-' (it becomes the DHCP hostname %s<hub_id>)"
                          % (MAX_HUB_ID, HOSTNAME_PREFIX))
    for k in ("plug_connect_ms", "plug_reply_ms", "plug_backoff_max_s", "watchdog_ms"):
        v = cfg.get(k, 1)
        if not isinstance(v, int) or v < 0 or (v == 0 and k != "watchdog_ms"):
            raise ConfigError("%s must be a positive integer" % k)
    # The plugs file lives next to config.json unless given as an absolute path.
    pf = cfg["plugs_file"]
    if not pf.startswith("/"):
        d = path.rsplit("/", 1)[0] if "/" in path else ""
        cfg["plugs_file"] = (d + "/" + pf) if d else pf
    return cfg


def _is_ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


def hub_id_ok(s):
    """True when `s` fits the handshake (1-32 ASCII bytes, docs/hub-protocol.md §4) and makes a
    valid DHCP hostname with HOSTNAME_PREFIX: at most MAX_HUB_ID characters, lower-case letters,
    digits and '-' (RFC 1123 labels; no '_', and HA lower-cases the discovered name), no '-' at
    the end."""
    if not isinstance(s, str) or not 1 <= len(s) <= MAX_HUB_ID or s[-1] == "-":
        return False
    for c in s:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-"):
            return False
    return True


def _ident_ok(s, maxlen):
    if not isinstance(s, str) or not 1 <= len(s) <= maxlen:
        return False
    for c in s:
        if not (c.isalpha() or c.isdigit() or c in "_-"):
            return False
    return True


def check_plug(p):
    """Validate and normalise one plug record; returns a new dict or raises ValueError.

    Fields: id (device id, [A-Za-z0-9_-]{1,64}), key (16-character local key), host (IPv4
    literal: DNS would block the event loop), port (default 6668), ver ("3.1"|"3.3"|"3.4"|"3.5"),
    name (at most 64 characters), refresh (optional list of at most MAX_DPS DP ids, ints
    1-255), dps (optional list of at most MAX_DPS DP ids, decimal strings 1-255)."""
    if not isinstance(p, dict):
        raise ValueError("plug must be an object")
    dev = p.get("id")
    if not _ident_ok(dev, 64):
        raise ValueError("bad device id")
    key = p.get("key")
    if not isinstance(key, str) or len(key) != 16 or len(key.encode()) != 16:
        raise ValueError("local key must be 16 ASCII characters")
    host = p.get("host")
    if not isinstance(host, str) or not _is_ipv4(host):
        raise ValueError("host must be an IPv4 address")
    port = p.get("port", 6668)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("bad port")
    ver = p.get("ver", "3.3")
    if ver not in VERSIONS:
        raise ValueError("unsupported protocol version")
    name = p.get("name", dev)
    if not isinstance(name, str) or len(name) > 64:
        raise ValueError("bad name")
    rec = {"id": dev, "key": key, "host": host, "port": port, "ver": ver, "name": name}
    # The plug's profile (docs/hub-protocol.md §7.3), both optional: "refresh", the DP ids
    # (ints) re-requested with UPDATEDPS ([] = none; absent = tuya.REFRESH_DPS), and "dps",
    # every DP id (strings) the profile uses, for the "device22" status query.
    r = p.get("refresh")
    if r is not None:
        if not isinstance(r, list) or len(r) > MAX_DPS:
            raise ValueError("refresh must be a list of at most %d DP ids" % MAX_DPS)
        for x in r:
            if type(x) is not int or not 0 < x < 256:
                raise ValueError("bad refresh DP id")
        rec["refresh"] = r
    d = p.get("dps")
    if d is not None:
        if not isinstance(d, list) or len(d) > MAX_DPS:
            raise ValueError("dps must be a list of at most %d DP ids" % MAX_DPS)
        for x in d:
            if not isinstance(x, str) or not x.isdigit() or not 0 < int(x) < 256:
                raise ValueError("bad dps DP id")
        rec["dps"] = d
    return rec


def load_plugs(cfg):
    """Plug list from plugs.json; falls back to a leftover .tmp, then to config.json "plugs"."""
    path = cfg["plugs_file"]
    for p in (path, path + ".tmp"):
        if _exists(p):
            try:
                with open(p) as f:
                    data = json.load(f)
                return [check_plug(x) for x in data["plugs"]]
            except (OSError, ValueError, KeyError, TypeError) as e:
                print("config: ignoring unreadable", p, type(e).__name__)
    out = []
    for x in cfg.get("plugs") or ():
        try:
            out.append(check_plug(x))
        except ValueError as e:
            print("config: skipping plug in config.json:", e)
    return out


def save_plugs(cfg, plugs):
    """Atomically replace plugs.json with `plugs` (list of checked plug dicts). Raises OSError."""
    path = cfg["plugs_file"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"plugs": plugs}, separators=(",", ":")))
    try:
        os.rename(tmp, path)
    except OSError:
        # Some VFS refuse to rename over an existing file: remove, then rename. The .tmp stays
        # readable in between, and load_plugs falls back to it.
        os.remove(path)
        os.rename(tmp, path)

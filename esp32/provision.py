# Provisioning of a hub that has no usable configuration: Wi-Fi credentials and the hub secret
# are received over Improv serial (improv.py, the USB cable) or the setup access point's page
# (setupap.py) and merged into config.json with an atomic write. startup.py imports this module
# only when it is needed (no secret, no Wi-Fi, or the Wi-Fi cannot be joined) and drops it
# again, so it costs no heap in normal operation. See docs/hub-setup.md.
import binascii
import json
import os

import board

MIN_SECRET = const(16)
MAX_SECRET = const(64)


def read(path):
    """The raw config.json as a dict; {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            cfg = json.load(f)
        return cfg if isinstance(cfg, dict) else {}
    except (OSError, ValueError):
        return {}


def secret_ok(s):
    """A usable hub secret: 16-64 printable ASCII characters, no spaces."""
    if not isinstance(s, str) or not MIN_SECRET <= len(s) <= MAX_SECRET:
        return False
    for c in s:
        if not 33 <= ord(c) <= 126:
            return False
    return True


def check_wifi(ssid, password):
    """Validate Wi-Fi credentials; raises ValueError with a message for the user.

    SSID: 1-32 bytes (IEEE 802.11). Password: empty (open network), 8-63 characters (WPA2
    passphrase) or 64 hex digits (raw PSK)."""
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise ValueError("SSID must be 1-32 bytes")
    if not isinstance(password, str):
        raise ValueError("bad password")
    n = len(password.encode())
    if n and not 8 <= n <= 63:
        if n != 64 or not all(c in "0123456789abcdefABCDEF" for c in password):
            raise ValueError("password must be empty or 8-63 characters")


def gen_secret():
    """32 URL-safe random characters (24 bytes from os.urandom, the hardware RNG on ESP32)."""
    s = binascii.b2a_base64(os.urandom(24)).decode().strip()
    return s.replace("+", "-").replace("/", "_")


def needed(path):
    """True when the hub cannot serve yet: no valid secret, or (on a board) no Wi-Fi."""
    cfg = read(path)
    if not secret_ok(cfg.get("secret")):
        return True
    return board.is_hardware() and not cfg.get("wifi")


def save(path, wifi=None, secret=None):
    """Merge `wifi` ({"ssid", "password"}) and/or `secret` into config.json, atomically
    (`<path>.tmp`, then rename over the old file), keeping every other key. Returns the new
    dict. Raises ValueError for bad values, OSError when the flash cannot be written."""
    cfg = read(path)
    if wifi is not None:
        check_wifi(wifi.get("ssid"), wifi.get("password", ""))
        cfg["wifi"] = {"ssid": wifi["ssid"], "password": wifi.get("password", "")}
    if secret is not None:
        if not secret_ok(secret):
            raise ValueError("secret must be 16-64 printable characters")
        cfg["secret"] = secret
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)  # some VFS refuse to rename over a file
        os.rename(tmp, path)
    return cfg


def hub_id(path):
    return read(path).get("hub_id") or board.unique_id()

# Joining the Wi-Fi network as a station, used at boot (startup.py) and while provisioning
# (improv.py): its own module so that neither imports the other, and so that the running hub
# does not keep this code in its heap (main.py drops it after boot).
import time

import board
import log


def wifi_connect(ssid, password, timeout_ms=20000, power_save=False):
    """Start the STA interface and wait (blocking) for an address; keeps it in board._wlan.

    Power save is turned off unless `power_save` (WLAN.config(pm=WLAN.PM_NONE), MicroPython
    1.20+ on ESP32; builds without the option only log it): with the modem asleep between
    beacons, packets to the hub wait up to a beacon interval and broadcasts are missed.
    Credentials are not kept in NVS by MicroPython, so this runs on every boot.
    Returns True when connected (always True on the unix port)."""
    net = board.network
    if net is None:
        return True
    board._wlan = w = net.WLAN(net.STA_IF)
    w.active(True)
    if not power_save:
        try:
            w.config(pm=w.PM_NONE)
        except Exception as e:  # noqa: BLE001
            log.warn("main", "wifi power save left on: %s" % type(e).__name__)
    if not w.isconnected():
        w.connect(ssid, password)
        t0 = time.ticks_ms()
        while not w.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
            time.sleep_ms(200)
    return w.isconnected()


def ip_address():
    """The station's IPv4 address, or None (unix port, not connected)."""
    try:
        return board._wlan.ifconfig()[0]
    except Exception:  # noqa: BLE001 - no interface
        return None

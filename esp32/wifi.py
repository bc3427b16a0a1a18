# Wi-Fi station start-up, used at boot (startup.py) and by the set-up channels (improv.py):
# connect with power save off, and the station's address. Imported only for that and dropped
# again, so its code does not stay in the heap of the running hub; the interface is left in
# board._wlan (board.wifi_ok, board.rssi).
import time

import board
import log


def connect(ssid, password, timeout_ms=20000, power_save=False):
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

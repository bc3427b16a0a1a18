# The hardware seen by the running hub: `network` (Wi-Fi state, RSSI), `machine` (watchdog
# feed, reset, unique id) and the port's clock and epoch. Boot-only hardware steps (hostname,
# Wi-Fi connect and power save, watchdog start) are in startup.py and the rarely read
# diagnostics (reset cause, IDF heap) in diag.py, so their code does not stay in the heap. On
# the unix port those modules are missing and every function here degrades to a harmless
# no-op, so the rest of the firmware runs unchanged in tests. Also the heap helpers: heap() and
# unload(), which frees a module loaded on demand.
import gc
import sys
import time

try:
    import network
except ImportError:
    network = None
try:
    import machine
except ImportError:
    machine = None

# Tuya and the hub channel use Unix time. The ESP32 port counts from 2000-01-01, which is
# 946684800 s after 1970-01-01 (docs/micropython-esp32.md §4); the unix port counts from 1970.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0

_wlan = None
_offset = 0  # seconds added to the port's clock (set_unix_time)
time_source = None  # who last set the clock: None (nobody yet), "ha" or "ntp"
time_set_s = 0  # uptime_s() when the clock was last set
_wdt = None
_up_ms = 0
_last_ticks = time.ticks_ms()


def is_hardware():
    return network is not None


def unix_time():
    """Seconds since 1970-01-01 UTC as an int (ints, never floats: ESP32 floats are 32-bit)."""
    return int(time.time()) + EPOCH_OFFSET + _offset


def set_unix_time(t, source):
    """Set the clock to `t` (Unix seconds) by keeping an offset to the port's clock, and record
    `source` ("ha": Home Assistant's `time` request, "ntp": hubtime.py) in time_source."""
    global _offset, time_source, time_set_s
    _offset = t - int(time.time()) - EPOCH_OFFSET
    time_source = source
    time_set_s = uptime_s()


def uptime_s():
    """Seconds since boot. Accumulates ticks_ms differences, so it survives the ticks wrap-around
    as long as it is called at least every few days (the housekeeping task calls it each minute)."""
    global _up_ms, _last_ticks
    now = time.ticks_ms()
    _up_ms += time.ticks_diff(now, _last_ticks)
    _last_ticks = now
    return _up_ms // 1000


def unique_id():
    """Short hex id for this board (MAC-derived on hardware, fixed on the unix port)."""
    if network is not None and machine is not None:
        try:
            import binascii

            return binascii.hexlify(machine.unique_id()).decode()[-6:]
        except Exception:
            pass
    return "unix00"


def wifi_ok():
    if _wlan is None:
        return True
    try:
        return _wlan.isconnected()
    except Exception:
        return False


def rssi():
    """Wi-Fi RSSI in dBm, or None when unknown (unix port, not connected)."""
    if _wlan is None:
        return None
    try:
        return _wlan.status("rssi")
    except Exception:
        return None




def wdt_feed():
    if _wdt is not None:
        _wdt.feed()


def reset():
    if network is not None and machine is not None:
        machine.reset()


def heap():
    """(free, allocated) bytes of the MicroPython heap after a collection. On the ESP32,
    gc.mem_free() includes what the heap can still borrow from the IDF heap (MicroPython 1.21+,
    split heap)."""
    gc.collect()
    return gc.mem_free(), gc.mem_alloc()


def unload(name):
    """Drop module `name`, loaded on demand, so its code can be collected, also when its import
    failed part-way (MemoryError in its body). MicroPython removes a module whose import failed
    from sys.modules, but the dict slot keeps its value (py/map.c, mp_map_lookup with
    MP_MAP_LOOKUP_REMOVE_IF_FOUND: "keep slot->value"), so the half-loaded module (several KB)
    stayed in the heap until another import reused that slot; storing None under the name
    first overwrites that slot. Never raises."""
    m = sys.modules
    try:
        m[name] = None
    except MemoryError:  # the table was full and could not grow: nothing was stored
        pass
    m.pop(name, None)


def nodelay(stream):
    """Disable Nagle's algorithm on an asyncio stream's socket: the hub writes small records
    back to back (a state push, then the result), and Nagle would hold the second one until
    the peer's delayed ACK (~40 ms; measured on loopback: set_dps 44 ms -> 1 ms).

    Recent ESP32 firmware implements the option (ports/esp32/modsocket.c, `case TCP_NODELAY`),
    older builds print a warning and ignore it. The unix port does not export the constants,
    so the lwIP/Linux values (IPPROTO_TCP = 6, TCP_NODELAY = 1) are the fallback. Returns
    True when the socket accepted the option, False when it refused it (best effort: the
    callers log the result, at debug level when set)."""
    try:
        import socket

        stream.s.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1),
                            1)
        return True
    except Exception:  # noqa: BLE001 - best effort
        return False

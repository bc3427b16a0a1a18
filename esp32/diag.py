# Health diagnostics for the `health` request (docs/hub-protocol.md §7.3, HUB-ADDITIONS item 3):
# reset cause, the ESP-IDF heap and the MicroPython heap's largest free block; and the last
# resort after a crash (crashed). Rarely used, so it is imported for one health request (or by
# main.py after a crash) and dropped again: its code stays out of the heap.
import sys
import time

try:
    import machine
except ImportError:
    machine = None


# machine.reset_cause() values, by the names of the constants the port defines (the ESP32 port
# has PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET; docs "machine" module).
_CAUSES = (("PWRON_RESET", "power_on"), ("HARD_RESET", "hard"), ("WDT_RESET", "watchdog"),
           ("DEEPSLEEP_RESET", "deepsleep"), ("SOFT_RESET", "soft"),
           ("BROWNOUT_RESET", "brownout"))


def reset_cause():
    """Why the board last started: "power_on", "hard", "watchdog", "deepsleep", "soft",
    "brownout" or "other"; None where the port has no machine.reset_cause() (unix)."""
    if machine is None or not hasattr(machine, "reset_cause"):
        return None
    try:
        c = machine.reset_cause()
    except Exception:  # noqa: BLE001
        return None
    for const_name, name in _CAUSES:
        if getattr(machine, const_name, None) == c:
            return name
    return "other"


def idf_heap():
    """(free, largest free block) in bytes of the ESP-IDF data heap, the one Wi-Fi, lwIP and
    mbedTLS allocate from (esp32.idf_heap_info(esp32.HEAP_DATA): one (total, free, largest free,
    min free) tuple per region); (None, None) off the ESP32."""
    try:
        import esp32

        free = largest = 0
        for region in esp32.idf_heap_info(esp32.HEAP_DATA):
            free += region[1]
            if region[2] > largest:
                largest = region[2]
        return free, largest
    except Exception:  # noqa: BLE001 - ImportError on the unix port
        return None, None


def parse_max_free(text, block=None):
    """Largest free block in bytes from micropython.mem_info() output ("... max free sz: N",
    counted in GC blocks of 4 machine words, py/gc.c), or None when absent."""
    i = text.find(b"max free sz:")
    if i < 0:
        return None
    j = i + 12
    while j < len(text) and text[j] == 32:
        j += 1
    k = j
    while k < len(text) and 48 <= text[k] <= 57:
        k += 1
    if k == j:
        return None
    if block is None:
        import sys

        block = 16 if sys.maxsize < 1 << 32 else 32
    return int(text[j:k]) * block


def mp_heap_largest():
    """Largest free block of the MicroPython heap in bytes, or None where it cannot be read.

    MicroPython exposes the figure only in the text micropython.mem_info() prints, so it is
    captured through os.dupterm (present on the ESP32, absent on the unix port: None there);
    the lines also appear on the serial console."""
    import os

    if not hasattr(os, "dupterm"):
        return None
    import io
    import micropython

    class _Cap(io.IOBase):
        def __init__(self):
            self.buf = bytearray()

        def write(self, b):
            if len(self.buf) < 400:
                self.buf.extend(b)
            return len(b)

        def readinto(self, b):
            return None

    cap = _Cap()
    try:
        old = os.dupterm(cap)
        try:
            micropython.mem_info()
        finally:
            os.dupterm(old)
        return parse_max_free(cap.buf)
    except Exception:  # noqa: BLE001
        return None


def crashed(exc, delay_s=5):
    """Last resort when the hub's event loop died with `exc` (main.py): print it, then reset
    the board after `delay_s` seconds, a window in which Ctrl-C still reaches the REPL for
    maintenance. On the unix port: exit with status 1. Never returns."""
    try:
        print("main: hub crashed:", type(exc).__name__, exc)
        sys.print_exception(exc)
    except Exception:  # noqa: BLE001 - even printing may fail without memory
        pass
    if machine is not None and hasattr(machine, "reset_cause"):  # a board
        time.sleep(delay_s)
        machine.reset()
    sys.exit(1)

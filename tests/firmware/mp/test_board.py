# board.py degrades to no-ops on the unix port; time helpers give Unix seconds as ints.
import gc
import sys
import time

import board
import startup
import wifi
from testutil import eq


def test_unix_port_no_hardware():
    eq(board.is_hardware(), False)
    eq(board.rssi(), None)
    eq(wifi.ip_address(), None)
    eq(wifi.connect("ssid", "pw"), True)
    eq(board.wifi_ok(), True)
    eq(startup.set_hostname("abc"), False)
    startup.wdt_start(1000)
    board.wdt_feed()
    eq(board.unique_id(), "unix00")


def test_time():
    eq(board.EPOCH_OFFSET, 946684800 if time.gmtime(0)[0] == 2000 else 0)
    t = board.unix_time()
    eq(isinstance(t, int), True)
    board.set_unix_time(1800000000, "ha")
    eq(board.unix_time() - 1800000000 in (0, 1), True)
    board.set_unix_time(t, None)
    up = board.uptime_s()
    eq(isinstance(up, int) and up >= 0, True)
    free, alloc = board.heap()
    eq(free > 0 and alloc > 0, True)


_GHOST_DIR = "/tmp/tle_mp_board_unload"


def _ghost_module():
    """A module that allocates ~8 KB at import, then fails (as a MemoryError in its body would)."""
    import os

    try:  # noqa: SIM105 - no contextlib on MicroPython
        os.mkdir(_GHOST_DIR)
    except OSError:
        pass
    with open(_GHOST_DIR + "/tle_ghost.py", "w") as f:
        f.write("HOG = [bytearray(256) for _ in range(32)]\nraise ValueError('import failed')\n")
    if _GHOST_DIR not in sys.path:
        sys.path.append(_GHOST_DIR)


def _failed_import():
    try:  # noqa: SIM105 - no contextlib on MicroPython
        import tle_ghost  # noqa: F401
    except ValueError:
        pass


def test_unload_frees_a_module_whose_import_failed():
    # MicroPython drops a failed module from sys.modules but its dict slot keeps the value, so
    # the half-loaded module stayed in the heap (the zombie after an update ran out of memory);
    # board.unload frees it.
    _ghost_module()
    _failed_import()
    board.unload("tle_ghost")  # the first round interns the module's names
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(3):
        _failed_import()
        eq("tle_ghost" in sys.modules, False)
        board.unload("tle_ghost")
        gc.collect()
        eq(gc.mem_alloc() - before < 1024, True, "failed import still in the heap")
    eq("tle_ghost" in sys.modules, False)

# board.py degrades to no-ops on the unix port; time helpers give Unix seconds as ints.
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

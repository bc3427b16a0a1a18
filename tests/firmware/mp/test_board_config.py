# Board-side checks on the unix port: hub_id limits for the DHCP hostname (config.py), the
# health diagnostics (diag.py) and the test-only fault hooks (testhooks.py).
import asyncio
import os

import diag
import plug
import testhooks
from testutil import eq, raises

import config

DIR = "/tmp/tle_mp_board_config_test"


def _load(hub_id):
    try:  # noqa: SIM105 - MicroPython has no contextlib
        os.mkdir(DIR)
    except OSError:
        pass
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "0123456789abcdef0123", "hub_id": "' + hub_id + '"}')
    return config.load(DIR + "/config.json")


def test_hub_id_fits_the_dhcp_hostname():
    # "tuya-esp-hub-" + hub_id must stay within MicroPython's 32-byte hostname limit
    eq(len(config.HOSTNAME_PREFIX + "a" * config.MAX_HUB_ID), 32, "longest hostname")
    for good in ("a", "a1b2c3", "kitchen-hub", "x" * 19, "0"):
        eq(config.hub_id_ok(good), True, good)
        eq(_load(good)["hub_id"], good)
    for bad in ("", "x" * 20, "Kitchen", "hub_1", "hub-", "hub.1", "hüb", None, 12):
        eq(config.hub_id_ok(bad), False, repr(bad))
    for bad in ("x" * 20, "Kitchen", "hub_1"):
        raises(config.ConfigError, _load, bad)


def test_timeouts_must_be_positive():
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "0123456789abcdef0123", "plug_connect_ms": 0}')
    raises(config.ConfigError, config.load, DIR + "/config.json")
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "0123456789abcdef0123", "watchdog_ms": "30"}')
    raises(config.ConfigError, config.load, DIR + "/config.json")
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "0123456789abcdef0123", "watchdog_ms": 0}')
    eq(config.load(DIR + "/config.json")["watchdog_ms"], 0)  # 0 = watchdog off


def test_watchdog_on_by_default():
    eq(_load("abc")["watchdog_ms"] > 0, True)


def test_diag_on_the_unix_port():
    eq(diag.reset_cause(), None)
    eq(diag.idf_heap(), (None, None))
    eq(diag.mp_heap_largest(), None)  # no os.dupterm to capture mem_info() with


def test_parse_max_free():
    text = (
        b"GC: total: 2072832, used: 7424, free: 2065408\n"
        b" No. of 1-blocks: 90, 2-blocks: 14, max blk sz: 15, max free sz: 64537\n"
    )
    eq(diag.parse_max_free(text, 16), 64537 * 16)
    eq(diag.parse_max_free(text, 32), 64537 * 32)
    eq(diag.parse_max_free(b"max free sz:   7", 16), 112)
    eq(diag.parse_max_free(b"no such line", 16), None)
    eq(diag.parse_max_free(b"max free sz: x", 16), None)


def test_make_codec_versions():
    for v in ("3.1", "3.3", "3.4", "3.5"):
        eq(plug.make_codec(v, "dev", b"0123456789abcdef").version, v)
    raises(ValueError, plug.make_codec, "3.2", "dev", b"0123456789abcdef")


def test_fault_hooks():
    f = testhooks.Faults({"tick": 2, "kill_tick": 1, "squeeze": 2, "squeeze_kb": 1})
    raises(MemoryError, f.hit, "tick")
    raises(MemoryError, f.hit, "tick")
    f.hit("tick")  # used up: no-op
    f.hit("other")
    raises(asyncio.CancelledError, f.hit, "kill_tick")
    f.squeeze()
    eq(len(f.hog) * 256, 1024)
    f.squeeze()
    eq(f.hog is not None, True)
    f.squeeze()  # count used up: released
    eq(f.hog, None)

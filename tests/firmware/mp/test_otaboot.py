# otaboot.py (the firmware loader: boot counting, trial, rollback, safe mode, confirmation) on
# the unix port, against its state file in a temporary directory.
import sys

import otaboot
from testutil import eq, fresh_json

DIR = "/tmp/tle_mp_otaboot_test"
CFG = DIR + "/config.json"


def _state(s=None):
    fresh_json(DIR, "ota.json", s)


def _boot():
    """otaboot.boot with sys.path[0] restored afterwards; returns (result, chosen path)."""
    old = sys.path[0]
    try:
        r = otaboot.boot(CFG)
        return r, sys.path[0]
    finally:
        sys.path[0] = old


def _base():
    return otaboot._stamp(sys.path[0])


def test_trial_boots_twice_then_rolls_back():
    _state({"base": _base(), "good": "", "try": "ota_a", "ver": "2.0", "boots": 0})
    here = sys.path[0]
    for n in (1, 2):
        r, path = _boot()
        eq(r, [DIR, True, False], f"trial boot {n}")
        eq(path, DIR + "/ota_a", "trial set first on sys.path")
        eq(otaboot.read(DIR)["boots"], n, "counted before any import")
    r, path = _boot()
    eq(r, [DIR, False, False], "third boot: rolled back")
    eq(path, here, "the base set runs again")
    s = otaboot.read(DIR)
    eq(("try" in s, s["failed"], s["boots"]), (False, "2.0", 1), "state after the rollback")


def test_confirm_promotes_only_the_running_trial():
    # an update committed during a normal boot (try written) is not confirmed by that boot
    _state({"base": _base(), "good": "", "try": "ota_a", "ver": "2.0", "boots": 3})
    eq(otaboot.confirm(DIR, False), None, "normal boot")
    s = otaboot.read(DIR)
    eq((s["try"], s["boots"], s.get("good")), ("ota_a", 0, ""), "the trial stays a trial")
    eq(otaboot.confirm(DIR, True), "2.0", "the trial's own boot")
    s = otaboot.read(DIR)
    eq((s.get("try"), s["good"], s["boots"]), (None, "ota_a", 0), "promoted")


def test_safe_mode_after_four_unconfirmed_boots():
    _state({"base": _base(), "good": "", "boots": 3})
    r, _ = _boot()
    eq(r[2], False, "4th unconfirmed boot")
    r, _ = _boot()
    eq(r, [DIR, False, True], "5th: safe mode")
    otaboot.confirm(DIR, False)
    r, _ = _boot()
    eq(r[2], False, "normal again once confirmed")


def test_changed_base_set_forgets_the_updates():
    _state({"base": "0123456789abcdef", "good": "ota_b", "boots": 0})
    here = sys.path[0]
    r, path = _boot()
    eq((r, path), ([DIR, False, False], here), "base set runs")
    eq(otaboot.read(DIR), {"base": _base(), "boots": 1}, "update state forgotten")


def test_unreadable_state_is_a_first_boot():
    _state()
    with open(DIR + "/ota.json", "w") as f:
        f.write("{not json")
    r, _ = _boot()
    eq(r, [DIR, False, False], "boots the base set")
    eq(otaboot.read(DIR)["boots"], 1, "state rewritten")
    eq(otaboot.data_dir("config.json"), "", "relative config: current directory")
    eq(otaboot.data_dir("/config.json"), "/", "root")

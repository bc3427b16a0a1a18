# Hub entry point. On a board MicroPython runs this after boot.py (config.json next to it);
# on the unix port:  micropython esp32/main.py path/to/config.json
# Everything lives in precompiled modules: this file stays tiny because .py files are compiled
# on the device, which costs heap.
# otaboot.py (from the modules installed next to this file) first picks the set of modules
# this boot runs: the base set, or a slot written by an update from Home Assistant, which it
# rolls back when the update does not come up (docs/hub-setup.md "Updating from Home Assistant").
# A crash of the hub never leaves the board at the REPL: it is logged, then the board resets
# after 5 s (the unix port exits with status 1). Ctrl-C (mpremote) still stops at the REPL.
import sys

_p = sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json"
import otaboot

_o = otaboot.boot(_p)  # [data dir, trial, safe mode]; sys.path[0] is now the chosen set
otaboot = None
sys.modules.pop("otaboot", None)
try:  # a crash anywhere, even importing a broken update, ends in a reset (a failed boot)
    import startup

    _r = startup.boot(_p)
    startup = None
    sys.modules.pop("startup", None)
    sys.modules.pop("wifi", None)
    if _r:
        import app

        _r[0]["ota"] = _o  # for the server's confirmation of this boot (server._confirm_boot)
        if _o[2]:  # safe mode after repeated failed boots: serve HA, start no plug
            _r[1] = []
        _o = None
        app.run(_r)  # takes the plug records out of _r: they are not kept
        raise RuntimeError("hub loop returned")
except (KeyboardInterrupt, SystemExit):
    raise
except BaseException as e:  # noqa: BLE001
    _r = app = None
    sys.modules.pop("app", None)
    import gc

    gc.collect()  # the dead hub's objects: room to load diag.py
    try:
        import diag
    except BaseException:  # noqa: BLE001 - still no memory: reset without the report
        import machine

        if hasattr(machine, "reset"):
            machine.reset()
        sys.exit(1)
    diag.crashed(e)

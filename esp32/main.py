# Hub entry point. On a board MicroPython runs this after boot.py (config.json next to it);
# on the unix port:  micropython esp32/main.py path/to/config.json
# Everything lives in precompiled modules: this file stays tiny because .py files are compiled
# on the device, which costs heap.
# A crash of the hub never leaves the board at the REPL: it is logged, then the board resets
# after 5 s (the unix port exits with status 1). Ctrl-C (mpremote) still stops at the REPL.
import sys

import startup

_r = startup.boot(sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json")
startup = None
sys.modules.pop("startup", None)
sys.modules.pop("wifi", None)
if _r:
    import app

    try:
        app.run(_r)  # takes the plug records out of _r: they are not kept
        raise RuntimeError("hub loop returned")
    except KeyboardInterrupt:
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

# Hub entry point. On a board MicroPython runs this after boot.py (config.json next to it);
# on the unix port:  micropython esp32/main.py path/to/config.json
# Everything lives in precompiled modules: this file stays tiny because .py files are compiled
# on the device, which costs heap.
import sys

import startup

_r = startup.boot(sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json")
startup = None
sys.modules.pop("startup", None)
if _r:
    import app

    app.run(*_r)

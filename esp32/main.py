# Hub entry point. On a board MicroPython runs this after boot.py (config.json next to it);
# on the unix port:  micropython esp32/main.py path/to/config.json
# Everything lives in precompiled modules (app.mpy etc.): this file stays tiny because .py
# files are compiled on the device, which costs heap.
import sys

import app

app.main(sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json")

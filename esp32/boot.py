# Runs first on every boot of the board. Keep it minimal: main.py does the work, so a broken
# main.py can still be replaced over the REPL (mpremote) without fighting a boot loop.
import gc

gc.collect()

# Minimal logger for the hub firmware: one line per event on stdout (the REPL/UART on a board,
# the captured stdout of a test on the unix port). Callers never pass local keys or the hub
# secret; only device ids, peer addresses and error codes go into log lines.
import time

DEBUG = const(10)
INFO = const(20)
WARN = const(30)
ERROR = const(40)

level = INFO


def log(lvl, tag, msg):
    if lvl >= level:
        print(time.ticks_ms(), "DIWE"[lvl // 10 - 1], tag + ":", msg)


def info(tag, msg):
    log(INFO, tag, msg)


def warn(tag, msg):
    log(WARN, tag, msg)


def error(tag, msg):
    log(ERROR, tag, msg)

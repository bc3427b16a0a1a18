# Helpers shared by the MicroPython firmware unit tests.
import json

ROOT = "."


def load_vectors(name):
    with open(ROOT + "/tests/vectors/" + name) as f:
        return json.load(f)


def h(s):
    return bytes.fromhex(s)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError(f"{what}: {a!r} != {b!r}")


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    raise AssertionError(f"{exc.__name__} not raised")

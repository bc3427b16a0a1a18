# Helpers shared by the MicroPython firmware unit tests.
import json
import os

ROOT = "."


def load_vectors(name):
    with open(ROOT + "/tests/vectors/" + name) as f:
        return json.load(f)


def fresh_json(d, name, obj=None):
    """Make directory `d` if missing, remove `name` and its `.tmp` there, then write `obj` as
    JSON to `name` unless it is None (a clean state file for each test)."""
    try:  # noqa: SIM105 - MicroPython has no contextlib
        os.mkdir(d)
    except OSError:
        pass
    for f in (name, name + ".tmp"):
        try:  # noqa: SIM105
            os.remove(d + "/" + f)
        except OSError:
            pass
    if obj is not None:
        with open(d + "/" + name, "w") as f:
            f.write(json.dumps(obj))


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

# Tiny test runner executed by the MicroPython unix port:
#   micropython tests/firmware/mp/run.py [test_module ...]
# Imports tests/firmware/mp/test_*.py with esp32/ on sys.path, runs every test_* function, prints
# one line per test and exits with status 1 if any failed.
import os
import sys

HERE = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
ROOT = HERE + "/../../.."
sys.path.insert(0, ROOT + "/esp32")
sys.path.insert(0, HERE)
import testutil  # noqa: E402

testutil.ROOT = ROOT


def main():
    names = sys.argv[1:] or sorted(
        f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py")
    )
    passed = failed = 0
    for mod_name in names:
        mod = __import__(mod_name)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            try:
                fn()
                passed += 1
                print("PASS", mod_name, attr)
            except Exception as e:
                failed += 1
                print("FAIL", mod_name, attr, repr(e))
                sys.print_exception(e)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()

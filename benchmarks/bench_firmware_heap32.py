"""Hub firmware heap at 32 bits (the ESP32's word size), on the 32-bit unix port.

Usage::

    .venv/bin/python -m benchmarks.bench_firmware_heap32 [--mp32 DIR] [--versions 3.3,3.5]
        [--counts 0,1,2,4,7] [--commands 300] [--json out.json]

Needs ``micropython32`` and its ``mpy-cross`` (``/work/shared/tools/mp32``, MicroPython 1.27,
i386, see its README; ``libc6-i386`` to run). The firmware's modules are precompiled with
``mpy-cross -march=x86`` as they are deployed (``-march=xtensawin`` on a board). Loopback only;
the hub secret is the benchmarks' demo value and the plugs' keys are the simulator's.

Four measurements, each with one HA client (:class:`HubClient`) connected:

* ``modules``: the live heap each module adds when imported alone (``gc.collect()`` before and
  after ``import``, in the order the firmware imports them): the modules' code (bytecode, constant
  tables, their qstrs) plus their globals. Freezing a module into the firmware image moves all of
  it but the globals dict to flash.
* ``base`` and ``per plug``: ``heap_alloc`` from ``health()`` (``board.heap()`` collects first)
  with N plugs online, then after one ``set`` per plug; the slope over N >= 1 is the cost of a
  plug, the value at N = 0 the base (modules, the server, one client connection).
* ``min heap``: the smallest ``-X heapsize`` (KiB, bisection) at which the hub starts, brings 7
  plugs online and answers 2 rounds of ``set`` on every plug plus a client reconnection without a
  ``MemoryError``.
* ``largest free block``: after ``--commands`` ``set`` requests (and state pushes), the largest
  contiguous free block, from ``micropython.mem_info()`` ("max free sz", in 16-byte blocks at 32
  bits), printed by a bench-only wrapper around ``board.heap()``; fragmentation decides whether a
  1-2 KB buffer can still be allocated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from custom_components.tuya_local_esp.hub import HubClient

from ._common import HOST, environment, loadavg, simulator, write_json
from ._hub import DEMO_SECRET, firmware_sources, free_port, plug_record
from .bench_firmware_heap import fit

MP32 = Path("/work/shared/tools/mp32")
GC_BLOCK = 16  # bytes per GC block with 4-byte words (MicroPython py/gc.c: 4 words per block)
# Import order of the firmware at start-up (main -> startup -> app -> server/plug/tuya ...); the
# on-demand modules follow (hubauth during a handshake, tuya35/gcm/hmacsha for protocol 3.5).
# MicroPython's own modules the firmware uses (built in or frozen: their code is in flash on a
# board, only their globals/state are on the heap); imported first and reported as "library".
LIBRARY = ["gc", "sys", "os", "time", "json", "struct", "binascii", "hashlib", "cryptolib",
           "socket", "select", "errno", "micropython", "asyncio"]  # fmt: skip
MODULES = [
    "log", "board", "provision", "config", "startup", "wifi", "hubsetup", "tuya", "hubproto",
    "plug", "app", "server", "hubgate", "hubauth", "hmacsha", "tuya34", "tuya35", "gcm",
    "tuya31", "crc32soft", "plugadmin", "hubtime", "improv", "setupap",
]  # fmt: skip

PATCH = """# bench only: print micropython.mem_info() whenever health() reads the heap
import board
import micropython

_heap = board.heap


def _heap_info():
    r = _heap()
    micropython.mem_info()
    return r


board.heap = _heap_info
"""


def compile32(mp32: Path, src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for mod in sorted(src.glob("*.py")):
        if mod.name in ("main.py", "boot.py"):
            shutil.copy(mod, dest / mod.name)
            continue
        subprocess.run(
            [str(mp32 / "mpy-cross"), "-march=x86", "-o", str(dest / f"{mod.stem}.mpy"), str(mod)],
            check=True,
            capture_output=True,
        )
    (dest / "benchpatch.py").write_text(PATCH)
    subprocess.run(
        [str(mp32 / "mpy-cross"), "-march=x86", "-o", str(dest / "benchpatch.mpy"),
         str(dest / "benchpatch.py")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (dest / "benchpatch.py").unlink()
    (dest / "main_bench.py").write_text("import benchpatch\n" + (src / "main.py").read_text())
    return dest


def module_sizes(exe: Path, fw: Path) -> list[dict[str, Any]]:
    """Live heap added by importing each module (its code and globals), in MODULES order."""
    script = (
        "import gc, sys\n"
        f"sys.path.insert(0, {str(fw)!r})\n"
        "gc.collect(); a = gc.mem_alloc()\n"
        f"for m in {LIBRARY!r}:\n"
        "    try:\n"
        "        __import__(m)\n"
        "    except ImportError:\n"
        "        pass\n"
        "gc.collect(); print('MOD', '(library)', gc.mem_alloc() - a, 0)\n"
        f"for m in {MODULES!r}:\n"
        "    gc.collect(); a = gc.mem_alloc()\n"
        "    try:\n"
        "        mod = __import__(m)\n"
        "    except ImportError as e:\n"
        "        print('MOD', m, -1, 0); continue\n"
        "    gc.collect(); print('MOD', m, gc.mem_alloc() - a, len(mod.__dict__))\n"
    )
    out = subprocess.run(
        [str(exe), "-X", "heapsize=512k", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=fw,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "MOD" and int(parts[2]) >= 0:
            rows.append({"module": parts[1], "bytes": int(parts[2]), "globals": int(parts[3])})
    return rows


class Hub32:
    """The firmware under micropython32 with a config in a temporary directory."""

    def __init__(self, exe: Path, fw: Path, workdir: Path, plugs: list[dict[str, Any]],
                 heapsize: str) -> None:  # fmt: skip
        self.exe, self.fw, self.workdir, self.heapsize = exe, fw, workdir, heapsize
        self.port = free_port()
        self.config = {
            "hub_id": "benchhub", "secret": DEMO_SECRET, "bind": HOST, "port": self.port,
            "ntp_host": False, "max_plugs": max(7, len(plugs)), "max_clients": 2,
            "heartbeat_s": 10, "refresh_s": 0, "log_level": "info", "plugs": plugs,
        }  # fmt: skip
        self.log_path = workdir / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cfg = self.workdir / "config.json"
        cfg.write_text(json.dumps(self.config))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.exe), "-X", f"heapsize={self.heapsize}",
                 str(self.fw / "main_bench.py"), str(cfg)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def failed(self) -> str | None:
        """The reason the hub is not usable (exited, MemoryError in the log), or None."""
        text = self.log()
        if "MemoryError" in text:
            return "MemoryError"
        if self.proc is not None and self.proc.poll() is not None:
            tail = [ln for ln in text.splitlines() if ln.strip()][-1:]
            return f"exited {self.proc.returncode}: {tail}"
        return None

    def max_free_block(self) -> int | None:
        """Bytes of the largest free block in the last mem_info() printed."""
        found = re.findall(r"max free sz: (\d+)", self.log())
        return int(found[-1]) * GC_BLOCK if found else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@asynccontextmanager
async def hub32(
    exe: Path, fw: Path, plugs: list[dict[str, Any]], heapsize: str
) -> AsyncIterator[tuple[Hub32, HubClient]]:
    """Start the hub, connect a client, wait until all plugs are online. Raises RuntimeError
    with the reason when it does not get there within 20 s."""
    with tempfile.TemporaryDirectory(prefix="bench-hub32-") as tmp:
        hub = Hub32(exe, fw, Path(tmp), plugs, heapsize)
        hub.start()
        client: HubClient | None = None
        try:
            deadline = time.monotonic() + 20
            while "ready" not in hub.log():
                if (why := hub.failed()) or time.monotonic() > deadline:
                    raise RuntimeError(why or "not ready in time")
                await asyncio.sleep(0.02)
            client = HubClient(HOST, hub.port, DEMO_SECRET)
            await client.connect()
            while (await client.health()).plugs_online < len(plugs):
                if (why := hub.failed()) or time.monotonic() > deadline:
                    raise RuntimeError(why or "plugs not online in time")
                await asyncio.sleep(0.05)
            yield hub, client
        finally:
            if client is not None:
                await client.close()
            hub.stop()


async def settled_alloc(client: HubClient) -> tuple[int, int]:
    """Smallest heap_alloc of three health() calls 0.3 s apart, with its heap_free."""
    best = None
    for _ in range(3):
        await asyncio.sleep(0.3)
        h = await client.health()
        if best is None or h.heap_alloc < best.heap_alloc:
            best = h
    assert best is not None
    return best.heap_alloc, best.heap_free


async def per_plug(exe: Path, fw: Path, records: list[dict[str, Any]], counts: list[int],
                   heapsize: str) -> dict[str, Any]:  # fmt: skip
    pts: dict[str, dict[int, int]] = {"online": {}, "after_set": {}}
    for n in counts:
        async with hub32(exe, fw, records[:n], heapsize) as (_hub, client):
            pts["online"][n], _ = await settled_alloc(client)
            for rec in records[:n]:
                await client.set_dps(rec["id"], {"1": True})
            pts["after_set"][n], free = await settled_alloc(client)
        print(f"  N={n}: alloc {pts['online'][n]} online, {pts['after_set'][n]} after set, "
              f"free {free}", flush=True)  # fmt: skip
    out: dict[str, Any] = {"points": pts}
    for phase, p in pts.items():
        slope, icpt = fit([(n, a) for n, a in p.items() if n >= 1])
        out[f"{phase}_per_plug"] = slope
        out[f"{phase}_intercept"] = icpt
        out[f"{phase}_base"] = p.get(0)
    return out


async def works(exe: Path, fw: Path, records: list[dict[str, Any]], kib: int) -> str | None:
    """None when the hub runs 7 plugs with traffic in `kib` KiB, else the reason it failed."""
    try:
        async with hub32(exe, fw, records, f"{kib}k") as (hub, client):
            for rnd in range(2):
                await asyncio.gather(*(client.set_dps(r["id"], {"1": rnd == 0}) for r in records))
            await client.close()
            await client.connect()
            await client.health()
            return hub.failed()
    except Exception as err:  # any failure to serve is the answer
        return f"{type(err).__name__}: {str(err)[-120:]}"


async def min_heap(exe: Path, fw: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    lo, hi = 16, 128  # lo fails, hi works (checked)
    why = await works(exe, fw, records, hi)
    if why:
        return {"error": f"fails even at {hi} KiB: {why}"}
    trials = {hi: "ok"}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        why = await works(exe, fw, records, mid)
        trials[mid] = why or "ok"
        print(f"  {mid} KiB: {why or 'ok'}", flush=True)
        if why:
            lo = mid
        else:
            hi = mid
    return {"min_kib": hi, "trials": trials}


async def fragmentation(exe: Path, fw: Path, records: list[dict[str, Any]], *, heapsize: str,
                        commands: int) -> dict[str, Any]:  # fmt: skip
    try:
        return await _fragmentation(exe, fw, records, heapsize, commands)
    except Exception as err:  # a hub that runs out of memory is a result
        return {"heapsize": heapsize, "failed": f"{type(err).__name__}: {str(err)[-120:]}"}


async def _fragmentation(exe: Path, fw: Path, records: list[dict[str, Any]], heapsize: str,
                         commands: int) -> dict[str, Any]:  # fmt: skip
    async with hub32(exe, fw, records, heapsize) as (hub, client):
        await client.health()
        start_block = hub.max_free_block()
        done = 0
        rnd = 0
        while done < commands:
            await asyncio.gather(*(client.set_dps(r["id"], {"1": rnd % 2 == 0}) for r in records))
            done += len(records)
            rnd += 1
            if rnd % 5 == 0:
                await client.close()
                await client.connect()
        _alloc, free = await settled_alloc(client)
        block = hub.max_free_block()
        return {"heapsize": heapsize, "commands": done, "heap_free": free,
                "max_free_block_start": start_block, "max_free_block_end": block,
                "failed": hub.failed()}  # fmt: skip


async def run_version(exe: Path, fw: Path, version: str, *, counts: list[int], commands: int,
                      frag_heaps: list[str], seed: int) -> dict[str, Any]:  # fmt: skip
    with simulator(version=version, plugs=max(*counts, 7), seed=seed) as plugs:
        records = [
            plug_record(p.host, p.port, p.device_id, p.local_key, version=version, name=f"p{i}")
            for i, p in enumerate(plugs)
        ]
        print(f"v{version}: per plug", flush=True)
        row: dict[str, Any] = {"version": version}
        row["per_plug"] = await per_plug(exe, fw, records, counts, "256k")
        print(f"v{version}: minimum heap for 7 plugs", flush=True)
        row["min_heap_7"] = await min_heap(exe, fw, records[:7])
        row["fragmentation"] = []
        for spec in frag_heaps:
            hs = spec
            if spec == "min+4k":
                hs = f"{row['min_heap_7'].get('min_kib', 124) + 4}k"
            f = await fragmentation(exe, fw, records[:7], heapsize=hs, commands=commands)
            print(f"v{version}: {hs}: {f}", flush=True)
            row["fragmentation"].append(f)
        return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_firmware_heap32")
    p.add_argument("--mp32", type=Path, default=MP32)
    p.add_argument(
        "--exe",
        type=Path,
        help="interpreter to run (default: MP32/micropython32); one with the firmware frozen in "
        "(benchmarks/build_frozen32.sh) runs it from the image instead of .mpy files",
    )
    p.add_argument("--frozen", action="store_true", help="--exe has the modules frozen in")
    p.add_argument("--versions", default="3.3,3.5")
    p.add_argument("--counts", default="0,1,2,4,7")
    p.add_argument("--commands", type=int, default=350)
    p.add_argument("--frag-heaps", default="min+4k,96k")
    p.add_argument("--firmware-rev", default="HEAD")
    p.add_argument("--json")
    args = p.parse_args(argv)
    exe = args.exe or args.mp32 / "micropython32"
    ver = subprocess.run([str(exe), "-c", "import sys;print(sys.version)"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    env = {**environment(), "micropython32": ver, "exe": str(exe), "frozen": args.frozen}
    print(json.dumps(env), flush=True)
    counts = sorted({int(c) for c in args.counts.split(",")})
    with tempfile.TemporaryDirectory(prefix="bench-fw32-") as tmp:
        src, rev = firmware_sources(args.firmware_rev, Path(tmp) / "src")
        fw = compile32(args.mp32, src, Path(tmp) / "fw")
        if args.frozen:  # keep only main and the bench patch: the modules come from the image
            for f in fw.glob("*.mpy"):
                if f.stem != "benchpatch":
                    f.unlink()
        mods = module_sizes(exe, fw)
        total = sum(m["bytes"] for m in mods)
        print("modules:", ", ".join(f"{m['module']} {m['bytes']}" for m in mods), "total", total)
        rows = [
            asyncio.run(run_version(exe, fw, v.strip(), counts=counts,
                                    commands=args.commands,
                                    frag_heaps=args.frag_heaps.split(","), seed=21 + i))
            for i, v in enumerate(args.versions.split(","))
        ]  # fmt: skip
    write_json(
        args.json,
        {"environment": {**env, "loadavg_at_end": loadavg()}, "firmware_rev": rev,
         "modules": mods, "rows": rows},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hub firmware heap on the 32-bit MicroPython unix port (the ESP32's word size).

Usage::

    .venv/bin/python -m benchmarks.bench_firmware_heap32_board [--revs 1495955,worktree]
        [--counts 0,1,7] [--versions 3.3,3.5] [--json out.json]

Needs ``/work/shared/tools/mp32`` (``micropython32`` and its ``mpy-cross``, MicroPython 1.27,
i386; see its README) and the 32-bit C library: not part of CI. For every firmware revision
(``git archive`` of ``esp32/``, or the worktree), protocol version and plug count, the modules
are precompiled with that ``mpy-cross -march=x86`` (as deployed: ``main.py``/``boot.py`` stay
sources), the firmware starts with ``-X heapsize=...`` (default 256k, room enough to measure
without pressure) and N tuya_sim plugs in this process, one HubClient connects (HA connected),
and once every plug is online ``health()`` is read three times 0.3 s apart: the minimum
``heap_alloc`` (live bytes after ``gc.collect()``). ``base`` is N = 0 with HA connected;
``per plug`` is (alloc(max N) - alloc(1)) / (max N - 1), leaving out the first plug, which also
loads the protocol modules.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from custom_components.tuya_local_esp.hub import HubClient
from tuya_sim import SimulatedPlug

from ._common import write_json
from ._hub import DEMO_SECRET, firmware_sources, free_port

MP32 = Path("/work/shared/tools/mp32")


def compile32(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for mod in sorted(src.glob("*.py")):
        if mod.name in ("main.py", "boot.py"):
            shutil.copy(mod, dest / mod.name)
            continue
        out = dest / (mod.stem + ".mpy")
        cmd = [str(MP32 / "mpy-cross"), "-march=x86", "-o", str(out), str(mod)]
        subprocess.run(cmd, check=True, capture_output=True)
    return dest


def start_hub(fw: Path, work: Path, heapsize: str, log: Any) -> subprocess.Popen[bytes]:
    cmd = [str(MP32 / "micropython32"), "-X", f"heapsize={heapsize}", str(fw / "main.py")]
    return subprocess.Popen([*cmd, str(work / "config.json")], stdout=log, stderr=log, cwd=work)


async def measure(fw: Path, version: str, count: int, heapsize: str) -> int:
    sims = [
        SimulatedPlug(
            device_id=f"bf{version.replace('.', '')}heap{i:02d}abcdefg",
            local_key=f"key{i:02d}abcdefghijk",
            version=version,
            seed=i,
        )
        for i in range(count)
    ]
    for s in sims:
        await s.start()
    work = Path(tempfile.mkdtemp(prefix="heap32-"))
    port = free_port()
    cfg = {
        "hub_id": "benchhub",
        "secret": DEMO_SECRET,
        "bind": "127.0.0.1",
        "port": port,
        "ntp_host": False,
        "max_plugs": max(7, count),
        "heartbeat_s": 10,
        "refresh_s": 0,
        "log_level": "warn",
        "plugs": [
            {
                "id": s.device_id,
                "key": s.key_bytes().decode(),
                "host": "127.0.0.1",
                "port": s.port,
                "ver": version,
                "name": s.device_id,
            }
            for s in sims
        ],
    }
    (work / "config.json").write_text(json.dumps(cfg))
    log = (work / "hub.log").open("wb")
    proc = start_hub(fw, work, heapsize, log)
    client = HubClient("127.0.0.1", port, DEMO_SECRET)
    try:
        for _ in range(100):
            try:
                await client.connect()
                break
            except Exception:  # not listening yet
                await asyncio.sleep(0.1)
        for _ in range(300):
            inv = client.inventory
            if inv is not None and sum(p.online for p in inv.plugs.values()) >= count:
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("plugs not online")
        allocs = []
        for _ in range(3):
            allocs.append((await client.health()).heap_alloc)
            await asyncio.sleep(0.3)
        return min(allocs)
    finally:
        await client.close()
        proc.terminate()
        proc.wait(5)
        log.close()
        for s in sims:
            await s.stop()
        shutil.rmtree(work, ignore_errors=True)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--revs", default="1495955,worktree")
    p.add_argument("--counts", default="0,1,7")
    p.add_argument("--versions", default="3.3,3.5")
    p.add_argument("--heapsize", default="256k")
    p.add_argument("--json")
    a = p.parse_args()
    counts = [int(x) for x in a.counts.split(",")]
    out: dict[str, Any] = {"tool": "micropython32 1.27 (i386 unix port)", "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rev in a.revs.split(","):
            src, label = firmware_sources(rev, Path(tmp) / f"src-{rev}")
            fw = compile32(src, Path(tmp) / f"fw-{rev}")
            for version in a.versions.split(","):
                allocs = {n: await measure(fw, version, n, a.heapsize) for n in counts}
                top = max(counts)
                row = {
                    "rev": label,
                    "version": version,
                    "heap_alloc": allocs,
                    "base_with_ha": allocs[min(counts)],
                    "per_plug": round((allocs[top] - allocs[1]) / (top - 1)) if top > 1 else None,
                }
                print(row)
                out["results"].append(row)
    write_json(a.json, out)


if __name__ == "__main__":
    asyncio.run(main())

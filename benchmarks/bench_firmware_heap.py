"""Hub firmware heap per plug (MicroPython unix port).

Usage::

    .venv/bin/python -m benchmarks.bench_firmware_heap [--counts 0,1,2,4,8]
        [--versions 3.3,3.5] [--heapsizes default,96k] [--builds mpy,py]
        [--firmware-rev HEAD|worktree] [--json out.json]

For every combination of protocol version, heap size (``-X heapsize=...``; ``default`` = the
unix port's own) and build (``mpy``: modules precompiled with ``mpy-cross -march=x64`` as
deployed; ``py``: the sources, compiled by the firmware at import), the firmware is started
afresh with N simulated plugs (one ``python -m tuya_sim`` subprocess per version serves them
all), one :class:`HubClient` connects, and once ``health()`` reports every plug online the heap
is read:

* ``online``: ``health()`` three times, 0.3 s apart, minimum ``heap_alloc`` (the firmware's
  ``board.heap()`` runs ``gc.collect()`` before reading ``gc.mem_free()``/``gc.mem_alloc()``,
  so these are live bytes after a collection, not garbage);
* ``after_set``: the same after one ``set`` per plug (the first command builds the codec's
  CONTROL path and the command state).

``bytes per plug`` is the least-squares slope of ``heap_alloc`` over N >= 1 (N = 0 is left out
of the fit because the first plug also imports the protocol modules, e.g. ``tuya35`` + ``gcm``;
that step is reported separately as ``first plug``). The constant includes the one HA client
connection. A start that fails (e.g. ``MemoryError`` while the ``.py`` sources are compiled
in a 96 KiB heap) is retried up to ``--attempts`` times; every failure is recorded. Loopback
only; the firmware logs never contain keys or the secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import environment, loadavg, simulator, write_json
from ._hub import (
    compile_firmware,
    firmware_sources,
    micropython_version,
    plug_record,
    running_hub,
)


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares line through (x, y): (slope, intercept)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return float("nan"), my
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


async def _one(records: list[dict[str, Any]], fw_dir: Path, heapsize: str | None) -> dict[str, Any]:
    async with running_hub(records, fw_dir=fw_dir, heapsize=heapsize) as (_hub, client):
        out: dict[str, Any] = {}
        for phase in ("online", "after_set"):
            if phase == "after_set":
                for rec in records:
                    await client.set_dps(rec["id"], {"1": True})
                    await client.set_dps(rec["id"], {"1": False})
            best = None
            for _ in range(3):
                await asyncio.sleep(0.3)
                h = await client.health()
                if best is None or h.heap_alloc < best.heap_alloc:
                    best = h
            assert best is not None
            out[phase] = {
                "heap_alloc": best.heap_alloc,
                "heap_free": best.heap_free,
                "heap_total": best.heap_alloc + best.heap_free,
                "plugs_online": best.plugs_online,
            }
        return out


def _failure(err: Exception) -> str:
    """The last line of the hub's traceback (e.g. ``MemoryError: ...``), or the error."""
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return lines[-1][-200:] if lines else type(err).__name__


async def _series(
    version: str,
    *,
    counts: list[int],
    heapsizes: list[str],
    builds: dict[str, Path],
    seed: int,
    attempts: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with simulator(version=version, plugs=max(counts), seed=seed) as plugs:
        records = [
            plug_record(p.host, p.port, p.device_id, p.local_key, version=version, name=f"plug{i}")
            for i, p in enumerate(plugs)
        ]
        for build, fw_dir in builds.items():
            for heap in heapsizes:
                hs = None if heap == "default" else heap
                points: dict[str, dict[int, int]] = {"online": {}, "after_set": {}}
                runs: dict[str, Any] = {}
                for n in counts:
                    res, failures = None, []
                    for _attempt in range(attempts):
                        try:
                            res = await _one(records[:n], fw_dir, hs)
                            break
                        except Exception as err:  # a start that fails with MemoryError is a result
                            failures.append(_failure(err))
                            print(f"v{version} {build} heap={heap} N={n}: FAILED {failures[-1]}")
                    if res is None:
                        runs[str(n)] = {"failures": failures}
                        continue
                    res["failed_starts"] = failures
                    runs[str(n)] = res
                    for phase, pts in points.items():
                        pts[n] = res[phase]["heap_alloc"]
                    print(
                        f"v{version} {build:3s} heap={heap:7s} N={n}: alloc "
                        f"{res['online']['heap_alloc']:6d} online, "
                        f"{res['after_set']['heap_alloc']:6d} after set; free "
                        f"{res['after_set']['heap_free']:7d}",
                        flush=True,
                    )
                row: dict[str, Any] = {
                    "version": version,
                    "build": build,
                    "heapsize": heap,
                    "runs": runs,
                }
                for phase, pts in points.items():
                    ge1 = [(n, a) for n, a in pts.items() if n >= 1]
                    slope, icpt = fit(ge1) if len(ge1) >= 2 else (float("nan"), float("nan"))
                    row[f"{phase}_bytes_per_plug"] = slope
                    row[f"{phase}_intercept"] = icpt
                    if 0 in pts and 1 in pts:
                        row[f"{phase}_first_plug"] = pts[1] - pts[0]
                print(
                    f"  -> v{version} {build} heap={heap}: "
                    f"{row['online_bytes_per_plug']:.0f} B/plug online, "
                    f"{row['after_set_bytes_per_plug']:.0f} B/plug after set",
                    flush=True,
                )
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_firmware_heap", description=__doc__
    )
    p.add_argument("--counts", default="0,1,2,4,8")
    p.add_argument("--versions", default="3.3,3.5")
    p.add_argument("--heapsizes", default="default,96k")
    p.add_argument("--builds", default="mpy,py")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--attempts", type=int, default=3, help="starts per point before giving up")
    p.add_argument(
        "--firmware-rev",
        default="HEAD",
        help="git revision of esp32/ to run (exported with git archive); 'worktree': as on disk",
    )
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    env = {**environment(), "micropython": micropython_version()}
    print(json.dumps(env), flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        src, fw_rev = firmware_sources(args.firmware_rev, Path(tmp) / "src")
        builds: dict[str, Path] = {}
        for b in (x.strip() for x in args.builds.split(",")):
            if b == "mpy":
                builds["mpy"] = compile_firmware(Path(tmp) / "fw", src)
            elif b == "py":
                builds["py"] = src
        for i, v in enumerate(x.strip() for x in args.versions.split(",") if x.strip()):
            rows += asyncio.run(
                _series(
                    v,
                    counts=counts,
                    heapsizes=[h.strip() for h in args.heapsizes.split(",")],
                    builds=builds,
                    seed=args.seed + i,
                    attempts=args.attempts,
                )
            )
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "firmware_rev": fw_rev,
            "counts": counts,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

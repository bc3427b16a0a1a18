"""Driver for ``mp_gcm_bench.py``: the firmware's AES-GCM per frame, sources vs ``.mpy``.

Usage::

    .venv/bin/python -m benchmarks.bench_gcm [--iterations 2000] [--repeats 7]
        [--heapsize 96k] [--firmware-rev HEAD|worktree] [--json out.json]

Runs ``benchmarks/mp_gcm_bench.py`` under the MicroPython unix port twice: with ``esp32/gcm.py``
(the viper functions compiled by the interpreter at import) and with ``gcm.mpy`` +
``hmacsha.mpy`` precompiled by ``mpy-cross -march=x64`` (as deployed). Collects its JSON lines.
An ESP32 estimate is added by scaling the unix-port times with the factors of
``../shared/docs/micropython-esp32.md`` §2.3 (x125-180 from a 64-bit unix port to an ESP32 at
its default 160 MHz, ±50%); it is an estimate, not a measurement.

The interpreter runs with ``-X heapsize=96k`` by default: an ESP32-sized heap, so the garbage
each call leaves is collected about as often as on the board and the collections are part of
the per-call time. With the unix port's default 2 MiB heap the figures on this VM depended on
the number of iterations (the same call took 3-7x longer once the runs had walked through more
of the heap; user time, not page faults; cause not investigated).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import ROOT, environment, loadavg, write_json
from ._hub import firmware_sources, micropython_version, tool

SCRIPT = ROOT / "benchmarks" / "mp_gcm_bench.py"
#: unix64 -> ESP32 (160 MHz) time ratios, micropython-esp32.md §2.3 (perf_bench, rate.py).
ESP32_FACTOR = (125, 180)


def run_script(fw_dir: Path, iterations: int, heapsize: str) -> dict[str, Any]:
    cmd = [tool("micropython")]
    if heapsize != "default":
        cmd += ["-X", f"heapsize={heapsize}"]
    out = subprocess.run(
        [*cmd, str(SCRIPT), str(fw_dir), str(iterations)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()]
    return {"info": lines[0], "rows": lines[1:]}


def run_repeated(fw_dir: Path, iterations: int, heapsize: str, repeats: int) -> dict[str, Any]:
    """``repeats`` fresh interpreters; per operation the median and the minimum of their
    best-of-5 means (the machine is shared: the median is the figure to quote)."""
    runs = [run_script(fw_dir, iterations, heapsize) for _ in range(repeats)]
    rows = []
    for i, first in enumerate(runs[0]["rows"]):
        if "us" not in first:  # e.g. key_live_bytes: a heap figure, the same in every run
            rows.append({**first, "per_repeat": sorted(r["rows"][i]["bytes"] for r in runs)})
            continue
        per = sorted(r["rows"][i]["us"] for r in runs)
        med = statistics.median(per)
        rows.append(
            {
                "op": first["op"],
                "us": med,
                "us_min": per[0],
                "us_per_repeat": per,
                "alloc_bytes": first["alloc_bytes"],
                "esp32_estimate_ms": [round(med * f / 1000.0, 2) for f in ESP32_FACTOR],
            }
        )
    return {"info": runs[0]["info"], "repeats": repeats, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_gcm", description=__doc__)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7, help="fresh interpreters per build")
    p.add_argument("--heapsize", default="96k", help="-X heapsize ('default': the port's own)")
    p.add_argument(
        "--firmware-rev",
        default="HEAD",
        help="git revision of esp32/ to run (exported with git archive); 'worktree': as on disk",
    )
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    env = {**environment(), "micropython": micropython_version()}
    builds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gcm-") as tmp:
        src, fw_rev = firmware_sources(args.firmware_rev, Path(tmp) / "src")
        mpy_dir = Path(tmp) / "mpy"
        mpy_dir.mkdir()
        for mod in ("gcm", "hmacsha"):
            subprocess.run(
                [
                    tool("mpy-cross"),
                    "-march=x64",
                    "-o",
                    str(mpy_dir / f"{mod}.mpy"),
                    str(src / f"{mod}.py"),
                ],
                check=True,
                capture_output=True,
            )
        builds["py"] = run_repeated(src, args.iterations, args.heapsize, args.repeats)
        builds["mpy"] = run_repeated(mpy_dir, args.iterations, args.heapsize, args.repeats)
    for name, b in builds.items():
        for row in b["rows"]:
            if "us" not in row:
                print(f"{name:3s} {row['op']:32s} {row['bytes']:8.0f} B")
                continue
            lo, hi = row["esp32_estimate_ms"]
            print(
                f"{name:3s} {row['op']:32s} {row['us']:8.1f} us (min {row['us_min']:.1f})"
                f"  {row['alloc_bytes']:6d} B"
                f"  (ESP32 estimate {lo:.1f}-{hi:.1f} ms)"
            )
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "esp32_factor": ESP32_FACTOR,
            "iterations": args.iterations,
            "heapsize": args.heapsize,
            "firmware_rev": fw_rev,
            "builds": builds,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

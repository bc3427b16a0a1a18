"""Does ``set_dps`` get slower (or the client bigger) the longer a connection lives?

Usage::

    .venv/bin/python -m benchmarks.bench_set_growth [--version 3.3]
        [--checkpoints 0,1000,5000,20000]
        [--sample 200] [--json out.json]

One client, one persistent connection to a simulator subprocess; the relay is toggled over and
over. At every checkpoint (number of ``set_dps`` calls done so far) ``--sample`` further calls are
timed and the size of the client's internal ``_set_waiters`` (set_dps calls waiting for a
confirming push) is recorded; then a second pass measures the memory still allocated per call
(``tracemalloc``, after ``gc``). A client without leaks shows flat latency, a constant number of
waiters and ~0 bytes per call. (Reads a private
attribute on purpose: this is a diagnostic, not an API test.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from typing import Any

from custom_components.tuya_local_esp.tuya import TuyaDevice

from ._common import PlugInfo, environment, loadavg, simulator, summarize, write_json


async def _run(plug: PlugInfo, checkpoints: list[int], sample: int) -> list[dict[str, Any]]:
    """Latency at each checkpoint (no tracemalloc: it would inflate the timings)."""
    rows: list[dict[str, Any]] = []
    async with TuyaDevice(
        plug.host, plug.device_id, plug.local_key, version=plug.version, port=plug.port
    ) as dev:
        state = bool(dev.dps.get("1", False))
        done = 0
        for target in checkpoints:
            while done < target:
                state = not state
                await dev.set_dps({"1": state})
                done += 1
            samples = []
            for _ in range(sample):
                state = not state
                t0 = time.perf_counter()
                await dev.set_dps({"1": state})
                samples.append(time.perf_counter() - t0)
                done += 1
            waiters = len(dev._set_waiters)  # a diagnostic: private on purpose
            row = {"set_dps_done": done, "push_waiters": waiters, **summarize(samples)}
            rows.append(row)
            print(
                f"after {done:6d} set_dps: _set_waiters={waiters:6d}  "
                f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  "
                f"mean {row['mean_ms']:.3f} ms",
                flush=True,
            )
    return rows


async def _memory(plug: PlugInfo, calls: int) -> dict[str, Any]:
    """Memory still allocated after ``calls`` set_dps calls (after warm-up and gc), per call."""
    async with TuyaDevice(
        plug.host, plug.device_id, plug.local_key, version=plug.version, port=plug.port
    ) as dev:
        state = bool(dev.dps.get("1", False))
        for _ in range(100):
            state = not state
            await dev.set_dps({"1": state})
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            state = not state
            await dev.set_dps({"1": state})
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    out = {"calls": calls, "retained_bytes_per_call": (after - before) / calls}
    print(f"memory: {out['retained_bytes_per_call']:.0f} B retained per set_dps call", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_set_growth", description=__doc__)
    p.add_argument("--version", default="3.3")
    p.add_argument("--checkpoints", default="0,1000,5000,20000")
    p.add_argument("--sample", type=int, default=200)
    p.add_argument("--memory-calls", type=int, default=2000, help="calls of the memory pass")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    checkpoints = sorted(int(c) for c in args.checkpoints.split(",") if c.strip())
    env = environment()
    print(json.dumps(env))
    with simulator(version=args.version) as plugs:
        rows = asyncio.run(_run(plugs[0], checkpoints, args.sample))
        time.sleep(0.3)  # the plug takes one connection at a time
        memory = asyncio.run(_memory(plugs[0], args.memory_calls))
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "version": args.version,
            "rows": rows,
            "memory": memory,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

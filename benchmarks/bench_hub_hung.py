"""A hung hub (process stopped, SIGSTOP): when HA's ``HubClient`` notices, when it is back.

Usage::

    .venv/bin/python -m benchmarks.bench_hub_hung [--runs 10] [--json out.json]

Each run is one hub firmware process (``esp32/``, MicroPython unix port, no plugs) and a
``HubClient`` with its defaults (ping after 4 s of silence, a hub silent for 10 s dropped,
backoff 0.25 s doubling to 2 s). The runs go concurrently, each stopping its hub at a different
moment after the connection is up. Unlike a network blackhole, the stopped process's kernel still
acknowledges TCP and even completes new connections into the listen backlog; nothing is answered.

Measured per run (loop time, seconds):

* ``gone``: SIGSTOP -> the client's connection is down (at most the silence limit after the last
  record from the hub: the last pong may have come up to 4 s before the stop);
* ``back``: SIGCONT (5-8 s after ``gone``) -> connected again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import summarize_runs
from tests.firmware.conftest import HubProcess


async def one(index: int) -> dict[str, float]:
    """One hub, stopped then continued; the two times in seconds."""
    with tempfile.TemporaryDirectory(prefix="hubhung") as tmp:
        hub = HubProcess(Path(tmp))
        await hub.start()
        assert hub.proc is not None
        pid = hub.proc.pid
        client = hub.client()
        loop = asyncio.get_running_loop()
        events: list[tuple[float, bool]] = []
        client.subscribe_connection(lambda up: events.append((loop.time(), up)))
        try:
            await client.start()
            await client.wait_connected(20)
            await asyncio.sleep(1 + index * 0.37)  # stop at different points of the ping cycle
            t0 = loop.time()
            os.kill(pid, signal.SIGSTOP)
            while not any(not up for _, up in events):  # noqa: ASYNC110 - polling a list
                await asyncio.sleep(0.01)
            gone = next(t for t, up in events if not up) - t0
            await asyncio.sleep(5 + (index % 4) * 0.9)
            t1 = loop.time()
            os.kill(pid, signal.SIGCONT)
            while not any(up and t > t1 for t, up in events):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            back = next(t for t, up in events if up and t > t1) - t1
            return {"gone": round(gone, 2), "back": round(back, 2)}
        finally:
            os.kill(pid, signal.SIGCONT)
            await client.close()
            hub.stop()


async def main_async(runs: int) -> dict[str, Any]:
    """Run ``runs`` hubs concurrently; the per-run results and their summary."""
    results = await asyncio.gather(*(one(i) for i in range(runs)))
    return {**summarize_runs(list(results), ()), "runs": results}


def main() -> None:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args.runs))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Reliability of the direct Tuya client under injected faults (issue 7), with the real defaults.

Usage::

    .venv/bin/python -m benchmarks.bench_reliability [--runs 10] [--versions 3.3,3.5]
        [--scenarios reset,power_off,...] [--json out.json]

Each run builds its own simulated plug (``tuya_sim``), a :class:`tests.faultproxy.FaultProxy` in
front of it and a ``TuyaDevice`` with the library's default timing (heartbeat 10 s, request
timeout 5 s, backoff defaults), all on one event loop; the runs of one scenario execute
concurrently (they are independent plugs on their own ports) so that scenarios lasting a minute
do not take ten. Only constructor arguments that exist in every version of ``TuyaDevice`` are
used, so the same file measures the code before and after the issue-7 changes.

Measured per run (loop time, seconds):

* ``gone``: fault injected -> the client reports the connection down;
* ``back``: fault removed -> the client reports the connection up again;
* commands: ``ok``/``failed`` and ``false_success`` (``set_dps`` returned but the plug did not
  apply it) / ``false_failure`` (raised although the plug applied it);
* ``reconnects_per_min``: connection attempts per minute during the fault (failed ones counted
  from ``subscribe_failure``, successful ones from ``subscribe_connection``);
* ``lock_in``: with version ``auto``, the version found afterwards differs from the plug's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._common import scenarios_cli, summarize_runs
from custom_components.tuya_local_esp.tuya import Command, TuyaDevice, TuyaError
from tests.faultproxy import FaultProxy
from tuya_sim import SimulatedPlug

DEVICE_ID = "bf7a3c9e2d14f8b6ac01"
KEY = "0123456789abcdef"
CONTROL = {Command.CONTROL, Command.CONTROL_NEW}


class Run:
    """One plug + proxy + client, and what happened to it."""

    def __init__(self, version: str, seed: int, *, client_version: str | None = None) -> None:
        self.version = version
        self.client_version = client_version or version
        self.seed = seed
        self.sim = SimulatedPlug(
            device_id=DEVICE_ID, local_key=KEY, version=version, seed=seed, dps={"1": True}
        )
        self.proxy: FaultProxy
        self.dev: TuyaDevice
        self.events: list[tuple[float, bool]] = []
        self.failures: list[float] = []
        self.result: dict[str, Any] = {}

    async def __aenter__(self) -> Run:
        await self.sim.start()
        self.proxy = FaultProxy(self.sim.port)
        await self.proxy.start()
        self.dev = TuyaDevice(
            "127.0.0.1", DEVICE_ID, KEY, version=self.client_version, port=self.proxy.port
        )
        loop = asyncio.get_running_loop()
        self.dev.subscribe_connection(lambda up: self.events.append((loop.time(), up)))
        self.dev.subscribe_failure(lambda _err: self.failures.append(loop.time()))
        await self.dev.start()
        await self.dev.wait_connected(60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dev.close()
        await self.proxy.stop()
        await self.sim.stop()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def attempts_per_min(self, t0: float, t1: float) -> float:
        """Connection attempts (failed or not) per minute between ``t0`` and ``t1``."""
        failed = sum(1 for t in self.failures if t0 <= t < t1)
        made = sum(1 for t, up in self.events if t0 <= t < t1 and up)
        return (failed + made) / ((t1 - t0) / 60)

    async def until(self, up: bool, since: float, within: float) -> float | None:
        """Seconds from ``since`` to the first connection event ``up`` after it (None: never)."""
        deadline = since + within
        while self.now() < deadline:
            for t, state in self.events:
                if t >= since and state is up:
                    return t - since
            await asyncio.sleep(0.02)
        return None

    async def command(self, value: bool) -> None:
        """One switch command: count ok/failed and compare with what the plug applied."""
        try:
            got = await self.dev.set_dps({"1": value})
            ok = got.get("1") is value
        except TuyaError:
            ok = False
        applied = self.sim.dps["1"] is value
        key = "ok" if ok else "failed"
        self.result[key] = self.result.get(key, 0) + 1
        if ok and not applied:
            self.result["false_success"] = self.result.get("false_success", 0) + 1
        if not ok and applied:
            self.result["false_failure"] = self.result.get("false_failure", 0) + 1


# ---------------------------------------------------------------- scenarios
async def s_reset(run: Run) -> None:
    t0 = run.now()
    run.proxy.reset()
    run.result["gone"] = await run.until(False, t0, 30)
    run.result["back"] = await run.until(True, t0, 120)
    await run.command(not run.sim.dps["1"])


async def _power(run: Run, off: float, *, silent: bool) -> None:
    t0 = run.now()
    if silent:
        await run.proxy.blackhole(accepting=False)  # no FIN, SYNs unanswered
    else:
        await run.proxy.power_off()
    run.result["gone"] = await run.until(False, t0, off)
    await asyncio.sleep(max(0.0, t0 + off - run.now()))
    t1 = run.now()
    run.proxy.drop_all(reset=True)  # a rebooted plug knows no old connection
    await run.proxy.power_on()
    run.result["back"] = await run.until(True, t1, 180)
    run.result["reconnects_per_min"] = run.attempts_per_min(t0, t1)
    await run.command(not run.sim.dps["1"])


async def s_power_off(run: Run) -> None:
    """Switched off at the wall for 20 s; connections refused meanwhile (RST)."""
    await _power(run, 20.0, silent=False)


async def s_power_off_silent(run: Run) -> None:
    """Switched off for 20 s with no RST/FIN: SYNs go unanswered (a real Wi-Fi plug)."""
    await _power(run, 20.0, silent=True)


async def s_blackhole(run: Run) -> None:
    """The plug stops answering on an open connection (hung firmware) for 20 s."""
    t0 = run.now()
    await run.proxy.blackhole(accepting=True)
    run.result["gone"] = await run.until(False, t0, 20)
    await asyncio.sleep(max(0.0, t0 + 20 - run.now()))
    t1 = run.now()
    run.proxy.drop_all()
    await run.proxy.power_on()
    run.result["back"] = await run.until(True, t1, 180)
    await run.command(not run.sim.dps["1"])


async def s_ack_bad_crc(run: Run) -> None:
    """Five switch commands whose ACK arrives with a bad CRC."""
    for _ in range(5):
        run.proxy.corrupt(1, CONTROL)
        await run.command(not run.sim.dps["1"])


async def s_command_lost(run: Run) -> None:
    """Five switch commands that never reach the plug."""
    for _ in range(5):
        run.proxy.lose_up(1, CONTROL)
        await run.command(not run.sim.dps["1"])


async def s_lost_reply(run: Run) -> None:
    """Ten plug restarts, each losing one frame from the plug at a random point; version auto."""
    rng = random.Random(run.seed)
    for _ in range(10):
        run.proxy.clear()  # one lost frame per restart
        run.proxy.lose(1, skip=rng.randrange(6))
        t0 = run.now()
        await run.proxy.power_off()  # RST, then refused: a reconnect, not a rival client
        await run.until(False, t0, 30)
        await asyncio.sleep(0.5)
        await run.proxy.power_on()
        await run.until(True, t0, 120)
        await run.command(not run.sim.dps["1"])
    run.result["lock_in"] = int(run.dev.version != run.version)


async def s_second_client(run: Run) -> None:
    """For 60 s another client takes the plug 1 s after each of our connections."""
    t0 = run.now()
    accepted0 = run.proxy.stats.accepted
    run.proxy.second_client(1.0)
    await asyncio.sleep(60)
    run.result["reconnects_per_min"] = run.attempts_per_min(t0, run.now())
    run.result["accepted_per_min"] = (run.proxy.stats.accepted - accepted0) / (
        (run.now() - t0) / 60
    )
    t1 = run.now()
    run.proxy.second_client(None)
    run.result["back"] = await run.until(True, t1, 120) if not run.dev.connected else 0.0
    await run.command(not run.sim.dps["1"])


async def s_ignores_heartbeat(run: Run) -> None:
    """For 60 s the plug answers everything but heartbeats."""
    t0 = run.now()
    run.proxy.ignore_cmds = {Command.HEART_BEAT}
    await asyncio.sleep(60)
    run.result["drops_per_min"] = len([e for e in run.events if e[0] >= t0 and not e[1]])
    run.proxy.ignore_cmds = set()
    await run.command(not run.sim.dps["1"])


async def s_slow(run: Run) -> None:
    """Five commands while every chunk from the plug is delayed by 1 s."""
    run.proxy.slow(1.0)
    for _ in range(5):
        await run.command(not run.sim.dps["1"])


SCENARIOS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "reset": s_reset,
    "power_off": s_power_off,
    "power_off_silent": s_power_off_silent,
    "blackhole": s_blackhole,
    "ack_bad_crc": s_ack_bad_crc,
    "command_lost": s_command_lost,
    "lost_reply_auto": s_lost_reply,
    "second_client": s_second_client,
    "ignores_heartbeat": s_ignores_heartbeat,
    "slow_1s": s_slow,
}


async def one(name: str, version: str, seed: int) -> dict[str, Any]:
    auto = name == "lost_reply_auto"
    async with Run(version, seed, client_version="auto" if auto else None) as run:
        try:
            await SCENARIOS[name](run)
        except Exception as err:  # a benchmark records, it does not stop
            run.result["error"] = repr(err)
        return run.result


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    return summarize_runs(results, ("ok", "failed", "false_success", "false_failure", "lock_in"))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for version in args.versions.split(","):
        for name in args.scenarios.split(","):
            started = time.monotonic()
            results = await asyncio.gather(*(one(name, version, 100 + i) for i in range(args.runs)))
            summary = summarize(list(results))
            summary["wall_s"] = round(time.monotonic() - started, 1)
            report[f"{name}@{version}"] = summary
            print(name, version, json.dumps(summary), flush=True)
    return report


def main() -> None:
    scenarios_cli(__doc__ or "", SCENARIOS, main_async)


if __name__ == "__main__":
    main()

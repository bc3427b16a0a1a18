"""Reliability of the ESP32 hub path under injected faults (issue 7 item 7), with real defaults.

Usage::

    .venv/bin/python -m benchmarks.bench_reliability_hub [--runs 10] [--versions 3.3,3.5]
        [--scenarios reset,power_off,...] [--json benchmarks/results/reliability_hub.json]

Each run is one simulated plug (``tuya_sim``) behind a :class:`tests.faultproxy.FaultProxy`, the
hub firmware (``esp32/``, MicroPython unix port, its default timing: heartbeat 10 s, reply and
connect timeouts 5 s, backoff 1 s doubling to 60 s) holding that plug, a raw-byte ``FaultProxy``
in front of the hub and Home Assistant's ``HubClient`` with its defaults (request timeout 15 s,
ping every 30 s, backoff 0.25 s doubling to 2 s). The runs of one scenario and both versions run
concurrently (independent processes and ports).

Measured per run (loop time, seconds):

* ``gone``: fault injected -> HA sees the plug offline (a ``state`` push with ``online`` false
  for plug-side faults; the connection to the hub down for HA-side faults);
* ``back``: fault removed -> HA sees the plug online again (through a connected hub);
* commands: ``ok``/``failed``, ``false_success`` (``set`` returned but the plug did not apply
  it) and ``false_failure`` (raised although the plug applied it);
* ``reconnects_per_min``: connections (or attempts) per minute during the fault, counted at
  the proxy in front of the plug (plug side) or of the hub (HA side), refused ones from the hub
  log (plug side) ;
* ``drops_per_min``: offline pushes per minute (a plug ignoring heartbeats);
* ``wrong_key``: the plug is removed and added again with a wrong local key (through a second,
  bare hub connection, :class:`tests.firmware.rawhub.RawHub`) while it pushes a meter value
  every 0.5 s (a 3.3 plug does not answer frames it cannot decrypt: its pushes are the frames
  that arrive; a 3.5 plug hangs up on the session-key request); ``gone`` is the time from the
  ``add`` to the first ``state`` push with ``fault: "key"`` (``docs/hub-protocol.md`` §7.1),
  ``other_faults`` counts pushes with another non-null ``fault`` meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks._common import scenarios_cli, summarize_runs
from custom_components.tuya_local_esp.hub import HubClient, HubError, StateUpdate
from custom_components.tuya_local_esp.tuya import Command
from tests.faultproxy import FaultProxy
from tests.firmware.conftest import KEYS, SECRET, HubProcess
from tests.firmware.rawhub import RawHub
from tuya_sim import SimulatedPlug

CONTROL = {Command.CONTROL, Command.CONTROL_NEW}
OUTAGE = 20.0  # seconds of power off / blackhole
WINDOW = 30.0  # seconds of ignored heartbeats
RIVAL_WINDOW = 60.0  # seconds of a rival client (the polite wait is 15 s: a minute shows the rate)


class Run:
    """One plug + proxy + hub + proxy + HA client, and what happened to it."""

    def __init__(self, version: str, seed: int, workdir: Path) -> None:
        self.version = version
        self.sim = SimulatedPlug(
            device_id=f"bf{version.replace('.', '')}bench{seed:03d}abcdefg",
            local_key=KEYS[0],
            version=version,
            seed=seed,
            dps={"1": True},
        )
        self.workdir = workdir
        self.proxy: FaultProxy
        self.ha_proxy: FaultProxy
        self.hub: HubProcess
        self.client: HubClient
        self.plug_events: list[tuple[float, bool]] = []
        self.link_events: list[tuple[float, bool]] = []
        self.result: dict[str, Any] = {}

    @property
    def dev(self) -> str:
        return self.sim.device_id

    async def __aenter__(self) -> Run:
        await self.sim.start()
        self.proxy = FaultProxy(self.sim.port)
        await self.proxy.start()
        record = {
            "id": self.dev,
            "key": KEYS[0],
            "host": "127.0.0.1",
            "port": self.proxy.port,
            "ver": self.version,
            "name": "bench",
        }
        self.hub = HubProcess(self.workdir, plugs=[record], log_level="info")
        await self.hub.start()
        self.ha_proxy = FaultProxy(self.hub.port, frames=False)
        await self.ha_proxy.start()
        self.client = HubClient("127.0.0.1", self.ha_proxy.port, SECRET)
        self.client.subscribe(self._on_state)
        self.client.subscribe_connection(lambda up: self.link_events.append((self.now(), up)))
        await self.client.start()
        await self.client.wait_connected(60)
        await self.wait(self.online, 60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.ha_proxy.stop()
        self.hub.stop()
        await self.proxy.stop()
        await self.sim.stop()
        if "Traceback" in self.hub.log():
            self.result["tracebacks"] = self.hub.log().count("Traceback")

    def _on_state(self, update: StateUpdate) -> None:
        if update.device_id == self.dev:
            self.plug_events.append((self.now(), update.online))

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def online(self) -> bool:
        inv = self.client.inventory
        return bool(inv is not None and self.client.connected and inv.plugs[self.dev].online)

    async def wait(self, cond: Callable[[], bool], within: float) -> bool:
        deadline = self.now() + within
        while not cond():
            if self.now() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def until_offline(
        self, since: float, within: float, *, link: bool = False
    ) -> float | None:
        """Seconds from ``since`` to the first offline push (or link down) after it."""
        events = self.link_events if link else self.plug_events
        deadline = since + within
        while self.now() < deadline:
            for t, up in events:
                if t >= since and not up:
                    return t - since
            await asyncio.sleep(0.02)
        return None

    async def until_back(self, since: float, within: float) -> float | None:
        """Seconds from ``since`` until HA sees the plug online through a connected hub."""
        return self.now() - since if await self.wait(self.online, within) else None

    def ended(self) -> int:
        return self.hub.log().count(f"{self.dev} connection ended")

    async def command(self, value: bool) -> None:
        """One switch command through the hub: ok/failed against what the plug applied."""
        try:
            got = await self.client.set_dps(self.dev, {"1": value})
            ok = got.get("1") is value
        except HubError:
            ok = False
        applied = self.sim.dps["1"] is value
        key = "ok" if ok else "failed"
        self.result[key] = self.result.get(key, 0) + 1
        if ok and not applied:
            self.result["false_success"] = self.result.get("false_success", 0) + 1
        if not ok and applied:
            self.result["false_failure"] = self.result.get("false_failure", 0) + 1

    async def settle(self) -> None:
        """Wait until the plug is usable again before the next command (bounded)."""
        await self.wait(self.online, 60)


# ---------------------------------------------------------------- plug side
async def s_reset(run: Run) -> None:
    t0 = run.now()
    run.proxy.reset()
    run.result["gone"] = await run.until_offline(t0, 60)
    run.result["back"] = await run.until_back(t0, 120)
    await run.command(not run.sim.dps["1"])


async def _power(run: Run, *, silent: bool) -> None:
    t0 = run.now()
    ended0 = run.ended()
    if silent:
        await run.proxy.blackhole(accepting=False)  # no FIN, SYNs unanswered
    else:
        await run.proxy.power_off()
    run.result["gone"] = await run.until_offline(t0, OUTAGE)
    await asyncio.sleep(max(0.0, t0 + OUTAGE - run.now()))
    t1 = run.now()
    run.result["reconnects_per_min"] = (run.ended() - ended0) / ((t1 - t0) / 60)
    run.proxy.drop_all(reset=True)  # a rebooted plug knows no old connection
    await run.proxy.power_on()
    run.result["back"] = await run.until_back(t1, 180)
    await run.command(not run.sim.dps["1"])


async def s_power_off(run: Run) -> None:
    """The plug is off for 20 s; connections refused meanwhile (RST)."""
    await _power(run, silent=False)


async def s_power_off_silent(run: Run) -> None:
    """The plug is off for 20 s with no RST/FIN: SYNs go unanswered."""
    await _power(run, silent=True)


async def s_blackhole(run: Run) -> None:
    """The plug stops answering on an open connection for 20 s."""
    t0 = run.now()
    await run.proxy.blackhole(accepting=True)
    run.result["gone"] = await run.until_offline(t0, 60)
    await asyncio.sleep(max(0.0, t0 + OUTAGE - run.now()))
    t1 = run.now()
    run.proxy.drop_all()
    await run.proxy.power_on()
    run.result["back"] = await run.until_back(t1, 180)
    await run.command(not run.sim.dps["1"])


async def _commands(run: Run, fault: Callable[[], None]) -> None:
    for _ in range(5):
        fault()
        await run.command(not run.sim.dps["1"])
        await run.settle()


async def s_ack_bad_crc(run: Run) -> None:
    """Five commands whose ACK arrives with a bad CRC/tag."""
    await _commands(run, lambda: run.proxy.corrupt(1, CONTROL))


async def s_command_lost(run: Run) -> None:
    """Five commands that never reach the plug."""
    await _commands(run, lambda: run.proxy.lose_up(1, CONTROL))


async def s_ack_lost(run: Run) -> None:
    """Five commands whose ACK is lost (the STATUS push arrives)."""
    await _commands(run, lambda: run.proxy.lose(1, CONTROL))


async def s_push_lost(run: Run) -> None:
    """Five commands whose STATUS push is lost (the ACK arrives)."""
    await _commands(run, lambda: run.proxy.lose(1, {Command.STATUS}))


async def s_slow(run: Run) -> None:
    """Five commands while every chunk from the plug is 1 s late."""
    run.proxy.slow(1.0)
    await _commands(run, lambda: None)


async def s_second_client(run: Run) -> None:
    """For 60 s another client takes the plug 1 s after each of the hub's connections."""
    t0 = run.now()
    accepted0 = run.proxy.stats.accepted
    run.proxy.second_client(1.0)
    await asyncio.sleep(RIVAL_WINDOW)
    run.result["reconnects_per_min"] = (run.proxy.stats.accepted - accepted0) / (
        (run.now() - t0) / 60
    )
    t1 = run.now()
    run.proxy.second_client(None)
    run.result["back"] = await run.until_back(t1, 120)
    await run.command(not run.sim.dps["1"])


async def s_ignores_heartbeat(run: Run) -> None:
    """For 30 s the plug answers everything but heartbeats."""
    t0 = run.now()
    run.proxy.ignore_cmds = {Command.HEART_BEAT}
    await asyncio.sleep(WINDOW)
    drops = len([e for e in run.plug_events if e[0] >= t0 and not e[1]])
    run.result["drops_per_min"] = drops / ((run.now() - t0) / 60)
    run.proxy.ignore_cmds = set()
    await run.settle()
    await run.command(not run.sim.dps["1"])


async def s_wrong_key(run: Run) -> None:
    """The plug is re-added with a wrong local key: time until the hub reports ``key``."""
    raw = await RawHub.connect(run.hub.port)
    try:
        removed = await raw.request("remove", id=run.dev)
        assert removed["ok"], removed
        record = {
            "id": run.dev,
            "key": KEYS[1],
            "host": "127.0.0.1",
            "port": run.proxy.port,
            "ver": run.version,
            "name": "bench",
        }
        t0 = run.now()
        added = await raw.request("add", plug=record)
        assert added["ok"], added
        run.result["gone"] = None
        deadline = t0 + 60
        watts = 0
        next_push = t0
        while run.now() < deadline:
            if run.now() >= next_push:
                watts += 1
                run.sim.set_dps_local({"19": watts})  # pushed to every open connection
                next_push += 0.5
            with contextlib.suppress(TimeoutError):
                raw.pushes.append(await raw.recv(max(0.05, next_push - run.now())))
            faults = [m.get("fault") for m in raw.pushes if m.get("id") == run.dev]
            if "key" in faults:
                run.result["gone"] = run.now() - t0
                break
        faults = [m.get("fault") for m in raw.pushes if m.get("id") == run.dev]
        other = sum(1 for f in faults if f not in (None, "key"))
        run.result["other_faults"] = other
    finally:
        await raw.close()


# ---------------------------------------------------------------- HA side
async def s_ha_reset(run: Run) -> None:
    t0 = run.now()
    run.ha_proxy.reset()
    run.result["gone"] = await run.until_offline(t0, 60, link=True)
    run.result["back"] = await run.until_back(t0, 120)
    await run.command(not run.sim.dps["1"])


async def s_ha_blackhole(run: Run) -> None:
    """The hub stops answering on HA's open connection (Wi-Fi gone) until HA notices + 5 s."""
    t0 = run.now()
    await run.ha_proxy.blackhole(accepting=False)
    run.result["gone"] = await run.until_offline(t0, 120, link=True)
    await asyncio.sleep(5)
    t1 = run.now()
    run.ha_proxy.drop_all(reset=True)
    await run.ha_proxy.power_on()
    run.result["back"] = await run.until_back(t1, 180)
    await run.command(not run.sim.dps["1"])


async def s_hub_power_off(run: Run) -> None:
    """The hub loses power for 20 s (process killed, started again)."""
    t0 = run.now()
    accepted0 = run.ha_proxy.stats.accepted
    proc = run.hub.proc
    assert proc is not None
    proc.kill()
    await asyncio.to_thread(proc.wait, 10)
    run.result["gone"] = await run.until_offline(t0, 60, link=True)
    await asyncio.sleep(max(0.0, t0 + OUTAGE - run.now()))
    t1 = run.now()
    run.result["reconnects_per_min"] = (run.ha_proxy.stats.accepted - accepted0) / ((t1 - t0) / 60)
    await run.hub.start()
    run.result["back"] = await run.until_back(t1, 180)
    await run.command(not run.sim.dps["1"])


async def s_ha_slow(run: Run) -> None:
    """Five commands while every chunk from the hub to HA is 1 s late."""
    run.ha_proxy.slow(1.0)
    await _commands(run, lambda: None)


SCENARIOS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "reset": s_reset,
    "power_off": s_power_off,
    "power_off_silent": s_power_off_silent,
    "blackhole": s_blackhole,
    "ack_bad_crc": s_ack_bad_crc,
    "ack_lost": s_ack_lost,
    "push_lost": s_push_lost,
    "command_lost": s_command_lost,
    "slow_1s": s_slow,
    "second_client": s_second_client,
    "ignores_heartbeat": s_ignores_heartbeat,
    "wrong_key": s_wrong_key,
    "ha_reset": s_ha_reset,
    "ha_blackhole": s_ha_blackhole,
    "hub_power_off": s_hub_power_off,
    "ha_slow_1s": s_ha_slow,
}


async def one(name: str, version: str, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubbench") as tmp:
        run = Run(version, seed, Path(tmp))
        try:
            async with run:
                try:
                    await SCENARIOS[name](run)
                except Exception as err:  # a benchmark records, it does not stop
                    run.result["error"] = repr(err)
        except Exception as err:  # set-up failed: recorded
            run.result["error"] = f"setup: {err!r}"
        return run.result


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    return summarize_runs(
        results, ("ok", "failed", "false_success", "false_failure", "tracebacks", "other_faults")
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    versions = args.versions.split(",")
    for name in args.scenarios.split(","):
        started = time.monotonic()
        results = await asyncio.gather(
            *(one(name, v, 100 + i) for v in versions for i in range(args.runs))
        )
        for k, version in enumerate(versions):
            summary = summarize(list(results[k * args.runs : (k + 1) * args.runs]))
            summary["wall_s"] = round(time.monotonic() - started, 1)
            report[f"{name}@{version}"] = summary
            print(name, version, json.dumps(summary), flush=True)
    return report


def main() -> None:
    scenarios_cli(__doc__ or "", SCENARIOS, main_async)


if __name__ == "__main__":
    main()

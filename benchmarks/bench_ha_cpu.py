"""Home Assistant CPU time with many directly connected plugs in steady state.

Usage::

    .venv/bin/python -m benchmarks.bench_ha_cpu [--plugs 500] [--seconds 60] [--warmup 15]
        [--json out.json]

One simulator subprocess (``python -m tuya_sim --plugs N``, its own process: its CPU is not
counted) serves N protocol 3.3 plugs. This process runs one Home Assistant test instance
(``pytest_homeassistant_custom_component``'s ``async_test_home_assistant``) with one config
entry per plug (switch, voltage, current, power and energy entities each), waits until every
plug is available, switches them all on (the simulator starts them off), lets the warm-up pass,
then measures over ``--seconds`` of steady state:

* ``cpu_s``: process CPU seconds (user + system, ``time.process_time``) of the whole process,
  i.e. Home Assistant plus the integration's Tuya clients (heartbeats and power refreshes);
* ``state_writes``: ``state_changed`` events fired (entity states that changed);
* ``unchanged_rewrites``: ``state_reported`` events: an entity wrote its state again unchanged;
* ``heartbeats_by_second_mod_10``: how the plugs' keep-alive timers are spread over the
  heartbeat period (heartbeats sent per whole second, modulo 10);
* ``loop_lag_ms``: how late a 50 ms timer of the event loop fires (p50, p99, max): the time
  other work of Home Assistant waits behind a burst.

Run it on two checkouts to compare (the script only uses config entries and states, which both
sides share).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import sys
import tempfile
import time
from typing import Any

from homeassistant import loader
from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.tuya_local_esp import discovery
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.tuya import client as tuya_client

from ._common import PlugInfo, environment, loadavg, percentile, simulator, write_json

#: Period of the event-loop lag probe (s).
LAG_TICK = 0.05


def _entry(i: int, plug: PlugInfo) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Plug {i}",
        unique_id=plug.device_id,
        data={
            "transport": "direct",
            "host": plug.host,
            "port": plug.port,
            "device_id": plug.device_id,
            "local_key": plug.local_key,
            "protocol_version": plug.version,
            "name": f"Plug {i}",
            "dp_ids": ["1", "17", "18", "19", "20"],
        },
    )


async def _wait_switches(hass: HomeAssistant, count: int, states: set[str], within: float) -> float:
    t0 = time.perf_counter()
    deadline = t0 + within
    while True:
        done = sum(1 for s in hass.states.async_all("switch") if s.state in states)
        if done >= count:
            return time.perf_counter() - t0
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {done} of {count} switches are {states}")
        await asyncio.sleep(0.5)


async def measure(
    count: int, seconds: float, warmup: float, profile: str | None = None
) -> dict[str, Any]:
    """Set up ``count`` plugs in one Home Assistant and measure ``seconds`` of steady state.

    With ``profile`` the measured window also runs under ``cProfile`` (its figures are then
    inflated by the profiler) and the statistics are written to that file.
    """
    heartbeats: collections.Counter[int] = collections.Counter()
    original_heartbeat = tuya_client.TuyaDevice.heartbeat

    async def counting_heartbeat(self: tuya_client.TuyaDevice) -> None:
        heartbeats[int(time.time()) % 10] += 1
        await original_heartbeat(self)

    tuya_client.TuyaDevice.heartbeat = counting_heartbeat  # type: ignore[method-assign]
    discovery.LISTEN_PORTS = (0, 0, 0)
    os.environ[discovery.TARGETS_ENV] = "127.0.0.1"
    with (
        simulator(version="3.3", plugs=count, idle_timeout=3600) as plugs,
        tempfile.TemporaryDirectory() as config_dir,
    ):
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            for i, plug in enumerate(plugs):
                _entry(i, plug).add_to_hass(hass)
            t0 = time.perf_counter()
            assert await async_setup_component(hass, DOMAIN, {})
            await hass.async_block_till_done()
            ready_s = await _wait_switches(hass, count, {"on", "off"}, 120)
            # the simulated plugs start switched off: switch them on, so that they draw power
            await hass.services.async_call(
                "switch",
                "turn_on",
                {"entity_id": [s.entity_id for s in hass.states.async_all("switch")]},
                blocking=True,
            )
            await _wait_switches(hass, count, {"on"}, 60)
            setup_s = time.perf_counter() - t0
            await asyncio.sleep(warmup)
            writes = 0

            @callback  # a plain function would run in the executor, one thread job per event
            def _count(_: Event) -> None:
                nonlocal writes
                writes += 1

            reported = 0

            @callback
            def _count_reported(_: Event) -> None:
                nonlocal reported
                reported += 1

            @callback
            def _every(_: Any) -> bool:
                return True

            unsubs = [
                hass.bus.async_listen(EVENT_STATE_CHANGED, _count),
                hass.bus.async_listen(EVENT_STATE_REPORTED, _count_reported, event_filter=_every),
            ]
            heartbeats.clear()
            lags: list[float] = []
            loop = asyncio.get_running_loop()

            async def _probe_lag() -> None:
                while True:
                    due = loop.time() + LAG_TICK
                    await asyncio.sleep(LAG_TICK)
                    lags.append(loop.time() - due)

            lag_task = asyncio.create_task(_probe_lag())
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            lag_task.cancel()
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            for unsub in unsubs:
                unsub()
            spread = dict(sorted(heartbeats.items()))
            for entry in hass.config_entries.async_entries(DOMAIN):
                await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()
            await hass.async_stop(force=True)
    return {
        "plugs": count,
        "setup_s": round(setup_s, 2),
        "all_available_after_s": round(ready_s, 2),
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / wall, 4),
        "state_writes": writes,
        "state_writes_per_s": round(writes / wall, 1),
        "unchanged_rewrites": reported,
        "heartbeats": sum(spread.values()),
        "heartbeats_by_second_mod_10": spread,
        "heartbeat_peak_share": round(
            max(spread.values(), default=0) / max(1, sum(spread.values())), 3
        ),
        "loop_lag_ms": {
            "p50": round(percentile(sorted(lags), 50) * 1000, 2),
            "p99": round(percentile(sorted(lags), 99) * 1000, 2),
            "max": round(max(lags, default=0.0) * 1000, 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ha_cpu", description=__doc__)
    p.add_argument("--plugs", type=int, default=500)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--label", default="", help="a name for this checkout in the output")
    p.add_argument("--json", help="write the result to this file")
    p.add_argument("--profile", help="write cProfile statistics of the window to this file")
    p.add_argument(
        "--no-spread",
        action="store_true",
        help="every plug with the same heartbeat period (the integration's INTERVAL_SPREAD = 0)",
    )
    args = p.parse_args(argv)
    if args.no_spread:
        from custom_components.tuya_local_esp import coordinator

        coordinator.INTERVAL_SPREAD = 0.0  # type: ignore[misc]
    env = environment()
    result = asyncio.run(measure(args.plugs, args.seconds, args.warmup, args.profile))
    result["label"] = args.label
    print(json.dumps(result), flush=True)
    write_json(args.json, {"environment": {**env, "loadavg_at_end": loadavg()}, "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())

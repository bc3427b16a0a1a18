"""Home Assistant start-up with unreachable plugs and hub, and time until a late plug is available.

Usage::

    .venv/bin/python -m benchmarks.bench_ha_unreachable [--silent 5] [--late-after 2]
        [--reps 3] [--json out.json]

One Home Assistant test instance (``async_test_home_assistant``) per repetition, with:

* ``--silent`` direct plug entries whose plug accepts TCP and never answers (the worst case:
  every request waits for its timeout) and one whose port refuses connections (switched off);
* one hub entry (version 1.1 data, a cached plug) whose hub refuses connections.

Measured:

* ``setup_s``: wall time of ``async_setup_component`` + ``async_block_till_done``, i.e. how long
  these entries hold up Home Assistant's start-up (they should not: connections are opened in
  the background);
* ``late_available_s``: the switched-off plug is started ``--late-after`` seconds after set-up
  (a ``tuya_sim`` simulator on its port); time from its start until its switch is ``on``
  (reconnection backoff plus the first status), with no other help (no broadcast heard).

Run it on two checkouts to compare; only config entries and states are used, which both share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from homeassistant import loader
from homeassistant.core import Event, EventStateChangedData, callback
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.tuya_local_esp import discovery
from custom_components.tuya_local_esp.const import DOMAIN
from tests.faultproxy import port_outside_ephemeral_range
from tuya_sim import SimulatedPlug

KEY = "0123456789abcdef"
LATE_ID = "bflateplug0000000000"


async def _silent_server() -> asyncio.Server:
    """Accepts connections and never says anything."""

    async def _hold(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    return await asyncio.start_server(_hold, "127.0.0.1", 0)


def _plug_entry(device_id: str, port: int, name: str) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=device_id,
        title=name,
        data={
            "transport": "direct",
            "host": "127.0.0.1",
            "port": port,
            "device_id": device_id,
            "local_key": KEY,
            "protocol_version": "3.3",
            "name": name,
            "dp_ids": ["1"],
        },
    )


def _hub_entry(port: int) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id="benchhub",
        title="Bench hub",
        minor_version=1,
        data={
            "transport": "hub",
            "host": "127.0.0.1",
            "port": port,
            "secret": "bench-secret-0123456789abcdef",
            "hub_id": "benchhub",
            "plugs": [{"id": "bfhubplug000000000000", "name": "Hub plug", "ver": "3.3"}],
        },
    )


async def one_run(silent: int, late_after: float) -> dict[str, float]:
    """One Home Assistant start; returns ``setup_s`` and ``late_available_s``."""
    discovery.LISTEN_PORTS = (0, 0, 0)  # no UDP ports of the host are needed
    servers = [await _silent_server() for _ in range(silent)]
    late_port = port_outside_ephemeral_range()
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            for i, server in enumerate(servers):
                port = server.sockets[0].getsockname()[1]
                _plug_entry(f"bfsilent{i:02d}000000000000", port, f"Silent {i}").add_to_hass(hass)
            _plug_entry(LATE_ID, late_port, "Late").add_to_hass(hass)
            _hub_entry(port_outside_ephemeral_range()).add_to_hass(hass)
            t0 = time.perf_counter()
            assert await async_setup_component(hass, DOMAIN, {})
            await hass.async_block_till_done()
            setup_s = time.perf_counter() - t0
            on = asyncio.Event()

            @callback
            def _changed(event: Event[EventStateChangedData]) -> None:
                if (new := event.data["new_state"]) is not None and new.state == "on":
                    on.set()

            unsub = async_track_state_change_event(hass, "switch.late", _changed)
            await asyncio.sleep(late_after)  # the plug is switched on later
            async with SimulatedPlug(
                device_id=LATE_ID, local_key=KEY, version="3.3", port=late_port, dps={"1": True}
            ):
                t1 = time.perf_counter()
                async with asyncio.timeout(120):
                    await on.wait()
                late_s = time.perf_counter() - t1
            unsub()
            for entry in hass.config_entries.async_entries(DOMAIN):
                await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()
            await hass.async_stop(force=True)
    for server in servers:
        server.close()
    return {"setup_s": setup_s, "late_available_s": late_s}


def main(argv: list[str] | None = None) -> int:
    """Run the repetitions and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silent", type=int, default=5)
    parser.add_argument("--late-after", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    runs = [asyncio.run(one_run(args.silent, args.late_after)) for _ in range(args.reps)]
    result: dict[str, Any] = {
        "silent_plugs": args.silent,
        "late_after_s": args.late_after,
        "runs": runs,
        "setup_s_median": statistics.median(r["setup_s"] for r in runs),
        "late_available_s_median": statistics.median(r["late_available_s"] for r in runs),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

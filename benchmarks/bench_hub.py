"""Latency added by the hub: command to confirmed state, direct vs through the hub firmware.

Usage::

    .venv/bin/python -m benchmarks.bench_hub [--versions 3.3,3.4,3.5] [--n 1000] [--rounds 5]
        [--warmup 20] [--push-n 500] [--source] [--heapsize 96k]
        [--firmware-rev HEAD|worktree] [--json out.json]

Three kinds of process, all on loopback:

* the plugs: ``python -m tuya_sim`` (one subprocess per protocol version, two plugs: one for
  the direct client, one behind the hub; a plug accepts one connection at a time);
* the hub: ``esp32/main.py`` under the MicroPython unix port, modules precompiled with
  ``mpy-cross -march=x64`` as deployed (``--source`` runs the ``.py`` files instead), with
  ``-X heapsize=96k`` (about the heap of an ESP32 with Wi-Fi up, so garbage collections come as
  often as there; ``--heapsize default`` gives the unix port's 2 MiB), with
  ``refresh_s`` 0 (no periodic UPDATEDPS to collide with a measurement) and heartbeats every
  10 s, like the direct client;
* this process: the clients under test.

Measured ("command to confirmed state", ``time.perf_counter()`` around one call):

* **direct**: ``await TuyaDevice.set_dps({"1": v})``: CONTROL -> ACK -> STATUS push with DP 1.
* **hub**: ``await HubClient.set_dps(id, {"1": v})``: hub-channel ``set`` record -> hub sends
  CONTROL -> ACK -> STATUS -> hub pushes ``state`` and answers ``result`` with the confirmed DPs.
* **ping**: ``await HubClient.ping()``: one hub-channel round trip, no plug involved.
* **firmware CPU per set**: the hub process's user+system CPU time (``/proc/<pid>/stat``) over
  the measured ``set`` calls divided by their number, user (interpreter) and system (Linux TCP
  stack) time separately (10 ms clock ticks, so it is only meaningful summed over hundreds of
  calls; the hub's idle 0.5 s tick is included).

Blocks alternate (direct, hub; then hub, direct; ...): each block runs ``--warmup`` unmeasured
calls and ``n / rounds`` measured ones. The direct client connects per block (as in
``bench_latency``); the hub client stays connected for the whole version, as Home Assistant does.

State pushes (``--push-n``): a change made on the plug itself (``SimulatedPlug.set_dps_local``,
a button press) can only be triggered in the simulator's own process, so this part runs two
``SimulatedPlug`` objects inside this benchmark's event loop (the hub is still a separate
process). Timer: from just before ``set_dps_local`` (which encodes the STATUS frame and writes it
to the socket synchronously) to the subscriber callback: ``TuyaDevice.subscribe`` (direct) or
``HubClient.subscribe`` (through the hub). The simulator shares the event loop with the client
here, so its encoding time (tens of µs) is inside both figures. The hub's CPU time per push is
recorded as for ``set``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from custom_components.tuya_local_esp.hub import HubClient, StateUpdate
from custom_components.tuya_local_esp.tuya import TuyaDevice
from tuya_sim import SimulatedPlug
from tuya_sim.__main__ import generate_credentials

from ._common import HOST, PlugInfo, environment, loadavg, simulator, summarize, write_json
from ._hub import (
    compile_firmware,
    firmware_sources,
    micropython_version,
    plug_record,
    running_hub,
)

VERSIONS = ("3.3", "3.4", "3.5")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


async def _direct_block(plug: PlugInfo, warmup: int, n: int) -> tuple[list[float], int]:
    samples: list[float] = []
    errors = 0
    clock = time.perf_counter
    async with TuyaDevice(
        plug.host, plug.device_id, plug.local_key, version=plug.version, port=plug.port
    ) as dev:
        state = bool(dev.dps.get("1", False))
        for _ in range(warmup):
            state = not state
            await dev.set_dps({"1": state})
        for _ in range(n):
            state = not state
            t0 = clock()
            dps = await dev.set_dps({"1": state})
            samples.append(clock() - t0)
            if dps.get("1") is not state:
                errors += 1
    return samples, errors


async def _hub_block(
    client: HubClient, device_id: str, warmup: int, n: int, pid: int
) -> tuple[list[float], list[float], int, tuple[float, float]]:
    samples: list[float] = []
    pings: list[float] = []
    errors = 0
    clock = time.perf_counter
    inv = client.inventory
    state = bool(inv.plugs[device_id].dps.get("1", False)) if inv else False
    for _ in range(warmup):
        state = not state
        await client.set_dps(device_id, {"1": state})
        await client.ping()
    cpu0 = cpu_seconds(pid)
    for _ in range(n):
        state = not state
        t0 = clock()
        dps = await client.set_dps(device_id, {"1": state})
        samples.append(clock() - t0)
        if dps.get("1") is not state:
            errors += 1
    cpu1 = cpu_seconds(pid)
    cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
    for _ in range(n):
        t0 = clock()
        await client.ping()
        pings.append(clock() - t0)
    return samples, pings, errors, cpu


async def _set_latency(
    version: str, fw_dir: Path, *, heapsize: str | None, n: int, rounds: int, warmup: int, seed: int
) -> dict[str, Any]:
    per_block = max(1, n // rounds)
    direct: list[float] = []
    hub: list[float] = []
    pings: list[float] = []
    errors = {"direct": 0, "hub": 0}
    hub_user = hub_sys = 0.0
    hub_calls = 0
    with simulator(version=version, plugs=2, seed=seed) as plugs:
        direct_plug, hub_plug = plugs
        rec = plug_record(
            hub_plug.host,
            hub_plug.port,
            hub_plug.device_id,
            hub_plug.local_key,
            version=version,
            name="bench",
        )
        async with running_hub([rec], fw_dir=fw_dir, heapsize=heapsize) as (proc, client):
            assert proc.proc is not None
            pid = proc.proc.pid
            for r in range(rounds):
                order = ("direct", "hub") if r % 2 == 0 else ("hub", "direct")
                for variant in order:
                    if variant == "direct":
                        s, e = await _direct_block(direct_plug, warmup, per_block)
                        direct += s
                        errors["direct"] += e
                        await asyncio.sleep(0.1)
                    else:
                        s, p, e, cpu = await _hub_block(
                            client, hub_plug.device_id, warmup, per_block, pid
                        )
                        hub_user += cpu[0]
                        hub_sys += cpu[1]
                        hub_calls += per_block
                        hub += s
                        pings += p
                        errors["hub"] += e
            health = await client.health()
    d = summarize(direct)
    h = summarize(hub)
    out = {
        "version": version,
        "direct": d,
        "hub": h,
        "ping": summarize(pings),
        "ratio_p50": h["p50_ms"] / d["p50_ms"],
        "ratio_p99": h["p99_ms"] / d["p99_ms"],
        "ratio_mean": h["mean_ms"] / d["mean_ms"],
        "added_p50_ms": h["p50_ms"] - d["p50_ms"],
        "hub_cpu_ms_per_set": (hub_user + hub_sys) * 1000.0 / hub_calls,
        "hub_user_ms_per_set": hub_user * 1000.0 / hub_calls,
        "hub_sys_ms_per_set": hub_sys * 1000.0 / hub_calls,
        "hub_cpu_calls": hub_calls,
        "errors": errors,
        "hub_heap_after": {"free": health.heap_free, "alloc": health.heap_alloc},
    }
    print(
        f"v{version} set: direct p50 {d['p50_ms']:.3f} p99 {d['p99_ms']:.3f} "
        f"mean {d['mean_ms']:.3f} | hub p50 {h['p50_ms']:.3f} p99 {h['p99_ms']:.3f} "
        f"mean {h['mean_ms']:.3f} | ratio p50 x{out['ratio_p50']:.2f} | "
        f"ping p50 {out['ping']['p50_ms']:.3f} | hub CPU/set "
        f"{out['hub_cpu_ms_per_set']:.3f} ms (user {out['hub_user_ms_per_set']:.3f}) | "
        f"errors {errors}",
        flush=True,
    )
    return out


def _sim_plug(version: str, rng: random.Random) -> SimulatedPlug:
    dev, key = generate_credentials(rng)
    return SimulatedPlug(
        device_id=dev, local_key=key, version=version, host=HOST, idle_timeout=3600.0, seed=1
    )


async def _push_latency(
    version: str, fw_dir: Path, heapsize: str | None, n: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    hub_plug = _sim_plug(version, rng)
    direct_plug = _sim_plug(version, rng)
    clock = time.perf_counter
    result: dict[str, Any] = {"version": version}
    async with hub_plug, direct_plug:
        # through the hub
        got = asyncio.Event()
        stamp = [0.0]

        def on_hub(update: StateUpdate) -> None:
            if "1" in update.dps:
                stamp[0] = clock()
                got.set()

        rec = plug_record(
            HOST,
            hub_plug.port,
            hub_plug.device_id,
            hub_plug.key_bytes().decode(),
            version=version,
            name="p",
        )
        samples: list[float] = []
        async with running_hub([rec], fw_dir=fw_dir, heapsize=heapsize) as (proc, client):
            assert proc.proc is not None
            client.subscribe(on_hub)
            state = bool(hub_plug.dps.get("1", False))
            cpu0 = (0.0, 0.0)
            for i in range(n + 20):
                if i == 20:
                    cpu0 = cpu_seconds(proc.proc.pid)
                state = not state
                got.clear()
                t0 = clock()
                hub_plug.set_dps_local({"1": state})
                async with asyncio.timeout(5):
                    await got.wait()
                if i >= 20:
                    samples.append(stamp[0] - t0)
            cpu1 = cpu_seconds(proc.proc.pid)
        result["hub"] = summarize(samples)
        result["hub_user_ms_per_push"] = (cpu1[0] - cpu0[0]) * 1000.0 / n
        result["hub_sys_ms_per_push"] = (cpu1[1] - cpu0[1]) * 1000.0 / n

        # direct
        samples = []
        dev = TuyaDevice(
            HOST,
            direct_plug.device_id,
            direct_plug.key_bytes().decode(),
            version=version,
            port=direct_plug.port,
        )

        def on_direct(dps: dict[str, Any]) -> None:
            if "1" in dps:
                stamp[0] = clock()
                got.set()

        async with dev:
            dev.subscribe(on_direct)
            state = bool(direct_plug.dps.get("1", False))
            for i in range(n + 20):
                state = not state
                got.clear()
                t0 = clock()
                direct_plug.set_dps_local({"1": state})
                async with asyncio.timeout(5):
                    await got.wait()
                if i >= 20:
                    samples.append(stamp[0] - t0)
        result["direct"] = summarize(samples)
    result["ratio_p50"] = result["hub"]["p50_ms"] / result["direct"]["p50_ms"]
    print(
        f"v{version} push: direct p50 {result['direct']['p50_ms']:.3f} "
        f"p99 {result['direct']['p99_ms']:.3f} | hub p50 {result['hub']['p50_ms']:.3f} "
        f"p99 {result['hub']['p99_ms']:.3f} | ratio p50 x{result['ratio_p50']:.2f} | "
        f"hub CPU/push user {result['hub_user_ms_per_push']:.3f} "
        f"sys {result['hub_sys_ms_per_push']:.3f} ms",
        flush=True,
    )
    return result


async def _main(args: argparse.Namespace, fw_dir: Path) -> dict[str, Any]:
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    heap = None if args.heapsize == "default" else args.heapsize
    sets = []
    pushes = []
    for i, v in enumerate(versions):
        sets.append(
            await _set_latency(
                v,
                fw_dir,
                heapsize=heap,
                n=args.n,
                rounds=args.rounds,
                warmup=args.warmup,
                seed=args.seed + i,
            )
        )
    for i, v in enumerate(versions):
        if args.push_n > 0:
            pushes.append(await _push_latency(v, fw_dir, heap, args.push_n, args.seed + 100 + i))
    return {"set": sets, "push": pushes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_hub", description=__doc__)
    p.add_argument("--versions", default=",".join(VERSIONS))
    p.add_argument("--n", type=int, default=1000, help="measured calls per path and version")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--push-n", type=int, default=500, help="measured pushes (0: skip)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--source", action="store_true", help="run the .py sources, not .mpy")
    p.add_argument(
        "--firmware-rev",
        default="HEAD",
        help="git revision of esp32/ to run (exported with git archive); 'worktree': as on disk",
    )
    p.add_argument(
        "--heapsize",
        default="96k",
        help="MicroPython -X heapsize of the hub (default 96k, about an ESP32's; 'default': "
        "the unix port's own, 2 MiB on x86-64)",
    )
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    env = {**environment(), "micropython": micropython_version()}
    print(json.dumps(env), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        src, fw_rev = firmware_sources(args.firmware_rev, Path(tmp) / "src")
        fw_dir = src if args.source else compile_firmware(Path(tmp) / "fw", src)
        res = asyncio.run(_main(args, fw_dir))
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "firmware": "source (.py)" if args.source else "mpy-cross -march=x64 (.mpy)",
            "heapsize": args.heapsize,
            "firmware_rev": fw_rev,
            "n": args.n,
            "rounds": args.rounds,
            "warmup": args.warmup,
            **res,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

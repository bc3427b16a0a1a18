"""Start-up time with many plugs, and memory per connected plug of our client.

Usage::

    .venv/bin/python -m benchmarks.bench_startup [--counts 1,10,50] [--versions 3.3,3.5]
        [--reps 5] [--threads 8] [--json out.json]

One simulator subprocess (``python -m tuya_sim --plugs N``) serves N plugs, each on its own
loopback port. Measured: the wall time from "create N clients" to "all N connected and holding a
first status", for

* ``ours``: N ``TuyaDevice`` objects connected concurrently with ``asyncio.gather(connect())``
  (``connect()`` opens TCP, negotiates the 3.4/3.5 session key and reads the DPS once);
* ``tinytuya_seq``: one ``OutletDevice`` after the other, each with a persistent socket and one
  ``status()`` (how many integrations and scripts poll);
* ``tinytuya_pool``: the same calls spread over a thread pool (``--threads``, default 8);
* ``*_nowait``: the tinytuya variants with ``set_sendWait(None)`` (no 10 ms post-send sleep).

Repetitions alternate between the variants. Then, for our client only, the memory cost of a
connected plug: RSS delta (``/proc/self/status``) and the ``tracemalloc`` delta of N connected
clients, divided by N (separate passes, as tracemalloc itself costs memory).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import tinytuya

from custom_components.tuya_local_esp.tuya import TuyaDevice

from ._common import HOST, ROOT, PlugInfo, environment, loadavg, rss_bytes, simulator, write_json

SETTLE_S = 0.3  # let the simulator see the closed connections before the next repetition


def _ours(plug: PlugInfo) -> TuyaDevice:
    return TuyaDevice(
        plug.host, plug.device_id, plug.local_key, version=plug.version, port=plug.port
    )


async def _ours_startup(plugs: list[PlugInfo]) -> tuple[float, int]:
    t0 = time.perf_counter()
    devs = [_ours(p) for p in plugs]
    results = await asyncio.gather(*(d.connect() for d in devs), return_exceptions=True)
    elapsed = time.perf_counter() - t0
    failures = sum(1 for r in results if isinstance(r, BaseException))
    failures += sum(1 for d in devs if "1" not in d.dps)
    await asyncio.gather(*(d.close() for d in devs), return_exceptions=True)
    return elapsed, failures


def run_ours(plugs: list[PlugInfo], threads: int) -> tuple[float, int]:
    return asyncio.run(_ours_startup(plugs))


def _tinytuya_connect(plug: PlugInfo, send_wait: float | None) -> tuple[Any, bool]:
    dev = tinytuya.OutletDevice(
        plug.device_id,
        address=plug.host,
        local_key=plug.local_key,
        version=float(plug.version),
        port=plug.port,
        connection_timeout=5,
        persist=True,
    )
    dev.set_socketPersistent(True)
    dev.set_sendWait(send_wait)
    result = dev.status()
    ok = isinstance(result, dict) and isinstance(result.get("dps"), dict) and "1" in result["dps"]
    return dev, ok


def _tinytuya_seq(send_wait: float | None) -> Callable[[list[PlugInfo], int], tuple[float, int]]:
    def run(plugs: list[PlugInfo], threads: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        done = [_tinytuya_connect(p, send_wait) for p in plugs]
        elapsed = time.perf_counter() - t0
        for dev, _ in done:
            dev.close()
        return elapsed, sum(1 for _, ok in done if not ok)

    return run


def _tinytuya_pool(send_wait: float | None) -> Callable[[list[PlugInfo], int], tuple[float, int]]:
    def run(plugs: list[PlugInfo], threads: int) -> tuple[float, int]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            t0 = time.perf_counter()
            done = list(pool.map(lambda p: _tinytuya_connect(p, send_wait), plugs))
            elapsed = time.perf_counter() - t0
        for dev, _ in done:
            dev.close()
        return elapsed, sum(1 for _, ok in done if not ok)

    return run


VARIANTS: dict[str, Callable[[list[PlugInfo], int], tuple[float, int]]] = {
    "ours": run_ours,
    "tinytuya_seq": _tinytuya_seq(0.01),
    "tinytuya_pool": _tinytuya_pool(0.01),
    "tinytuya_seq_nowait": _tinytuya_seq(None),
    "tinytuya_pool_nowait": _tinytuya_pool(None),
}


# --------------------------------------------------------------------------- one silent plug
@contextmanager
def silent_plug(version: str) -> Iterator[PlugInfo]:
    """A loopback port that completes the TCP handshake but never answers.

    Stands for a plug with hung firmware, a wrong local key or version (spec §4: no answer).
    The kernel accepts the connection into the backlog; nobody ever reads it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    sock.listen(64)
    try:
        yield PlugInfo(HOST, sock.getsockname()[1], "bf00000000000000dead", "0" * 16, version)
    finally:
        sock.close()


async def _ours_offline(plugs: list[PlugInfo], dead: PlugInfo) -> dict[str, float]:
    t0 = time.perf_counter()
    devs = [_ours(p) for p in plugs]
    done_at: list[float] = []

    async def one(dev: TuyaDevice) -> None:
        try:
            await dev.connect()
        finally:
            if dev.port != dead.port:
                done_at.append(time.perf_counter() - t0)

    results = await asyncio.gather(*(one(d) for d in devs), return_exceptions=True)
    total = time.perf_counter() - t0
    await asyncio.gather(*(d.close() for d in devs), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    return {"reachable_ready_s": max(done_at), "all_settled_s": total, "failed": failed}


def _tinytuya_offline(
    plugs: list[PlugInfo], dead: PlugInfo, threads: int | None
) -> dict[str, float]:
    t0 = time.perf_counter()
    done_at: list[float] = []

    def one(plug: PlugInfo) -> tuple[Any, bool]:
        dev, ok = _tinytuya_connect(plug, 0.01)
        if plug.port != dead.port:
            done_at.append(time.perf_counter() - t0)
        return dev, ok

    if threads is None:
        done = [one(p) for p in plugs]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            done = list(pool.map(one, plugs))
    total = time.perf_counter() - t0
    for dev, _ in done:
        dev.close()
    failed = sum(1 for _, ok in done if not ok)
    return {"reachable_ready_s": max(done_at), "all_settled_s": total, "failed": failed}


def bench_offline(count: int, version: str, threads: int) -> dict[str, Any]:
    """N plugs of which the middle one never answers; one run per client (tens of seconds)."""
    out: dict[str, Any] = {"count": count, "version": version, "silent_index": count // 2}
    with simulator(version=version, plugs=count - 1) as live, silent_plug(version) as dead:
        plugs = [*live[: count // 2], dead, *live[count // 2 :]]
        out["ours"] = asyncio.run(_ours_offline(plugs, dead))
        time.sleep(SETTLE_S)
        out["tinytuya_seq"] = _tinytuya_offline(plugs, dead, None)
        time.sleep(SETTLE_S)
        out["tinytuya_pool"] = _tinytuya_offline(plugs, dead, threads)
    for name in ("ours", "tinytuya_seq", "tinytuya_pool"):
        r = out[name]
        print(
            f"offline v{version} N={count} (1 silent) {name:<14} reachable ready "
            f"{r['reachable_ready_s']:7.3f} s, all settled {r['all_settled_s']:7.3f} s, "
            f"failed {r['failed']}",
            flush=True,
        )
    return out


# --------------------------------------------------------------------------- memory
async def _ours_memory(plugs: list[PlugInfo], use_tracemalloc: bool) -> dict[str, Any]:
    # warm-up: import-time and first-use allocations (codec tables, loop internals)
    warm = _ours(plugs[0])
    await warm.connect()
    await warm.close()
    await asyncio.sleep(SETTLE_S)
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    rss0 = rss_bytes()
    devs = [_ours(p) for p in plugs]
    await asyncio.gather(*(d.connect() for d in devs))
    gc.collect()
    rss1 = rss_bytes()
    out: dict[str, Any] = {}
    if use_tracemalloc:
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        out["tracemalloc_per_plug_kib"] = sum(s.size_diff for s in stats) / len(plugs) / 1024
        out["tracemalloc_top"] = [
            {
                "file": s.traceback[0].filename.rsplit("/", 2)[-1],
                "kib_per_plug": round(s.size_diff / len(plugs) / 1024, 3),
            }
            for s in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:8]
        ]
    else:
        out["rss_delta_per_plug_kib"] = (rss1 - rss0) / len(plugs) / 1024
    await asyncio.gather(*(d.close() for d in devs))
    return out


def _tinytuya_memory(plugs: list[PlugInfo], use_tracemalloc: bool) -> dict[str, Any]:
    _tinytuya_connect(plugs[0], None)[0].close()
    time.sleep(SETTLE_S)
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    rss0 = rss_bytes()
    done = [_tinytuya_connect(p, None) for p in plugs]
    gc.collect()
    rss1 = rss_bytes()
    out: dict[str, Any] = {}
    if use_tracemalloc:
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        delta = sum(s.size_diff for s in after.compare_to(before, "filename"))
        out["tracemalloc_per_plug_kib"] = delta / len(plugs) / 1024
    else:
        out["rss_delta_per_plug_kib"] = (rss1 - rss0) / len(plugs) / 1024
    for dev, _ in done:
        dev.close()
    return out


def memory_child(client: str, count: int, version: str, use_tracemalloc: bool) -> dict[str, Any]:
    """One memory measurement in this (fresh) process; see :func:`measure_memory`."""
    with simulator(version=version, plugs=count) as plugs:
        if client == "ours":
            return asyncio.run(_ours_memory(plugs, use_tracemalloc))
        return _tinytuya_memory(plugs, use_tracemalloc)


def measure_memory(count: int, version: str) -> dict[str, Any]:
    """Memory per connected plug, each figure from a fresh interpreter.

    A process that already ran the timing repetitions keeps freed arenas resident, which hides
    the RSS growth; so every (client, method) pair runs in its own child process.
    """
    out: dict[str, Any] = {}
    for client in ("ours", "tinytuya"):
        for method in ("rss", "tracemalloc"):
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.bench_startup",
                "--memory-child",
                f"{client},{count},{version},{method}",
            ]
            proc = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
            )
            out[f"{client}_{method}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- driver
def bench(
    count: int, version: str, *, reps: int, threads: int, variants: list[str], delay_ms: float
) -> dict[str, Any]:
    times: dict[str, list[float]] = {v: [] for v in variants}
    failures = dict.fromkeys(variants, 0)
    with simulator(version=version, plugs=count, delay_ms=delay_ms) as plugs:
        for r in range(reps):
            rotated = variants[r % len(variants) :] + variants[: r % len(variants)]
            for name in rotated:
                gc.collect()
                elapsed, failed = VARIANTS[name](plugs, threads)
                times[name].append(elapsed)
                failures[name] += failed
                time.sleep(SETTLE_S)
    result: dict[str, Any] = {
        "count": count,
        "version": version,
        "delay_ms": delay_ms,
        "clients": {},
    }
    for name in variants:
        ms = sorted(t * 1000 for t in times[name])
        result["clients"][name] = {
            "median_ms": statistics.median(ms),
            "min_ms": ms[0],
            "max_ms": ms[-1],
            "per_plug_ms": statistics.median(ms) / count,
            "failures": failures[name],
            "runs_ms": [round(x, 3) for x in times[name]],
        }
    if "ours" in variants:
        base = result["clients"]["ours"]["median_ms"]
        result["ratio_vs_ours"] = {
            name: result["clients"][name]["median_ms"] / base for name in variants if name != "ours"
        }
    return result


def _print(res: dict[str, Any]) -> None:
    for name, data in res["clients"].items():
        ratio = res.get("ratio_vs_ours", {}).get(name)
        extra = f"  x{ratio:.1f} vs ours" if ratio else ""
        print(
            f"v{res['version']} d={res['delay_ms']:g}ms N={res['count']:<3} {name:<21} "
            f"median {data['median_ms']:9.2f} ms"
            f"  (min {data['min_ms']:.2f}, max {data['max_ms']:.2f}, "
            f"failures {data['failures']}){extra}"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_startup", description=__doc__)
    p.add_argument("--counts", default="1,10,50", help="numbers of plugs")
    p.add_argument("--versions", default="3.3,3.5", help="comma-separated protocol versions")
    p.add_argument("--reps", type=int, default=5, help="repetitions per variant")
    p.add_argument("--threads", type=int, default=8, help="tinytuya thread pool size")
    p.add_argument("--variants", default=",".join(VARIANTS), help="clients to compare")
    p.add_argument(
        "--delays-ms", default="0,25", help="one-way delays to emulate (0: plain loopback)"
    )
    p.add_argument("--memory-counts", default="200", help="plug counts for the memory figures")
    p.add_argument(
        "--offline-count",
        type=int,
        default=10,
        help="plugs in the one-silent-plug scenario (0 skips it; it takes ~1 min)",
    )
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        client, count, version, method = args.memory_child.split(",")
        print(json.dumps(memory_child(client, int(count), version, method == "tracemalloc")))
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants: {unknown}")
    env = environment()
    print(json.dumps(env))
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    results = []
    for delay in [float(d) for d in args.delays_ms.split(",") if d.strip()]:
        for version in versions:
            for count in [int(c) for c in args.counts.split(",") if c.strip()]:
                res = bench(
                    count,
                    version,
                    reps=args.reps,
                    threads=args.threads,
                    variants=variants,
                    delay_ms=delay,
                )
                results.append(res)
                _print(res)
    memory = []
    for version in versions:
        for count in [int(c) for c in args.memory_counts.split(",") if c.strip()]:
            mem = {"count": count, "version": version, **measure_memory(count, version)}
            memory.append(mem)
            print(f"memory v{version} N={count}: {json.dumps(mem)}")
    offline = []
    if args.offline_count:
        offline.append(bench_offline(args.offline_count, versions[0], args.threads))
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "params": {"reps": args.reps, "threads": args.threads, "variants": variants},
            "results": results,
            "memory": memory,
            "offline": offline,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

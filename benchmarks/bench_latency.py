"""Round-trip latency of our asyncio client vs tinytuya against the same simulated plug.

Usage::

    .venv/bin/python -m benchmarks.bench_latency [--n 500] [--versions 3.1,3.3,3.4,3.5]
        [--rounds 4] [--warmup 20] [--ours-rev REV ...] [--phases] [--json out.json]

For every protocol version one simulator subprocess (``python -m tuya_sim``) serves one plug. The
clients take turns on it (the plug accepts one connection at a time): each *block* opens a
persistent connection, runs ``--warmup`` unmeasured status and set calls, then ``n / rounds``
measured status calls and ``n / rounds`` measured set calls, and closes. Blocks alternate between
the clients (ours, tinytuya, tinytuya without its send delay, then the next round in rotated order)
so that slow drift of the machine hits every client alike.

``--ours-rev REV`` (repeatable) adds the variant ``ours@REV``: our client package
(``custom_components/tuya_local_esp/tuya``) as it was at git revision ``REV``, exported with ``git
archive`` to a temporary directory and imported under its own name, measured in the same run and
against the same simulator as the current one (e.g. ``--ours-rev 1495955`` for the client before
the connection/device split).

``--phases`` also splits every measured call in three (medians reported per client and op):
*before send* (call start -> its first byte handed to the socket: payload, encryption, framing),
*device* (first byte sent -> last bytes of the answer received: the simulator's work plus the
scheduling of both processes) and *after receive* (-> the call returns: decode, matching, event
loop hops). Marks come from hooks on asyncio's socket transport and stream protocol (ours) and from
a socket wrapper (tinytuya); they cost well under a microsecond per call.

What one measured call waits for (see ``docs/benchmarks.md``):

* ours ``status()``: DP_QUERY sent -> the device's DP_QUERY answer decoded.
* ours ``set_dps({"1": v})``: CONTROL sent -> empty ACK -> STATUS push containing DP 1 decoded.
* tinytuya ``status()``: DP_QUERY sent, ``sendWait`` sleep (default 10 ms), answer decoded.
* tinytuya ``set_status(v)``: CONTROL sent, ``sendWait`` sleep, empty ACK read and skipped, first
  non-empty frame (the STATUS push) decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import tinytuya

from custom_components.tuya_local_esp.tuya import TuyaDevice

from ._common import ROOT, PlugInfo, environment, loadavg, simulator, summarize, write_json

VERSIONS = ("3.1", "3.3", "3.4", "3.5")

#: Client variants: name -> block runner(plug, warmup, n) -> (status samples, set samples, errors)
Runner = Callable[[PlugInfo, int, int], tuple[list[float], list[float], int]]


def _dps_of(result: Any) -> dict[str, Any]:
    """DPs of a tinytuya answer (3.4+ pushes nest them under ``data``)."""
    if not isinstance(result, dict):
        return {}
    if isinstance(result.get("dps"), dict):
        return result["dps"]
    data = result.get("data")
    if isinstance(data, dict) and isinstance(data.get("dps"), dict):
        return data["dps"]
    return {}


# --------------------------------------------------------------------------- phases
class _Phases:
    """Marks of the measured call in progress (``--phases``); see the module docstring."""

    enabled = False
    first_send: float | None = None
    last_recv = 0.0
    #: (before send, device, after receive) in seconds per op, for the block in progress.
    block: ClassVar[dict[str, list[tuple[float, float, float]]]] = {"status": [], "set": []}

    @classmethod
    def start(cls) -> None:
        cls.first_send = None

    @classmethod
    def sent(cls) -> None:
        if cls.enabled and cls.first_send is None:
            cls.first_send = time.perf_counter()

    @classmethod
    def received(cls) -> None:
        if cls.enabled:
            cls.last_recv = time.perf_counter()

    @classmethod
    def record(cls, op: str, t0: float, t1: float) -> None:
        first = cls.first_send
        if cls.enabled and first is not None:
            cls.block[op].append((first - t0, cls.last_recv - first, t1 - cls.last_recv))

    @classmethod
    def enable(cls) -> None:
        """Hook asyncio's socket transport and stream protocol (this process only)."""
        from asyncio import selector_events, streams

        cls.enabled = True
        transport = selector_events._SelectorSocketTransport
        write = transport.write
        data_received = streams.StreamReaderProtocol.data_received

        def timed_write(self: Any, data: Any) -> None:
            cls.sent()
            write(self, data)

        def timed_data_received(self: Any, data: bytes) -> None:
            cls.received()
            data_received(self, data)

        transport.write = timed_write  # type: ignore[method-assign]
        streams.StreamReaderProtocol.data_received = timed_data_received  # type: ignore[method-assign]


class _TimedSocket:
    """tinytuya's socket with the ``--phases`` marks on ``sendall``/``recv``."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes, *args: Any) -> None:
        _Phases.sent()
        self._sock.sendall(data, *args)

    def recv(self, size: int, *args: Any) -> bytes:
        data: bytes = self._sock.recv(size, *args)
        _Phases.received()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


# --------------------------------------------------------------------------- our client
async def _ours_block(
    plug: PlugInfo, warmup: int, n: int, device_class: Any = TuyaDevice
) -> tuple[list[float], list[float], int]:
    status_s: list[float] = []
    set_s: list[float] = []
    errors = 0
    clock = time.perf_counter
    async with device_class(
        plug.host, plug.device_id, plug.local_key, version=plug.version, port=plug.port
    ) as dev:
        state = bool(dev.dps.get("1", False))
        for _ in range(warmup):
            await dev.status()
            state = not state
            await dev.set_dps({"1": state})
        for _ in range(n):
            _Phases.start()
            t0 = clock()
            dps = await dev.status()
            t1 = clock()
            status_s.append(t1 - t0)
            _Phases.record("status", t0, t1)
            if "1" not in dps:
                errors += 1
        for _ in range(n):
            state = not state
            _Phases.start()
            t0 = clock()
            confirmed = await dev.set_dps({"1": state})
            t1 = clock()
            set_s.append(t1 - t0)
            _Phases.record("set", t0, t1)
            if confirmed.get("1") is not state:
                errors += 1
    return status_s, set_s, errors


def run_ours(plug: PlugInfo, warmup: int, n: int) -> tuple[list[float], list[float], int]:
    """One block of our client: its own event loop, one persistent connection."""
    return asyncio.run(_ours_block(plug, warmup, n))


_CLIENT_PACKAGE = "custom_components/tuya_local_esp/tuya"


def ours_at(rev: str, workdir: Path) -> Runner:
    """A runner for our client package as it was at git revision ``rev``.

    The package is exported with ``git archive`` below ``workdir`` and imported as a top-level
    package of its own (it uses relative imports only), so both versions run in this process.

    Raises:
        subprocess.CalledProcessError: ``rev`` is not a revision of this repository.

    """
    archive = subprocess.run(
        ["git", "archive", rev, _CLIENT_PACKAGE], cwd=ROOT, check=True, capture_output=True
    ).stdout
    target = workdir / re.sub(r"\W", "_", rev)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    path = target / _CLIENT_PACKAGE
    name = "_tuya_at_" + re.sub(r"\W", "_", rev)
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import the client of {rev}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    device_class = module.TuyaDevice

    def run(plug: PlugInfo, warmup: int, n: int) -> tuple[list[float], list[float], int]:
        return asyncio.run(_ours_block(plug, warmup, n, device_class))

    return run


# --------------------------------------------------------------------------- tinytuya
def _tinytuya_runner(send_wait: float | None) -> Runner:
    def run(plug: PlugInfo, warmup: int, n: int) -> tuple[list[float], list[float], int]:
        dev = tinytuya.OutletDevice(
            plug.device_id,
            address=plug.host,
            local_key=plug.local_key,
            version=float(plug.version),
            port=plug.port,
            connection_timeout=5,
            persist=True,
        )
        dev.set_version(float(plug.version))
        dev.set_socketPersistent(True)
        dev.set_sendWait(send_wait)
        status_s: list[float] = []
        set_s: list[float] = []
        errors = 0
        clock = time.perf_counter
        try:
            first = dev.status()
            if "1" not in _dps_of(first):
                raise RuntimeError(f"tinytuya cannot read the plug: {first}")
            state = bool(_dps_of(first)["1"])
            if _Phases.enabled and dev.socket is not None:
                dev.socket = _TimedSocket(dev.socket)
            for _ in range(warmup):
                dev.status()
                state = not state
                dev.set_status(state)
            for _ in range(n):
                _Phases.start()
                t0 = clock()
                result = dev.status()
                t1 = clock()
                status_s.append(t1 - t0)
                _Phases.record("status", t0, t1)
                if "1" not in _dps_of(result):
                    errors += 1
            for _ in range(n):
                state = not state
                _Phases.start()
                t0 = clock()
                result = dev.set_status(state)
                t1 = clock()
                set_s.append(t1 - t0)
                _Phases.record("set", t0, t1)
                if _dps_of(result).get("1") is not state:
                    errors += 1
        finally:
            dev.close()
        return status_s, set_s, errors

    return run


VARIANTS: dict[str, Runner] = {
    "ours": run_ours,
    "tinytuya": _tinytuya_runner(0.01),  # tinytuya 1.20 default sendWait
    "tinytuya_nowait": _tinytuya_runner(None),  # same calls without the post-send sleep
}


# --------------------------------------------------------------------------- driver
def bench_version(
    version: str,
    n: int,
    rounds: int,
    warmup: int,
    variants: list[str],
    *,
    runners: dict[str, Runner] | None = None,
) -> dict[str, Any]:
    runners = runners or VARIANTS
    per_block = max(1, n // rounds)
    samples: dict[str, dict[str, list[float]]] = {v: {"status": [], "set": []} for v in variants}
    errors = dict.fromkeys(variants, 0)
    phases: dict[str, dict[str, list[tuple[float, float, float]]]] = {
        v: {"status": [], "set": []} for v in variants
    }
    order: list[str] = []
    with simulator(version=version) as plugs:
        plug = plugs[0]
        for r in range(rounds):
            rotated = variants[r % len(variants) :] + variants[: r % len(variants)]
            for name in rotated:
                gc.collect()
                _Phases.block = {"status": [], "set": []}
                status_s, set_s, errs = runners[name](plug, warmup, per_block)
                for op, marks in _Phases.block.items():
                    phases[name][op] += marks
                samples[name]["status"] += status_s
                samples[name]["set"] += set_s
                errors[name] += errs
                order.append(name)
                time.sleep(0.2)  # let the simulator notice the closed connection
    result: dict[str, Any] = {"version": version, "block_order": order, "clients": {}}
    for name in variants:
        result["clients"][name] = {
            "status": summarize(samples[name]["status"]),
            "set": summarize(samples[name]["set"]),
            "errors": errors[name],
        }
    if _Phases.enabled:
        result["phases_us"] = {
            name: {
                op: dict(
                    zip(
                        ("before_send", "device", "after_receive"),
                        (statistics.median(col) * 1e6 for col in zip(*marks, strict=True)),
                        strict=True,
                    )
                )
                for op, marks in phases[name].items()
                if marks
            }
            for name in variants
        }
    if "ours" in variants:
        ours = result["clients"]["ours"]
        ratios: dict[str, dict[str, float]] = {}
        for name in variants:
            if name == "ours":
                continue
            other = result["clients"][name]
            ratios[name] = {
                f"{op}_{stat}": other[op][stat] / ours[op][stat]
                for op in ("status", "set")
                for stat in ("p50_ms", "p99_ms", "mean_ms")
            }
        result["ratio_vs_ours"] = ratios
    return result


def _print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'ver':<4} {'client':<16} {'op':<7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
    print(header)
    print("-" * len(header))
    for res in results:
        for name, data in res["clients"].items():
            for op in ("status", "set"):
                s = data[op]
                print(
                    f"{res['version']:<4} {name:<16} {op:<7} "
                    f"{s['p50_ms']:8.3f} {s['p99_ms']:8.3f} {s['mean_ms']:8.3f}"
                )
        for name, ratio in res.get("ratio_vs_ours", {}).items():
            print(
                f"{res['version']:<4} {name + '/ours':<16} ratio   "
                f"status p50 x{ratio['status_p50_ms']:.2f}  set p50 x{ratio['set_p50_ms']:.2f}  "
                f"status p99 x{ratio['status_p99_ms']:.2f}  set p99 x{ratio['set_p99_ms']:.2f}"
            )
        for name, ops in res.get("phases_us", {}).items():
            for op, ph in ops.items():
                print(
                    f"{res['version']:<4} {name:<16} {op:<7} phases (median us): before send "
                    f"{ph['before_send']:6.1f}  device {ph['device']:6.1f}  "
                    f"after receive {ph['after_receive']:6.1f}"
                )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_latency", description=__doc__)
    p.add_argument("--n", type=int, default=500, help="measured calls per client, op and version")
    p.add_argument("--versions", default=",".join(VERSIONS), help="comma-separated versions")
    p.add_argument("--rounds", type=int, default=4, help="alternating blocks per client")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured calls per block")
    p.add_argument("--variants", default=",".join(VARIANTS), help="clients to compare")
    p.add_argument(
        "--ours-rev",
        action="append",
        default=[],
        metavar="REV",
        help="also measure our client as it was at this git revision (variant ours@REV)",
    )
    p.add_argument(
        "--phases",
        action="store_true",
        help="also split each call into before send / device / after receive (medians)",
    )
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants: {unknown}")
    if args.phases:
        _Phases.enable()
    env = environment()
    print(json.dumps(env))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        runners = dict(VARIANTS)
        for rev in args.ours_rev:
            runners[f"ours@{rev}"] = ours_at(rev, Path(tmp))
            variants.append(f"ours@{rev}")
        for version in versions:
            res = bench_version(
                version, args.n, args.rounds, args.warmup, variants, runners=runners
            )
            results.append(res)
            _print_table([res])
    write_json(
        args.json,
        {
            "environment": {**env, "loadavg_at_end": loadavg()},
            "params": {
                "n": args.n,
                "rounds": args.rounds,
                "warmup": args.warmup,
                "variants": variants,
                "ours_revs": args.ours_rev,
                "phases": args.phases,
            },
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Long fuzzing runs of the HA-side hub channel: the fuzzers of ``tests/firmware/test_hub_fuzz.py``
with a count given on the command line and fresh random inputs on every run.

Usage::

    .venv/bin/python -m benchmarks.bench_fuzz [--count 20000] [--tcp-count 2000] [--json out.json]

Fuzzers (strategies and checks in ``tests/firmware/hub_fuzzing.py``):

* ``message``: decrypted hub messages (valid, mutated, arbitrary objects, non-objects) through
  ``parse_message`` and the client's message handler;
* ``result_data``: the ``data`` of the set/time/health/inventory results through their parsers;
* ``records``: arbitrary byte chunks through ``RecordReader``, ``SecureChannel.open`` and
  ``ClientHandshake.receive_server_hello``;
* ``sealed``: correctly authenticated records around arbitrary plaintexts (bad padding, not
  JSON, deep nesting) through ``SecureChannel.open``;
* ``tcp``: messages from a fake hub on loopback to a connected ``HubClient``; a refused message
  must end the connection (the client reconnects), an accepted one must leave it up.

A **crash** is any exception other than the library's ``HubError`` subclasses, or (tcp) an
outcome that contradicts the handler's verdict. Hypothesis generates the inputs; inputs/s
include its generation time, so they compare runs, not the parsers alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.hub import HubClient
from tests.firmware.hub_fuzzing import (
    SECRET,
    FuzzHub,
    check_message,
    check_records,
    check_result_data,
    check_sealed,
    fuzz_client,
    hub_messages,
    result_data,
    sealed_plaintexts,
    tcp_round,
)

from ._common import environment, loadavg, write_json


class Tally:
    """Inputs, refusals and crashes of one fuzzer."""

    def __init__(self) -> None:
        self.inputs = 0
        self.refused = 0
        self.crashes: list[str] = []

    def run(self, check: Callable[[], bool | int]) -> None:
        self.inputs += 1
        try:
            self.refused += bool(check())
        except Exception as err:
            self.crashes.append(f"{type(err).__name__}: {err}"[:300])


def _settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def fuzz(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], Any], count: int):
    tally = Tally()

    @_settings(count)
    @given(strategy)
    def one(value: Any) -> None:
        tally.run(lambda: check(value))

    start = time.perf_counter()
    one()
    return _row(name, tally, time.perf_counter() - start)


def fuzz_tcp(count: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    hub = FuzzHub()
    tally = Tally()
    loop.run_until_complete(hub.start())
    client = HubClient("127.0.0.1", hub.port, SECRET, timeout=10, ping_interval=3600)
    try:
        loop.run_until_complete(client.connect())

        @_settings(count)
        @given(hub_messages)
        def one(msg: object) -> None:
            def check() -> bool:
                if not client.connected:  # after a crash: start over on a new connection
                    loop.run_until_complete(client.connect())
                return loop.run_until_complete(tcp_round(client, hub, msg))

            tally.run(check)

        start = time.perf_counter()
        one()
        elapsed = time.perf_counter() - start
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(hub.stop())
        loop.close()
    return {**_row("tcp", tally, elapsed), "connections": hub.connections}


def _row(name: str, tally: Tally, elapsed: float) -> dict[str, Any]:
    return {
        "fuzzer": name,
        "inputs": tally.inputs,
        "seconds": round(elapsed, 2),
        "inputs_per_s": round(tally.inputs / elapsed) if elapsed else None,
        "refused": tally.refused,
        "crashes": len(tally.crashes),
        "first_crashes": tally.crashes[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="inputs per in-process fuzzer")
    parser.add_argument("--tcp-count", type=int, default=2_000, help="inputs over loopback TCP")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    # refused messages are logged by the client (warnings for hub error messages): not here
    logging.getLogger("custom_components.tuya_local_esp.hub").setLevel(logging.CRITICAL)
    env = environment()
    rows = [
        fuzz("message", hub_messages, lambda m: check_message(fuzz_client(), m), args.count),
        fuzz("result_data", result_data, lambda c: check_result_data(*c), args.count),
        fuzz("records", st.lists(st.binary(max_size=300), max_size=8), check_records, args.count),
        fuzz(
            "sealed",
            st.tuples(sealed_plaintexts, st.booleans()),
            lambda c: check_sealed(*c),
            args.count,
        ),
        fuzz_tcp(args.tcp_count),
    ]
    print(f"{'fuzzer':<12} {'inputs':>8} {'s':>8} {'inputs/s':>9} {'refused':>8} {'crashes':>8}")
    for r in rows:
        print(
            f"{r['fuzzer']:<12} {r['inputs']:>8} {r['seconds']:>8} {r['inputs_per_s']:>9} "
            f"{r['refused']:>8} {r['crashes']:>8}"
        )
        for crash in r["first_crashes"]:
            print(f"    crash: {crash}")
    write_json(args.json, {"env": {**env, "loadavg_at_end": loadavg()}, "rows": rows})
    return 1 if any(r["crashes"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fuzzing of the HA-side hub channel (bounded for CI; ``benchmarks/bench_fuzz.py`` runs longer).

Every input must end in the library's own errors (``HubError`` subclasses) and a malformed
message must end the connection: over real TCP on loopback the client drops it and reconnects.
Examples are derandomized (the same inputs on every run, so CI cannot flake); the benchmark
explores new ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.hub import HubClient

from .hub_fuzzing import (
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

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_message_handler_fuzz() -> None:
    """parse_message + the client's handler: HubProtocolError/HubBusyError or accepted."""
    verdicts: set[bool] = set()

    @settings(FUZZ, max_examples=2000)
    @given(hub_messages)
    def one(msg: object) -> None:
        verdicts.add(check_message(fuzz_client(), msg))

    one()
    assert verdicts == {True, False}  # the strategy reaches both: the fuzzer is not vacuous


def test_result_data_fuzz() -> None:
    """The data of set/time/health/inventory results: HubProtocolError or accepted."""
    verdicts: set[bool] = set()

    @FUZZ
    @given(result_data)
    def one(case: tuple[Callable[[object], object], object]) -> None:
        verdicts.add(check_result_data(*case))

    one()
    assert verdicts == {True, False}


def test_record_reader_channel_and_handshake_fuzz() -> None:
    """Arbitrary bytes through RecordReader, SecureChannel.open and the server hello."""
    refused = 0

    @FUZZ
    @given(st.lists(st.binary(max_size=300), max_size=8))
    def one(chunks: list[bytes]) -> None:
        nonlocal refused
        refused += check_records(chunks)

    one()
    assert refused > 0


def test_authenticated_garbage_fuzz() -> None:
    """Records with a valid MAC around any plaintext (bad padding, not JSON, deep nesting)."""
    verdicts: set[bool] = set()

    @FUZZ
    @given(sealed_plaintexts, st.booleans())
    def one(plain: bytes, pad: bool) -> None:
        verdicts.add(check_sealed(plain, pad))

    one()
    assert verdicts == {True, False}


def test_fuzz_over_tcp() -> None:
    """Fuzzed messages from a fake hub on loopback: a refused one ends the connection with a
    protocol error (the client then reconnects), an accepted one leaves it up; never a crash."""
    loop = asyncio.new_event_loop()
    hub = FuzzHub()
    client = HubClient("127.0.0.1", 0, SECRET, timeout=10, ping_interval=3600, time_interval=3600)
    outcomes: list[bool] = []
    try:
        loop.run_until_complete(hub.start())
        client.port = hub.port
        loop.run_until_complete(client.connect())

        @settings(
            max_examples=500,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(hub_messages)
        def one(msg: object) -> None:
            outcomes.append(loop.run_until_complete(tcp_round(client, hub, msg)))

        one()
        assert True in outcomes
        assert False in outcomes
        # every refused message cost one connection, and the client is up again
        assert hub.connections == 1 + outcomes.count(True)
        assert client.connected
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(hub.stop())
        loop.close()

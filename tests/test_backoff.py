"""The shared reconnect pacing (tuya/backoff.py)."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.tuya_local_esp.tuya.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fast_phase_doubles_up_to_steady_then_slows_after_a_long_outage() -> None:
    clock = FakeClock()
    b = Backoff(first=0.25, steady=2.0, slow=30.0, slow_after=600, jitter=0, clock=clock)
    assert [b.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    clock.now += 599
    assert b.next_delay() == 2.0
    clock.now += 1
    assert b.next_delay() == 30.0
    assert b.failures == 8
    b.reset()
    assert b.failures == 0
    assert b.outage == 0
    assert b.next_delay() == 0.25


def test_polite_wait_and_jitter_bounds() -> None:
    b = Backoff(polite=15.0, jitter=0.2, rng=lambda: 0.0)
    assert b.next_delay(polite=True) == pytest.approx(12.0)
    b = Backoff(polite=15.0, jitter=0.2, rng=lambda: 0.999999)
    assert b.next_delay(polite=True) == pytest.approx(18.0, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0}, {"steady": -1}, {"slow_after": -1}, {"jitter": 1.0}, {"polite": 0}],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


async def test_wake_cuts_the_wait_short_once() -> None:
    b = Backoff(first=30, steady=30, jitter=0)
    wake = asyncio.Event()
    asyncio.get_running_loop().call_soon(wake.set)
    async with asyncio.timeout(5):
        assert await b.wait(wake) is True
    assert not wake.is_set()
    quick = Backoff(first=0.01, jitter=0)
    assert await quick.wait(wake) is False
    assert await quick.wait() is False

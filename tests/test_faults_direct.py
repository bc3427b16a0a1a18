"""TuyaDevice through the fault-injection proxy, with the simulator as the plug (issue 7).

Every scenario checks what a user sees: the device goes unavailable, comes back by itself, a
command never reports a success the plug did not apply, failures are classified (a lost reply or
silence is never a wrong key), nothing raises unhandled and the log stays short. Bounds are
generous (the CI machine is loaded); the measured times are in ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from custom_components.tuya_local_esp.tuya import (
    Command,
    TuyaBusyError,
    TuyaConnectionError,
    TuyaDevice,
    TuyaError,
    TuyaKeyError,
    TuyaTimeoutError,
)
from tuya_sim import SimulatedPlug

from .conftest import wait_until
from .faultproxy import FaultProxy

DEVICE_ID = "bf7a3c9e2d14f8b6ac01"
KEY = "0123456789abcdef"
BACK = 15.0  # "comes back within" (s): generous, the benchmark measures the real figure
GONE = 15.0  # "goes unavailable within" (s)
MAX_LOG_LINES = 30  # INFO and above from the library per scenario
CONTROL_CMDS = {Command.CONTROL, Command.CONTROL_NEW}
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class Rig:
    """A plug, the proxy in front of it and the client under test."""

    sim: SimulatedPlug
    proxy: FaultProxy
    dev: TuyaDevice
    states: list[bool] = field(default_factory=list)
    failures: list[TuyaError] = field(default_factory=list)

    async def set_switch(self, value: bool) -> dict[str, Any]:
        return await self.dev.set_dps({"1": value})

    async def back(self) -> None:
        await self.dev.wait_connected(BACK)
        assert (await self.set_switch(not self.sim.dps["1"]))["1"] is self.sim.dps["1"]


def make_device(port: int, version: str, **kw: Any) -> TuyaDevice:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("heartbeat_interval", 0.5)
    kw.setdefault("reconnect_min", 0.05)
    kw.setdefault("reconnect_max", 0.3)
    kw.setdefault("polite_wait", 1.0)
    return TuyaDevice("127.0.0.1", DEVICE_ID, KEY, version=version, port=port, **kw)


def options(**attrs: dict[str, Any]) -> Callable[[_F], _F]:
    """Give the ``rig`` fixture simulator (``sim_kw``) or client (``dev_kw``) options."""

    def mark(func: _F) -> _F:
        for name, value in attrs.items():
            setattr(func, name, value)
        return func

    return mark


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    """Exceptions nobody retrieved (asyncio's exception handler)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


async def _rig(version: str, sim_kw: dict[str, Any], dev_kw: dict[str, Any]) -> Rig:
    sim = SimulatedPlug(
        device_id=DEVICE_ID, local_key=KEY, version=version, seed=3, dps={"1": True}, **sim_kw
    )
    await sim.start()
    proxy = FaultProxy(sim.port)
    await proxy.start()
    dev = make_device(proxy.port, dev_kw.pop("dev_version", version), **dev_kw)
    rig = Rig(sim, proxy, dev)
    dev.subscribe_connection(rig.states.append)
    dev.subscribe_failure(rig.failures.append)
    return rig


@pytest.fixture(params=["3.3", "3.5"])
async def rig(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    loop_errors: list[dict[str, Any]],
) -> AsyncIterator[Rig]:
    caplog.set_level(logging.DEBUG, logger="custom_components.tuya_local_esp.tuya")
    sim_kw: dict[str, Any] = dict(getattr(request.function, "sim_kw", {}))
    dev_kw: dict[str, Any] = dict(getattr(request.function, "dev_kw", {}))
    r = await _rig(request.param, sim_kw, dev_kw)
    await r.dev.start()
    await r.dev.wait_connected(BACK)
    try:
        yield r
    finally:
        await r.dev.close()
        await r.proxy.stop()
        await r.sim.stop()
    assert not loop_errors, loop_errors
    lines = [
        rec
        for rec in caplog.records
        if rec.name.startswith("custom_components.tuya_local_esp.tuya")
        and rec.levelno >= logging.INFO
    ]
    assert len(lines) <= MAX_LOG_LINES, [r.getMessage() for r in lines]
    assert not [rec for rec in lines if rec.levelno >= logging.ERROR]
    assert r.dev.key_failures == 0
    assert not [f for f in r.failures if isinstance(f, TuyaKeyError)]


async def test_reset_goes_unavailable_and_comes_back(rig: Rig) -> None:
    rig.proxy.reset()
    await wait_until(lambda: False in rig.states, GONE)
    await rig.back()
    assert rig.dev.connect_count >= 2


async def test_power_off_then_on(rig: Rig) -> None:
    await rig.proxy.power_off()
    await wait_until(lambda: not rig.dev.connected, GONE)
    with pytest.raises(TuyaConnectionError):
        await rig.set_switch(False)  # no false success while the plug is off
    assert rig.sim.dps["1"] is True
    await wait_until(lambda: len(rig.failures) >= 3, GONE)  # refused, retried
    await rig.proxy.power_on()
    await rig.back()
    assert all(not isinstance(f, TuyaBusyError) for f in rig.failures)


@pytest.mark.parametrize("accepting", [True, False])
async def test_blackhole_goes_unavailable_and_comes_back(rig: Rig, accepting: bool) -> None:
    await rig.proxy.blackhole(accepting=accepting)
    await wait_until(lambda: not rig.dev.connected, GONE)  # liveness: no frame for 0.5 + 2 s
    await wait_until(lambda: len(rig.failures) >= 2, GONE)
    assert all(isinstance(f, TuyaTimeoutError | TuyaConnectionError) for f in rig.failures)
    rig.proxy.drop_all()
    await rig.proxy.power_on()
    await rig.back()


async def test_slow_replies_keep_working(rig: Rig) -> None:
    rig.proxy.slow(0.3)
    for value in (False, True, False):
        assert (await rig.set_switch(value))["1"] is value
    assert rig.states == [True]


async def test_a_lost_reply_does_not_drop_the_connection(rig: Rig) -> None:
    query = Command.DP_QUERY if rig.sim.version == "3.3" else Command.DP_QUERY_NEW
    rig.proxy.lose(1, {query})
    with pytest.raises(TuyaTimeoutError):
        await rig.dev.status()
    assert (await rig.dev.status())["1"] is True
    assert rig.states == [True]


async def test_ack_lost_to_a_bad_crc_is_not_a_false_failure(rig: Rig) -> None:
    rig.proxy.corrupt(1, CONTROL_CMDS)
    assert (await rig.set_switch(False))["1"] is False
    assert rig.sim.dps["1"] is False
    assert rig.dev.bad_frames >= 1
    assert rig.states == [True]


async def test_ack_and_push_lost_the_state_decides(rig: Rig) -> None:
    rig.proxy.lose(2, {*CONTROL_CMDS, Command.STATUS})
    # the plug applied it: a status query says so
    assert (await rig.set_switch(False))["1"] is False
    assert rig.sim.dps["1"] is False


async def test_a_command_the_plug_never_got_fails(rig: Rig) -> None:
    rig.proxy.lose_up(1, CONTROL_CMDS)
    with pytest.raises(TuyaTimeoutError):
        await rig.set_switch(False)
    assert rig.sim.dps["1"] is True
    assert rig.dev.dps["1"] is True


async def test_bad_crc_on_push_and_heartbeat_reply_is_survived(rig: Rig) -> None:
    rig.proxy.corrupt(1, {Command.HEART_BEAT})
    await wait_until(lambda: rig.proxy.stats.corrupted >= 1, GONE)
    rig.proxy.corrupt(1, {Command.STATUS})
    rig.sim.set_dps_local({"1": False})  # pushed, corrupted
    await wait_until(lambda: rig.proxy.stats.corrupted >= 2, GONE)
    rig.sim.set_dps_local({"1": True})
    await wait_until(lambda: rig.dev.dps["1"] is True, GONE)
    assert rig.dev.bad_frames >= 2
    assert rig.states == [True]


async def test_a_plug_ignoring_heartbeats_stays_connected(rig: Rig) -> None:
    rig.proxy.ignore_cmds = {Command.HEART_BEAT}
    await wait_until(lambda: rig.dev.ignores_heartbeat, GONE)
    dropped = rig.proxy.stats.dropped
    await wait_until(lambda: rig.proxy.stats.frames_down >= dropped + 4, GONE)
    assert rig.states == [True]
    assert (await rig.set_switch(False))["1"] is False


@options(sim_kw={"push_interval": 0.1})
async def test_a_push_only_plug_stays_connected(rig: Rig) -> None:
    pushes: list[dict[str, Any]] = []
    rig.dev.subscribe(pushes.append)
    rig.proxy.only_cmds = {Command.STATUS}
    sent = len(rig.sim.stats.commands)
    # 40 pushes at 0.1 s span several heartbeat intervals + grace (0.5 + 2 s)
    await wait_until(lambda: len(pushes) >= 40, 30)
    assert rig.states == [True]
    # pushes count as signs of life: a heartbeat only for the plug's idle timer (every 2 x 0.5 s)
    heartbeats = rig.sim.stats.commands[sent:].count(Command.HEART_BEAT)
    assert heartbeats <= len(pushes) / 3


async def test_second_client_is_recognised_and_not_fought(rig: Rig) -> None:
    rig.proxy.second_client(0.2)
    await wait_until(lambda: rig.dev.busy, GONE)
    assert any(isinstance(f, TuyaBusyError) for f in rig.failures)
    # polite: after the busy verdict, connections are at least ~polite_wait (1 s) apart
    start = len(rig.proxy.stats.accept_times)
    await wait_until(lambda: len(rig.proxy.stats.accept_times) >= start + 3, GONE)
    times = rig.proxy.stats.accept_times[start:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.7, gaps
    rig.proxy.second_client(None)
    await rig.back()
    await wait_until(lambda: not rig.dev.busy, BACK)


async def test_reboot_with_a_fresh_sequence_counter(rig: Rig) -> None:
    rebooted = SimulatedPlug(
        device_id=DEVICE_ID, local_key=KEY, version=rig.sim.version, seed=99, dps=rig.sim.dps
    )
    await rebooted.start()
    try:
        await rig.proxy.power_off()
        await rig.sim.stop()
        rig.proxy.retarget(rebooted.port)
        await wait_until(lambda: not rig.dev.connected, GONE)
        await rig.proxy.power_on()
        rig.sim = rebooted
        await rig.back()
    finally:
        await rebooted.stop()


@options(dev_kw={"dev_version": "auto"})
async def test_no_version_lock_in_after_lost_replies(rig: Rig) -> None:
    """Issue 7 item 1: a reply lost at a random point never changes the detected version."""
    rng = random.Random(7)
    version = rig.sim.version
    assert rig.dev.version == version
    for _ in range(8):
        rig.proxy.lose(1, skip=rng.randrange(4))
        count = rig.dev.connect_count
        rig.proxy.reset()
        await wait_until(lambda: rig.dev.connect_count > count, BACK)  # noqa: B023
        assert rig.dev.version == version
        with_value = not rig.sim.dps["1"]
        try:
            confirmed = await rig.set_switch(with_value)
        except TuyaError:
            continue  # the lost frame hit this command; no success was claimed
        assert confirmed["1"] is with_value
        assert rig.sim.dps["1"] is with_value
    assert rig.dev.version == version


async def test_wrong_stored_version_heals(loop_errors: list[dict[str, Any]]) -> None:
    """A wrong ``detected_version`` hint (3.2 or 3.1 for a 3.3 plug) heals by itself."""
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version="3.3") as sim:
        for hint in ("3.2", "3.1", "3.5"):
            dev = make_device(sim.port, "auto", version_hint=hint)
            await dev.start()
            try:
                await wait_until(lambda: dev.connected, BACK)  # noqa: B023
                assert dev.version == "3.3"
                assert (await dev.set_dps({"1": False}))["1"] is False
                assert dev.key_failures == 0
            finally:
                await dev.close()
    assert not loop_errors


async def test_wrong_key_is_reported_as_key_error_silence_is_not(
    loop_errors: list[dict[str, Any]],
) -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version="3.3") as sim:
        proxy = FaultProxy(sim.port)
        async with proxy:
            failures: list[TuyaError] = []
            await proxy.blackhole()
            dev = make_device(proxy.port, "3.3")
            dev.subscribe_failure(failures.append)
            await dev.start()
            try:
                await wait_until(lambda: len(failures) >= 3, GONE)
                assert dev.key_failures == 0
                assert not any(isinstance(f, TuyaKeyError) for f in failures)
            finally:
                await dev.close()
            proxy.clear()
            bad = TuyaDevice(
                "127.0.0.1",
                DEVICE_ID,
                "fedcba9876543210",
                port=proxy.port,
                timeout=0.5,
                reconnect_min=0.05,
                reconnect_max=0.1,
            )
            bad.subscribe_failure(failures.append)
            await bad.start()
            try:
                await wait_until(lambda: bad.key_failures >= 3, GONE)
            finally:
                await bad.close()
    assert not loop_errors


async def test_dp_ids_that_are_not_plain_numbers(loop_errors: list[dict[str, Any]]) -> None:
    """Issue 7 item 10: "²".isdigit() is True but int("²") raises; nothing may crash."""
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=KEY, version="3.3", device22=True, dps={"1": True, "²": 5}
    ) as sim:
        async with make_device(sim.port, "3.3") as dev:
            await dev.status()
            dev.dps["²"] = 5  # a DP the plug announced
            dps = await dev.status()  # the device22 query sorts the known ids
            assert dps["1"] is True
            assert (await dev.set_dps({"1": False}))["1"] is False
    assert not loop_errors


async def test_wake_cuts_the_backoff_short(loop_errors: list[dict[str, Any]]) -> None:
    """The plug's UDP broadcast was heard (``wake()``): the next attempt starts at once."""
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version="3.3") as sim:
        async with FaultProxy(sim.port) as proxy:
            await proxy.power_off()
            failures: list[TuyaError] = []
            dev = make_device(proxy.port, "3.3", reconnect_min=60, reconnect_max=60)
            unsubscribe = dev.subscribe_failure(failures.append)
            await dev.start()
            try:
                await wait_until(lambda: len(failures) == 1, GONE)  # now waiting 60 s
                await proxy.power_on()
                dev.wake()
                await dev.wait_connected(BACK)
                unsubscribe()
                unsubscribe()  # idempotent
            finally:
                await dev.close()
            assert isinstance(failures[0], TuyaConnectionError)
            assert not isinstance(failures[0], TuyaBusyError)
    assert not loop_errors

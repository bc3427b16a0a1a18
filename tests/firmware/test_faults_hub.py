"""The fault scenarios of ``tests/test_faults_direct.py`` through the ESP32 hub (issue 7 item 7).

The hub firmware runs on the MicroPython unix port. Two fault-injection proxies
(``tests/faultproxy.py``) sit on the two links of the hub path:

* plug side: hub firmware -> ``FaultProxy`` (frame-aware) -> simulated plug (``tuya_sim``):
  reset, power off and back, blackhole, slow replies, lost replies, bad CRC/tag on the ACK, a
  push and a heartbeat reply, a second client, a reboot with a fresh sequence counter, a plug
  that ignores heartbeats, a push-only plug;
* HA side: Home Assistant's ``HubClient`` -> ``FaultProxy`` (raw bytes) -> hub: reset,
  blackhole, power off of the hub (the firmware process killed and started again), slow link.

Every scenario checks what a user sees: the plug goes offline in the state pushes and the
inventory, comes back by itself, ``set`` never reports a success the plug did not apply, the hub
log has no Traceback and stays short, the HA client leaves no unretrieved task exception. Bounds
are generous (the CI machine is loaded): every wait is on a condition; the measured times are in
``docs/reliability.md`` ("Through the ESP32 hub", ``benchmarks/bench_reliability_hub.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import (
    HubClient,
    HubCommandError,
    HubConnectionError,
    HubError,
    HubTimeoutError,
    StateUpdate,
)
from custom_components.tuya_local_esp.tuya import Command
from tests.faultproxy import FaultProxy
from tuya_sim import SimulatedPlug

from .conftest import KEYS, SECRET, HubProcess, wait_for

BACK = 30.0  # "comes back within" (s): generous, the benchmark measures the real figure
GONE = 30.0  # "goes offline within" (s)
MAX_LOG_LINES = 60  # hub log lines per scenario (info level), beyond the start-up lines
CONTROL_CMDS = {Command.CONTROL, Command.CONTROL_NEW}
# Plug side timing of the hub: heartbeat every 1 s, replies within 2 s (a heartbeat is answered
# by any frame within 1 s, then a status query within 1 s: room for a loaded CI machine),
# backoff at most 1 s.
HUB_CFG: dict[str, Any] = {
    "heartbeat_s": 1,
    "plug_connect_ms": 2000,
    "plug_reply_ms": 2000,
    "plug_backoff_max_s": 1,
    "log_level": "info",
}


def device_id(version: str) -> str:
    return f"bf{version.replace('.', '')}faultplug0abcdef"


@dataclass
class HubRig:
    """A plug, the proxy in front of it, the hub, the proxy in front of the hub, the client."""

    sim: SimulatedPlug
    proxy: FaultProxy  # hub -> plug
    hub: HubProcess
    ha_proxy: FaultProxy  # HA -> hub
    client: HubClient
    updates: list[StateUpdate] = field(default_factory=list)
    links: list[bool] = field(default_factory=list)  # HA <-> hub connection up/down
    log_mark: int = 0

    @property
    def dev(self) -> str:
        return self.sim.device_id

    def online(self) -> bool:
        """The plug as the client's inventory shows it (False while the hub is unreachable)."""
        inv = self.client.inventory
        return bool(inv is not None and self.client.connected and inv.plugs[self.dev].online)

    def offline_pushes(self) -> int:
        return sum(1 for u in self.updates if u.device_id == self.dev and not u.online)

    def online_pushes(self) -> int:
        return sum(1 for u in self.updates if u.device_id == self.dev and u.online)

    async def set_switch(self, value: bool) -> dict[str, Any]:
        return await self.client.set_dps(self.dev, {"1": value})

    async def checked_set(self, value: bool) -> bool:
        """One ``set``: True when it reported success; a success must match the plug."""
        try:
            got = await self.set_switch(value)
        except HubError:
            return False
        assert got == {"1": value}
        assert self.sim.dps["1"] is value, "false success: the plug did not apply it"
        return True

    async def back(self) -> None:
        """The plug is online again for HA and a command goes through."""
        await wait_for(self.online, BACK)
        # the first command may still race a connection the hub is just dropping: retry once
        want = not self.sim.dps["1"]
        if not await self.checked_set(want):
            await wait_for(self.online, BACK)
            assert await self.checked_set(want)

    def attempts_ended(self) -> int:
        """The plug's connections (or attempts) that ended since the scenario started."""
        return self.hub_log().count(f"{self.dev} connection ended")

    def hub_log(self) -> str:
        return self.hub.log()[self.log_mark :]


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    """Exceptions nobody retrieved (asyncio's exception handler)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


async def _rig(
    hub_factory: Any, version: str, sim_kw: dict[str, Any], hub_cfg: dict[str, Any] | None = None
) -> HubRig:
    sim = SimulatedPlug(
        device_id=device_id(version),
        local_key=KEYS[0],
        version=version,
        seed=3,
        dps={"1": True},
        **sim_kw,
    )
    await sim.start()
    proxy = FaultProxy(sim.port)
    await proxy.start()
    record = {
        "id": sim.device_id,
        "key": KEYS[0],
        "host": "127.0.0.1",
        "port": proxy.port,
        "ver": version,
        "name": "faulty",
    }
    hub: HubProcess = hub_factory(plugs=[record], **(HUB_CFG if hub_cfg is None else hub_cfg))
    await hub.start()
    ha_proxy = FaultProxy(hub.port, frames=False)
    await ha_proxy.start()
    client = HubClient(
        "127.0.0.1",
        ha_proxy.port,
        SECRET,
        timeout=10.0,
        connect_timeout=5.0,
        ping_interval=1.0,
        backoff_max=0.5,
    )
    rig = HubRig(sim, proxy, hub, ha_proxy, client)
    client.subscribe(rig.updates.append)
    client.subscribe_connection(rig.links.append)
    return rig


@pytest.fixture(params=["3.3", "3.5"])
async def rig(
    request: pytest.FixtureRequest, hub_factory: Any, loop_errors: list[dict[str, Any]]
) -> AsyncIterator[HubRig]:
    sim_kw: dict[str, Any] = dict(getattr(request.function, "sim_kw", {}))
    r = await _rig(hub_factory, request.param, sim_kw)
    try:
        await r.client.start()
        await r.client.wait_connected(BACK)
        await wait_for(r.online, BACK)
        r.log_mark = len(r.hub.log())
        yield r
    finally:
        await r.client.close()
        await r.ha_proxy.stop()
        await r.proxy.stop()
        await r.sim.stop()
    log = r.hub_log()
    assert "Traceback" not in log, log
    assert r.hub.proc is not None
    assert r.hub.proc.poll() is None, "the hub exited"
    lines = log.splitlines()
    assert len(lines) <= MAX_LOG_LINES, "\n".join(lines)
    assert not loop_errors, loop_errors


def sim_options[F: Callable[..., Any]](**kw: Any) -> Callable[[F], F]:
    """Give the ``rig`` fixture simulator options."""

    def mark(func: F) -> F:
        setattr(func, "sim_kw", kw)  # noqa: B010 - a plain attribute on a function
        return func

    return mark


# ------------------------------------------------------------------ plug side
async def test_plug_reset_goes_offline_and_comes_back(rig: HubRig) -> None:
    rig.proxy.reset()
    await wait_for(lambda: rig.offline_pushes() >= 1, GONE)
    await rig.back()
    assert rig.proxy.stats.accepted >= 2
    assert rig.links == [True]  # HA's link to the hub never dropped


async def test_plug_power_off_then_on(rig: HubRig) -> None:
    await rig.proxy.power_off()
    await wait_for(lambda: not rig.online(), GONE)
    assert rig.offline_pushes() >= 1
    with pytest.raises(HubCommandError) as err:
        await rig.set_switch(False)  # no false success while the plug is off
    assert err.value.code == "offline"
    assert rig.sim.dps["1"] is True
    await wait_for(lambda: rig.attempts_ended() >= 3, GONE)  # refused; the hub keeps trying
    await rig.proxy.power_on()
    await rig.back()
    assert rig.online_pushes() >= 1


@pytest.mark.parametrize("accepting", [True, False])
async def test_plug_blackhole_goes_offline_and_comes_back(rig: HubRig, accepting: bool) -> None:
    await rig.proxy.blackhole(accepting=accepting)
    # heartbeat 1 s, no reply within 1 s, then one status query unanswered for 1 s: offline
    await wait_for(lambda: not rig.online(), GONE)
    assert not await rig.checked_set(False)
    assert rig.sim.dps["1"] is True
    rig.proxy.drop_all()
    await rig.proxy.power_on()
    await rig.back()


async def test_plug_slow_replies_keep_working(rig: HubRig) -> None:
    rig.proxy.slow(0.3)
    for value in (False, True, False):
        assert await rig.checked_set(value)
    assert rig.offline_pushes() == 0


async def test_plug_lost_ack_the_push_confirms(rig: HubRig) -> None:
    rig.proxy.lose(1, CONTROL_CMDS)
    # no ACK, but the STATUS push reports the value asked for: applied, not a timeout
    assert await rig.checked_set(False)
    assert rig.offline_pushes() == 0


async def test_plug_lost_ack_and_push_is_never_a_false_success(rig: HubRig) -> None:
    rig.proxy.lose(2, {*CONTROL_CMDS, Command.STATUS})
    await rig.checked_set(False)  # may fail (the hub saw no ACK); may not lie
    await rig.back()


async def test_plug_lost_push_after_the_ack_the_state_decides(rig: HubRig) -> None:
    rig.proxy.lose(1, {Command.STATUS})
    # the ACK came, the STATUS did not: the hub's status query confirms the value
    assert await rig.checked_set(False)
    assert rig.offline_pushes() == 0


async def test_plug_command_never_reaching_the_plug_fails(rig: HubRig) -> None:
    rig.proxy.lose_up(1, CONTROL_CMDS)
    with pytest.raises(HubCommandError):
        await rig.set_switch(False)
    assert rig.sim.dps["1"] is True
    await rig.back()


async def test_plug_ack_with_a_bad_crc_is_never_a_false_success(rig: HubRig) -> None:
    rig.proxy.corrupt(1, CONTROL_CMDS)
    await rig.checked_set(False)
    assert rig.proxy.stats.corrupted == 1
    await rig.back()


async def test_plug_bad_crc_on_push_and_heartbeat_reply_is_survived(rig: HubRig) -> None:
    rig.proxy.corrupt(1, {Command.HEART_BEAT})
    await wait_for(lambda: rig.proxy.stats.corrupted >= 1, GONE)
    await wait_for(rig.online, BACK)
    rig.proxy.corrupt(1, {Command.STATUS})
    rig.sim.set_dps_local({"1": False})  # pushed, corrupted
    await wait_for(lambda: rig.proxy.stats.corrupted >= 2, GONE)
    rig.sim.set_dps_local({"1": True})
    await wait_for(lambda: rig.online() and rig.client.inventory.plugs[rig.dev].dps["1"], BACK)  # type: ignore[union-attr]
    await rig.back()


async def test_plug_ignoring_heartbeats_stays_online(rig: HubRig) -> None:
    rig.proxy.ignore_cmds = {Command.HEART_BEAT}
    await wait_for(lambda: rig.proxy.stats.dropped >= 6, GONE)  # 6 heartbeats ignored
    assert rig.offline_pushes() == 0
    assert rig.proxy.stats.accepted == 1
    assert await rig.checked_set(False)


@sim_options(push_interval=0.1)
async def test_plug_push_only_stays_online(rig: HubRig) -> None:
    rig.proxy.only_cmds = {Command.STATUS}
    pushes = len(rig.updates)
    # 40 pushes at 0.1 s span several heartbeat periods + reply windows (1 + 1 s)
    await wait_for(lambda: len(rig.updates) >= pushes + 40, BACK)
    assert rig.offline_pushes() == 0
    assert rig.proxy.stats.accepted == 1


async def test_plug_second_client_is_not_fought(rig: HubRig) -> None:
    rig.proxy.second_client(0.5)
    start = len(rig.proxy.stats.accept_times)
    await wait_for(lambda: len(rig.proxy.stats.accept_times) >= start + 4, GONE)
    times = rig.proxy.stats.accept_times[start:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the hub waits its backoff (>= 1 s) between connections: never a reconnect storm
    assert min(gaps) >= 0.9, gaps
    rig.proxy.second_client(None)
    await rig.back()


async def test_plug_reboot_with_a_fresh_sequence_counter(rig: HubRig) -> None:
    rebooted = SimulatedPlug(
        device_id=rig.dev, local_key=KEYS[0], version=rig.sim.version, seed=99, dps=rig.sim.dps
    )
    await rebooted.start()
    old = rig.sim
    try:
        await rig.proxy.power_off()
        await old.stop()
        rig.proxy.retarget(rebooted.port)
        await wait_for(lambda: not rig.online(), GONE)
        await rig.proxy.power_on()
        rig.sim = rebooted
        await rig.back()
    finally:
        rig.sim = old
        await rebooted.stop()


# ------------------------------------------------------------------ HA side
async def test_ha_link_reset_comes_back(rig: HubRig) -> None:
    rig.ha_proxy.reset()
    await wait_for(lambda: False in rig.links, GONE)
    assert not rig.online()  # the inventory shows the plug offline while the hub is away
    await rig.back()
    assert rig.links[-1] is True


async def test_ha_link_blackhole_goes_down_and_comes_back(rig: HubRig) -> None:
    await rig.ha_proxy.blackhole()
    with pytest.raises((HubTimeoutError, HubConnectionError)):
        await rig.set_switch(False)
    assert rig.sim.dps["1"] is True
    await wait_for(lambda: False in rig.links, GONE)  # the ping went unanswered
    assert not rig.online()
    rig.ha_proxy.drop_all()
    await rig.ha_proxy.power_on()
    await rig.back()


async def test_hub_power_off_and_restart(rig: HubRig) -> None:
    proc = rig.hub.proc
    assert proc is not None
    proc.kill()  # power cut: no goodbye to anyone
    proc.wait(10)
    await wait_for(lambda: False in rig.links, GONE)
    assert not rig.online()
    with pytest.raises(HubConnectionError):
        await rig.set_switch(False)
    assert rig.sim.dps["1"] is True
    mark = len(rig.hub.log())
    await rig.hub.start()
    rig.log_mark = mark
    await rig.back()


async def test_ha_link_slow_keeps_working(rig: HubRig) -> None:
    rig.ha_proxy.slow(0.3)
    for value in (False, True, False):
        assert await rig.checked_set(value)
    assert rig.links == [True]


async def test_plug_back_from_a_power_cut_is_found_fast(
    hub_factory: Any, loop_errors: list[dict[str, Any]]
) -> None:
    """With the hub's default backoff (plug_backoff_max_s 60): after a 22 s power cut the plug is
    back within 10 s (attempts every 2 s for the first 10 minutes of an outage; the old
    doubling 1, 2, 4, 8, 16 s backoff retried only 33-40 s after the cut, 11-18 s late)."""
    cfg = {k: v for k, v in HUB_CFG.items() if k != "plug_backoff_max_s"}
    r = await _rig(hub_factory, "3.3", {}, cfg)
    try:
        await r.client.start()
        await wait_for(r.online, BACK)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await r.proxy.power_off()
        await wait_for(lambda: not r.online(), GONE)
        await wait_for(lambda: r.attempts_ended() >= 4, GONE)  # several refused attempts
        await asyncio.sleep(max(0.0, t0 + 22 - loop.time()))  # the outage lasts 22 s
        await r.proxy.power_on()
        await wait_for(r.online, 10)
        assert await r.checked_set(False)
    finally:
        await r.client.close()
        await r.ha_proxy.stop()
        await r.proxy.stop()
        await r.sim.stop()
    assert "Traceback" not in r.hub.log()
    assert not loop_errors

"""TuyaDevice against the simulator over real TCP on loopback, for every protocol version."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import (
    Command,
    TuyaConnectionError,
    TuyaDevice,
    TuyaKeyError,
    TuyaTimeoutError,
)
from tuya_sim import SimulatedPlug

from .conftest import wait_until

DEVICE_ID = "bf0123456789abcdefgh"
KEY = "0123456789abcdef"
VERSIONS = ["3.1", "3.2", "3.3", "3.4", "3.5"]


@pytest.fixture(params=VERSIONS)
async def plug(request: pytest.FixtureRequest) -> AsyncIterator[SimulatedPlug]:
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=KEY, version=request.param, seed=1
    ) as sim:
        yield sim


def client(sim: SimulatedPlug, **kwargs: Any) -> TuyaDevice:
    kwargs.setdefault("timeout", 2.0)
    return TuyaDevice(
        "127.0.0.1", DEVICE_ID, kwargs.pop("key", KEY), version=sim.version, port=sim.port, **kwargs
    )


async def test_status_set_and_push(plug: SimulatedPlug) -> None:
    async with client(plug) as dev:
        dps = await dev.status()
        assert dps["1"] is plug.dps["1"]
        assert dps["20"] == plug.dps["20"]
        pushes: list[dict[str, Any]] = []
        unsubscribe = dev.subscribe(pushes.append)
        confirmed = await dev.set_dps({"1": False})
        assert confirmed["1"] is False
        assert plug.dps["1"] is False
        assert dev.dps["19"] == 0  # power 0 while off
        confirmed = await dev.set_dps({"1": True})
        assert confirmed["1"] is True
        assert plug.dps["1"] is True
        # the local button: the plug pushes STATUS on its own
        plug.set_dps_local({"1": False})
        await wait_until(lambda: dev.dps.get("1") is False, 2)
        assert any(p.get("1") is False for p in pushes)
        unsubscribe()
        await dev.heartbeat()
        await dev.update_dps([18, 19, 20])


async def test_updatedps_refreshes_power(plug: SimulatedPlug) -> None:
    plug.power_needs_updatedps = True
    async with client(plug) as dev:
        got: list[dict[str, Any]] = []
        dev.subscribe(got.append)
        await dev.update_dps()
        await wait_until(lambda: any("19" in d for d in got), 2)
        assert dev.dps["19"] == plug.dps["19"]


async def test_wrong_key_raises_key_error(plug: SimulatedPlug) -> None:
    if plug.version == "3.1":
        # 3.1 queries are plaintext (spec §2.2): only CONTROL shows that the key is wrong.
        before = plug.dps["1"]
        async with client(plug, key="fedcba9876543210", timeout=0.5) as dev:
            assert (await dev.status())["1"] is before
            with pytest.raises(TuyaTimeoutError):
                await dev.set_dps({"1": not before})
        assert plug.dps["1"] is before
        return
    with pytest.raises(TuyaKeyError):
        async with client(plug, key="fedcba9876543210", timeout=0.5):
            pass
    assert plug.stats.bad_key >= 1


async def test_unreachable_device() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dev = TuyaDevice("127.0.0.1", DEVICE_ID, KEY, port=port, timeout=1)
    with pytest.raises(TuyaConnectionError):
        await dev.connect()
    with pytest.raises(TuyaConnectionError):
        await dev.status()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TuyaDevice("127.0.0.1", DEVICE_ID, "short")
    with pytest.raises(ValueError, match="version"):
        TuyaDevice("127.0.0.1", DEVICE_ID, KEY, version="2.0")


@pytest.mark.parametrize("version", ["3.3", "3.5"])
async def test_reconnects_after_plug_restart(version: str) -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version=version) as sim:
        states: list[bool] = []
        dev = client(sim, reconnect_min=0.05, reconnect_max=0.2)
        dev.subscribe_connection(states.append)
        async with dev:
            await sim.stop()
            await wait_until(lambda: not dev.connected, 3)
            with pytest.raises(TuyaConnectionError):
                await dev.set_dps({"1": False})
            await sim.start()
            await dev.wait_connected(3)
            assert (await dev.set_dps({"1": False}))["1"] is False
        assert states == [True, False, True, False]
        assert dev.connect_count == 2


async def test_start_in_background_waits_for_plug() -> None:
    sim = SimulatedPlug(device_id=DEVICE_ID, local_key=KEY)
    await sim.start()
    port = sim.port
    await sim.stop()
    dev = TuyaDevice(
        "127.0.0.1", DEVICE_ID, KEY, port=port, timeout=1, reconnect_min=0.05, reconnect_max=0.1
    )
    await dev.start()  # returns at once although the plug is off
    assert not dev.connected
    sim2 = SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, port=port)
    async with sim2:
        await dev.wait_connected(3)
        try:
            assert (await dev.status())["1"] is sim2.dps["1"]
        finally:
            await dev.close()
    with pytest.raises(TuyaTimeoutError):
        await dev.wait_connected(0.01)


async def test_heartbeat_keeps_connection_past_idle_timeout() -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, idle_timeout=1.5) as sim:
        async with client(sim, heartbeat_interval=0.2, refresh_interval=0.3) as dev:
            # 10 heartbeats 0.2 s apart span the plug's idle timeout (1.5 s) with margin
            await wait_until(lambda: sim.stats.commands.count(Command.HEART_BEAT) >= 10, 15)
            assert dev.connected
            assert dev.connect_count == 1
            assert sim.stats.idle_drops == 0
            assert Command.UPDATEDPS in sim.stats.commands


async def test_idle_connection_is_dropped_and_restored() -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, idle_timeout=0.3) as sim:
        dev = client(sim, heartbeat_interval=60, reconnect_min=0.05)
        async with dev:
            await wait_until(lambda: dev.connect_count >= 2 and dev.connected, 3)
            assert (await dev.status())["1"] is sim.dps["1"]


async def test_single_connection_plug_refuses_second_client() -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY) as sim:
        async with client(sim, auto_reconnect=False) as first:
            with pytest.raises((TuyaConnectionError, TuyaKeyError)):
                async with client(sim, auto_reconnect=False, timeout=0.5):
                    pass
            assert (await first.status())["1"] is sim.dps["1"]


async def test_device22_fallback() -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=KEY, version="3.3", device22=True
    ) as sim:
        async with client(sim) as dev:
            dps = await dev.status()
            assert dps["1"] is sim.dps["1"]
            assert dps["20"] == sim.dps["20"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_auto_version_finds_the_plugs_version(version: str) -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version=version) as sim:
        dev = TuyaDevice("127.0.0.1", DEVICE_ID, KEY, version="auto", port=sim.port, timeout=1)
        async with dev:
            # 3.2 plugs accept 3.3 frames (tuyapi always writes "3.3" for them, spec §2.3)
            assert dev.version == ("3.3" if version == "3.2" else version)
            assert (await dev.set_dps({"1": False}))["1"] is False
            assert sim.dps["1"] is False


async def test_auto_version_follows_a_firmware_update() -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version="3.3") as sim:
        dev = TuyaDevice(
            "127.0.0.1",
            DEVICE_ID,
            KEY,
            version="auto",
            port=sim.port,
            timeout=1,
            reconnect_min=0.05,
            reconnect_max=0.1,
        )
        async with dev:
            assert dev.version == "3.3"
            await sim.stop()
            sim.version = "3.5"  # the plug's firmware update changed its protocol
            await sim.start()
            await wait_until(lambda: dev.connected and dev.version == "3.5", 10)
            assert (await dev.set_dps({"1": True}))["1"] is True


async def test_auto_version_with_a_wrong_key() -> None:
    async with SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version="3.4") as sim:
        dev = TuyaDevice(
            "127.0.0.1",
            DEVICE_ID,
            "fedcba9876543210",
            version="auto",
            port=sim.port,
            timeout=0.3,
            auto_reconnect=False,
        )
        with pytest.raises(TuyaKeyError, match="no protocol version"):
            await dev.connect()
        assert dev.version == "3.3"  # the hint is kept for the next attempt


async def test_auto_version_unreachable_does_not_probe() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dev = TuyaDevice("127.0.0.1", DEVICE_ID, KEY, version="auto", version_hint="3.5", port=port)
    with pytest.raises(TuyaConnectionError):
        await dev.connect()
    assert dev.version == "3.5"

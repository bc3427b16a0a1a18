"""Every simulator DP profile (``--profile``), driven over TCP by the real client (issue 10 item 6).

The profiles' DP tables and sources are in ``tuya_sim/profiles.py``; these tests check that a plug
of each profile reports its layout, switches its outlets with the metering in the profile's units,
accepts its settings and pushes its read-only DPs, whatever the protocol version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import TuyaDevice
from tuya_sim import PROFILES, SimulatedPlug
from tuya_sim.__main__ import build_parser, plugs_from_args
from tuya_sim.plug import PlugModel
from tuya_sim.profiles import RELAY_STATUS_SETS, fault_bitmap, get_profile

from .conftest import DEVICE_ID, LOCAL_KEY
from .replay import Collector

VERSIONS = ("3.1", "3.3", "3.4", "3.5")
LOAD_W = 200.0


def version_for(name: str) -> str:
    """Spread the profiles over the protocol versions (stable per name)."""
    return VERSIONS[sorted(PROFILES).index(name) % len(VERSIONS)]


@asynccontextmanager
async def connected(name: str, **kwargs: Any) -> AsyncIterator[tuple[SimulatedPlug, TuyaDevice]]:
    version = kwargs.pop("version", version_for(name))
    kwargs.setdefault("noise", 0.0)
    async with SimulatedPlug(
        device_id=DEVICE_ID,
        local_key=LOCAL_KEY,
        version=version,
        profile=name,
        load_w=LOAD_W,
        seed=5,
        **kwargs,
    ) as plug:
        dev = TuyaDevice(
            "127.0.0.1",
            DEVICE_ID,
            LOCAL_KEY,
            version=version,
            port=plug.port,
            heartbeat_interval=3600,
        )
        async with asyncio.timeout(60):
            await dev.connect()
            try:
                yield plug, dev
            finally:
                await dev.close()


@pytest.mark.parametrize("name", sorted(PROFILES))
async def test_profile_layout_and_metering_over_tcp(name: str) -> None:
    """Status has exactly the profile's DPs; switching an outlet on reports the load in units."""
    profile = get_profile(name)
    async with connected(name) as (plug, dev):
        dps = await dev.status()
        assert set(dps) == set(profile.default_dps())
        assert all(dps[sw] is False for sw in profile.switches)
        if profile.voltage:
            assert 2200 <= dps[profile.voltage] <= 2400  # V x 10
        confirmed = await dev.set_dps({profile.outlets[0]: True})
        assert confirmed[profile.outlets[0]] is True
        if profile.power:
            assert confirmed[profile.power] == round(LOAD_W * profile.power_scale)
        if profile.current and profile.voltage:
            volts = confirmed[profile.voltage] / 10
            assert confirmed[profile.current] == round(LOAD_W / volts * 1000)  # mA
        off = await dev.set_dps({profile.outlets[0]: False})
        if profile.power:
            assert off[profile.power] == 0
        assert plug.dps[profile.outlets[0]] is False


@pytest.mark.parametrize("name", [f"strip{n}" for n in range(2, 7)])
async def test_strip_outlets_usb_and_countdowns(name: str) -> None:
    profile = get_profile(name)
    n = len(profile.outlets)
    assert profile.outlets == tuple(str(i) for i in range(1, n + 1))
    assert profile.usb == "7"
    assert list(profile.countdowns.values()) == [str(9 + i) for i in range(n)]
    async with connected(name) as (plug, dev):
        both = await dev.set_dps({"1": True, str(n): True})
        assert both[profile.power or ""] == round(2 * LOAD_W * 10)  # two outlets draw twice
        usb = await dev.set_dps({"7": True})
        assert usb == {"7": True}  # USB power is not metered
        pushes = Collector()
        dev.subscribe(pushes)
        last_countdown = profile.countdowns[str(n)]
        await dev.set_dps({last_countdown: 1})  # outlet n switches off after 1 s
        async with asyncio.timeout(30):
            while not any(p.get(str(n)) is False for p in pushes.items):
                await pushes.wait_count(len(pushes.items) + 1)
        assert plug.dps[str(n)] is False
        assert plug.dps["1"] is True
        assert plug.dps[last_countdown] == 0


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("standard", RELAY_STATUS_SETS["standard"]),
        ("relay-offonmemory", RELAY_STATUS_SETS["off_on_memory"]),
        ("relay-digits", RELAY_STATUS_SETS["digits"]),
    ],
)
async def test_cz_settings_and_fault_bitmap(name: str, values: tuple[str, ...]) -> None:
    async with connected(name) as (plug, dev):
        dps = await dev.status()
        assert dps["38"] == values[2]  # last / memory / 2
        for value in values:
            assert (await dev.set_dps({"38": value}))["38"] == value
        assert (await dev.set_dps({"39": "pos"}))["39"] == "pos"
        assert (await dev.set_dps({"40": True}))["40"] is True
        pushes = Collector()
        dev.subscribe(pushes)
        fault = fault_bitmap("ov_cr", "ls_pow")
        assert fault == 0b100001
        plug.set_dps_local({"26": fault})
        async with asyncio.timeout(30):
            await pushes.wait_count(1)
        assert pushes.items[0] == {"26": fault}


def test_settings_reject_values_outside_their_set() -> None:
    model = PlugModel(profile="relay-digits")
    assert model.apply({"38": "last", "39": "blink", "40": 1, "26": 4}) == {}
    assert model.apply({"38": "0"}) == {"38": "0"}
    legacy = PlugModel(profile="legacy")
    assert legacy.apply({"2": 1441}) == {}  # the legacy timer counts minutes, at most 1440
    assert legacy.apply({"2": 1440}) == {"2": 1440}
    with pytest.raises(ValueError, match="unknown profile"):
        PlugModel(profile="nope")
    with pytest.raises(ValueError, match="fault bit"):
        fault_bitmap("ov_temp")


async def test_standard_energy_is_sent_as_increments() -> None:
    """DP 17 reports the Wh since its last report (then restarts at 0); aubess keeps a total."""
    async with connected("standard", energy_speedup=3_600_000.0, version="3.4") as (_, dev):
        await dev.set_dps({"1": True})  # 200 W, 1000 h of energy per real second
        async with asyncio.timeout(30):
            while (await dev.status())["17"] == 0:
                pass
        await dev.set_dps({"1": False})
        await dev.status()  # reports (and so clears) what accrued until the switch-off
        assert (await dev.status())["17"] == 0  # nothing since: the increment is 0
    async with connected("aubess", energy_speedup=3_600_000.0, version="3.4") as (_, dev):
        await dev.set_dps({"1": True})
        async with asyncio.timeout(30):
            while (await dev.status())["17"] == 0:
                pass
        await dev.set_dps({"1": False})
        total = (await dev.status())["17"]
        assert total > 0
        assert (await dev.status())["17"] == total  # a running total stays


async def test_power_x1_and_swapped_units() -> None:
    async with connected("power-x1") as (_, dev):
        assert (await dev.set_dps({"1": True}))["19"] == round(LOAD_W)  # whole watts
    async with connected("swapped") as (_, dev):
        on = await dev.set_dps({"1": True})
        assert on["20"] == round(LOAD_W * 10)  # power on 20
        assert 2200 <= on["19"] <= 2400  # voltage on 19


def test_cli_profile_option() -> None:
    args = build_parser().parse_args(["--plugs", "2", "--port", "0", "--profile", "strip3"])
    plugs = plugs_from_args(args)
    assert [p.profile.name for p in plugs] == ["strip3", "strip3"]
    assert build_parser().parse_args([]).profile == "standard"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--profile", "nope"])

"""The plug's electrical model (tuya_sim.plug), with an injected clock."""

from __future__ import annotations

import pytest

from tuya_sim.plug import PlugModel, default_dps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_match_the_standard_cz_layout() -> None:
    dps = default_dps()
    assert list(dps) == ["1", "9", "17", "18", "19", "20", "26", "38", "39", "40"]
    assert dps["38"] == "last"
    assert dps["39"] == "relay"
    assert dps["40"] is False
    assert dps["26"] == 0


def test_defaults_match_the_aubess_dp_layout() -> None:
    dps = default_dps("aubess")
    assert list(dps) == ["1", "9", "17", "18", "19", "20", "21", "22", "23", "24", "25"]
    assert dps["1"] is False
    assert dps["20"] == 2300
    assert dps["21"] == "memory"


def test_readings_scale_and_zero_when_off() -> None:
    model = PlugModel(load_w=230.0, noise=0.0, seed=1)
    assert model.measure()["19"] == 0
    reported = model.apply({"1": True})
    assert reported["1"] is True
    assert reported["19"] == 2300  # W x 10
    assert reported["18"] == pytest.approx(1000, abs=10)  # 230 W at ~230 V = ~1 A
    assert 2250 <= reported["20"] <= 2350
    assert model.apply({"1": False}) == {"1": False, "18": 0, "19": 0}
    assert model.dps["19"] == 0


def test_energy_integrates_power_over_time() -> None:
    clock = Clock()
    model = PlugModel(load_w=1000.0, noise=0.0, seed=1, clock=clock, profile="aubess")
    model.apply({"1": True})
    clock.now += 1800  # half an hour at 1 kW
    assert model.refresh(["17"]) == {"17": 500}
    model.apply({"1": False})
    clock.now += 3600  # nothing while off
    assert model.refresh(["17"]) == {"17": 500}


def test_energy_speedup() -> None:
    clock = Clock()
    model = PlugModel(load_w=100.0, noise=0.0, energy_speedup=3600.0, clock=clock)
    model.apply({"1": True})
    clock.now += 1.0
    assert model.refresh(["17"])["17"] == 100


def test_quirk_keeps_power_stale_until_refresh() -> None:
    model = PlugModel(load_w=500.0, noise=0.0, seed=2)
    assert model.apply({"1": True}, report_power=False) == {"1": True}
    assert model.dps["19"] == 0
    assert model.refresh(["18", "19", "20"])["19"] == 5000


def test_apply_ignores_invalid_and_reads_nulls() -> None:
    model = PlugModel(seed=3, profile="aubess")
    assert model.apply({"1": 1, "9": -5, "19": 50, "21": "sometimes", "77": True}) == {}
    assert model.apply({"21": None, "1": None}) == {"21": "memory", "1": False}
    assert model.apply({"21": "off", "9": 60, "25": 2000}) == {"21": "off", "9": 60, "25": 2000}


def test_drift_reports_only_changes_and_countdown_toggles() -> None:
    model = PlugModel(load_w=800.0, noise=0.05, seed=4)
    model.apply({"1": True})
    changed = model.drift()
    assert set(changed) <= {"17", "18", "19", "20"}
    assert "19" in changed
    assert model.countdown_expired() == {"1": False, "9": 0, "18": 0, "19": 0}
    assert model.countdown_expired()["1"] is True


def test_seed_makes_readings_reproducible() -> None:
    a = PlugModel(seed=9, dps={"1": True})
    b = PlugModel(seed=9, dps={"1": True})
    assert a.refresh() == b.refresh()


def test_energy_counter_can_be_reset() -> None:
    clock = Clock()
    model = PlugModel(load_w=1000.0, noise=0.0, seed=1, clock=clock, profile="aubess")
    model.apply({"1": True})
    clock.now += 3600
    assert model.refresh(["17"]) == {"17": 1000}
    model.set_energy(0)
    assert model.dps["17"] == 0
    clock.now += 360
    assert model.refresh(["17"]) == {"17": 100}

"""Electrical model and data points of a simulated AUBESS "Smart Socket 20A" power-monitoring plug.

The DP layout is the common Tuya "cz/kg" plug with metering (spec ``tuya-protocol.md`` §5;
tuyapower ``__init__.py``, tuya-local ``devices/smartplugv2_energy.yaml``, tinytuya README
"Version 3.3 - Plug"):

======  ==========================  =====================================
DP      meaning                     unit / type
======  ==========================  =====================================
``1``   switch                      bool
``9``   countdown                   s (int); relay toggles when it hits 0
``17``  added energy (``add_ele``)  Wh (int), grows while a load is on
``18``  current                     mA (int)
``19``  power                       W x 10 (int)
``20``  voltage                     V x 10 (int), ~2300 +- noise
``21``  power-on behaviour          ``"off" | "on" | "memory"``
``22``  voltage calibration coeff   int
``23``  current calibration coeff   int
``24``  power calibration coeff     int
``25``  leakage-current threshold   int
======  ==========================  =====================================

This module is pure (no I/O): :class:`PlugModel` holds the reported DPs and produces fresh
measurements; :mod:`tuya_sim.server` decides when they are reported.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

DP_SWITCH: Final = "1"
DP_COUNTDOWN: Final = "9"
DP_ENERGY: Final = "17"
DP_CURRENT: Final = "18"
DP_POWER: Final = "19"
DP_VOLTAGE: Final = "20"
DP_POWER_ON: Final = "21"

#: The DPs a metering chip refreshes (the UPDATEDPS default; spec §5 "power DPs frequently need
#: UPDATEDPS 0x12 with dpId:[18,19,20]").
POWER_DPS: Final = (DP_CURRENT, DP_POWER, DP_VOLTAGE)

POWER_ON_CHOICES: Final = ("off", "on", "memory")


def default_dps() -> dict[str, Any]:
    """DPs of a freshly plugged-in socket with the relay off."""
    return {
        DP_SWITCH: False,
        DP_COUNTDOWN: 0,
        DP_ENERGY: 0,
        DP_CURRENT: 0,
        DP_POWER: 0,
        DP_VOLTAGE: 2300,
        DP_POWER_ON: "memory",
        "22": 620,
        "23": 30000,
        "24": 17600,
        "25": 3000,
    }


def _valid(dp: str, value: Any) -> bool:
    """Whether ``value`` is acceptable for writable DP ``dp``."""
    if dp == DP_SWITCH:
        return isinstance(value, bool)
    if dp == DP_POWER_ON:
        return value in POWER_ON_CHOICES
    if dp == DP_COUNTDOWN:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 86400
    return isinstance(value, int) and not isinstance(value, bool)


#: DPs a client may write. The measured DPs 17-20 are read-only (writes are ignored).
WRITABLE_DPS: Final = frozenset({DP_SWITCH, DP_COUNTDOWN, DP_POWER_ON, "22", "23", "24", "25"})


class PlugModel:
    """Reported DPs plus the electrical state behind them.

    Args:
        load_w: nominal power of the appliance plugged in, watts (drawn only while the relay is on).
        noise: relative standard deviation of the power reading (0.03 = 3 %).
        seed: seed of the random generator (deterministic readings in tests).
        dps: initial DPs (merged over :func:`default_dps`).
        energy_speedup: energy accrues this many times faster than real time (demos).
        clock: monotonic clock in seconds (injectable for tests).

    """

    def __init__(
        self,
        *,
        load_w: float = 100.0,
        noise: float = 0.03,
        seed: int | None = None,
        dps: Mapping[str, Any] | None = None,
        energy_speedup: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.load_w = load_w
        self.noise = noise
        self.energy_speedup = energy_speedup
        self._rng = random.Random(seed)
        self._clock = clock
        self.dps: dict[str, Any] = default_dps()
        if dps:
            self.dps.update({str(k): v for k, v in dps.items()})
        self._energy_wh = float(self.dps.get(DP_ENERGY, 0))
        self._last = clock()
        # the power the meter currently sees (W); energy integrates it
        self._power_w = self._draw() if self.is_on else 0.0

    @property
    def is_on(self) -> bool:
        """Relay state (DP 1)."""
        return bool(self.dps.get(DP_SWITCH))

    def _draw(self) -> float:
        """One noisy sample of the appliance's power, watts."""
        return max(0.0, self._rng.gauss(self.load_w, self.load_w * self.noise))

    # ------------------------------------------------------------------ measurement
    def advance(self) -> None:
        """Integrate energy up to now (call before reading DP 17)."""
        now = self._clock()
        dt = max(0.0, now - self._last) * self.energy_speedup
        self._last = now
        self._energy_wh += self._power_w * dt / 3600.0

    def measure(self) -> dict[str, int]:
        """Fresh readings of DPs 17-20 (not yet stored in :attr:`dps`)."""
        self.advance()
        self._power_w = self._draw() if self.is_on else 0.0
        voltage_dv = round(self._rng.gauss(2300, 8))
        current_ma = round(self._power_w / (voltage_dv / 10) * 1000) if self._power_w else 0
        return {
            DP_ENERGY: int(self._energy_wh),
            DP_CURRENT: current_ma,
            DP_POWER: round(self._power_w * 10),
            DP_VOLTAGE: voltage_dv,
        }

    def refresh(self, dp_ids: Any = None) -> dict[str, Any]:
        """Store fresh readings for ``dp_ids`` (default 17-20) and return the refreshed DPs.

        Unknown or non-measured ids are returned with their stored value (a real plug re-reports
        whatever DP was asked for if it has it) and ids the plug does not have are left out.
        """
        fresh = self.measure()
        ids = [DP_ENERGY, *POWER_DPS] if dp_ids is None else [str(i) for i in dp_ids]
        out: dict[str, Any] = {}
        for dp in ids:
            if dp in fresh:
                self.dps[dp] = fresh[dp]
            if dp in self.dps:
                out[dp] = self.dps[dp]
        return out

    def set_energy(self, wh: float) -> None:
        """Set the energy counter (DP 17), e.g. 0 as after a report to the cloud (spec §5)."""
        self.advance()
        self._energy_wh = float(wh)
        self.dps[DP_ENERGY] = int(wh)

    # ------------------------------------------------------------------ control
    def apply(self, requested: Mapping[str, Any], *, report_power: bool = True) -> dict[str, Any]:
        """Apply a CONTROL request and return what the plug reports afterwards.

        ``None`` values are read requests (the "null DPS" query of spec §4/§2.10): the current value
        is reported and nothing changes. Values of the wrong type and read-only or unknown DPs are
        ignored. Switching the relay off zeroes current and power at once; switching it on reports
        a fresh measurement only when ``report_power`` (plugs with the UPDATEDPS quirk keep the
        stale power until asked).
        """
        out: dict[str, Any] = {}
        switched = False
        for key, value in requested.items():
            dp = str(key)
            if dp not in self.dps:
                continue
            if value is None:
                out[dp] = self.dps[dp]
                continue
            if dp not in WRITABLE_DPS or not _valid(dp, value):
                continue
            if dp == DP_SWITCH and value != self.dps[dp]:
                self.advance()  # close the energy interval at the old power
                switched = True
            self.dps[dp] = value
            out[dp] = value
        if switched:
            out.update(self._after_switch(report_power=report_power))
        return out

    def _after_switch(self, *, report_power: bool) -> dict[str, Any]:
        if not self.is_on:
            self._power_w = 0.0
            self.dps[DP_CURRENT] = 0
            self.dps[DP_POWER] = 0
            return {DP_CURRENT: 0, DP_POWER: 0}
        self._power_w = self._draw()
        if not report_power:
            return {}
        return self.refresh(POWER_DPS)

    def drift(self) -> dict[str, Any]:
        """Periodic meter update: refresh DPs 17-20 and return those whose value changed."""
        before = {dp: self.dps.get(dp) for dp in (DP_ENERGY, *POWER_DPS)}
        now = self.refresh()
        return {dp: v for dp, v in now.items() if before.get(dp) != v}

    def countdown_expired(self, *, report_power: bool = True) -> dict[str, Any]:
        """DP 9 reached 0: toggle the relay, as the real countdown does."""
        self.dps[DP_COUNTDOWN] = 0
        out = self.apply({DP_SWITCH: not self.is_on}, report_power=report_power)
        out[DP_COUNTDOWN] = 0
        return out

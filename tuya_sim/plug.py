"""Electrical model and data points of a simulated Tuya plug, per DP profile.

The DP layout comes from a :class:`~tuya_sim.profiles.Profile` (default ``standard``: the Tuya
``cz`` metering plug, see :mod:`tuya_sim.profiles` for every layout and its sources). Units follow
the profile: energy in Wh (kWh x 1000, a running total or increments since the last report),
current in mA, power in W x ``power_scale``, voltage in V x 10 (spec ``tuya-protocol.md`` §5).

This module is pure (no I/O): :class:`PlugModel` holds the reported DPs and produces fresh
measurements; :mod:`tuya_sim.server` decides when they are reported.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from .profiles import Profile, get_profile

# DP ids of the default layouts, kept for callers of the original module
DP_SWITCH: Final = "1"
DP_COUNTDOWN: Final = "9"
DP_ENERGY: Final = "17"
DP_CURRENT: Final = "18"
DP_POWER: Final = "19"
DP_VOLTAGE: Final = "20"

#: The DPs a metering chip refreshes in the standard layout (the UPDATEDPS default; spec §5).
POWER_DPS: Final = (DP_CURRENT, DP_POWER, DP_VOLTAGE)

#: Largest countdown, seconds (Tuya standard instruction set: 0-86400).
MAX_COUNTDOWN_S: Final = 86400


def default_dps(profile: str | Profile | None = None) -> dict[str, Any]:
    """DPs of a freshly plugged-in device of ``profile`` (default ``standard``), relays off."""
    return get_profile(profile).default_dps()


class PlugModel:
    """Reported DPs plus the electrical state behind them.

    Args:
        load_w: power drawn per outlet that is on, watts.
        noise: relative standard deviation of the power reading (0.03 = 3 %).
        seed: seed of the random generator (deterministic readings in tests).
        dps: initial DPs (merged over the profile's defaults).
        energy_speedup: energy accrues this many times faster than real time (demos).
        clock: monotonic clock in seconds (injectable for tests).
        profile: a profile name or :class:`~tuya_sim.profiles.Profile` (default ``standard``).

    Raises:
        ValueError: unknown profile name.

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
        profile: str | Profile | None = None,
    ) -> None:
        """See the class docstring."""
        self.profile = get_profile(profile)
        self.load_w = load_w
        self.noise = noise
        self.energy_speedup = energy_speedup
        self._rng = random.Random(seed)
        self._clock = clock
        self.dps: dict[str, Any] = self.profile.default_dps()
        if dps:
            self.dps.update({str(k): v for k, v in dps.items()})
        energy = self.profile.energy
        self._energy_wh = float(self.dps.get(energy, 0)) if energy else 0.0
        # increments: the part of _energy_wh already reported
        self._energy_base = 0.0
        self._last = clock()
        self._power_w = self._draw()

    # ------------------------------------------------------------------ state
    @property
    def outlets_on(self) -> int:
        """Number of outlets whose relay is on."""
        return sum(1 for dp in self.profile.outlets if self.dps.get(dp))

    @property
    def is_on(self) -> bool:
        """True when any outlet is on."""
        return self.outlets_on > 0

    @property
    def writable(self) -> frozenset[str]:
        """DPs a client may write: switches, countdowns and settings."""
        p = self.profile
        return frozenset((*p.switches, *p.countdowns.values(), *p.settings))

    @property
    def refresh_dps(self) -> tuple[str, ...]:
        """Measured DPs a query refreshes: energy, current, power, voltage."""
        energy = (self.profile.energy,) if self.profile.energy else ()
        return energy + self.profile.meter_dps

    def _draw(self) -> float:
        """One noisy sample of the load, watts (``load_w`` per outlet on)."""
        nominal = self.load_w * self.outlets_on
        if not nominal:
            return 0.0
        return max(0.0, self._rng.gauss(nominal, nominal * self.noise))

    # ------------------------------------------------------------------ measurement
    def advance(self) -> None:
        """Integrate energy up to now (call before reading the energy DP)."""
        now = self._clock()
        dt = max(0.0, now - self._last) * self.energy_speedup
        self._last = now
        self._energy_wh += self._power_w * dt / 3600.0

    def _energy_value(self) -> int:
        if self.profile.energy_increments:
            return int(self._energy_wh - self._energy_base)
        return int(self._energy_wh)

    def measure(self) -> dict[str, int]:
        """Fresh readings of the measured DPs (not yet stored in :attr:`dps`)."""
        self.advance()
        self._power_w = self._draw()
        p = self.profile
        voltage_dv = round(self._rng.gauss(2300, 8))
        out: dict[str, int] = {}
        if p.energy is not None:
            out[p.energy] = self._energy_value()
        if p.current is not None:
            out[p.current] = round(self._power_w / (voltage_dv / 10) * 1000) if self._power_w else 0
        if p.power is not None:
            out[p.power] = round(self._power_w * p.power_scale)
        if p.voltage is not None:
            out[p.voltage] = voltage_dv
        return out

    def refresh(self, dp_ids: Iterable[Any] | None = None) -> dict[str, Any]:
        """Store fresh readings for ``dp_ids`` (default: :attr:`refresh_dps`); return those DPs.

        Ids that are not measured are returned with their stored value (a real plug re-reports
        whatever DP was asked for if it has it) and ids the plug does not have are left out. With
        an incrementing energy counter, reporting it starts the next increment.
        """
        fresh = self.measure()
        ids = list(self.refresh_dps) if dp_ids is None else [str(i) for i in dp_ids]
        out: dict[str, Any] = {}
        for dp in ids:
            if dp in fresh:
                self.dps[dp] = fresh[dp]
                if dp == self.profile.energy and self.profile.energy_increments:
                    self._energy_base += fresh[dp]
            if dp in self.dps:
                out[dp] = self.dps[dp]
        return out

    def set_energy(self, wh: float) -> None:
        """Set the energy DP (e.g. 0, as after a report to the cloud, spec §5)."""
        self.advance()
        if self.profile.energy_increments:
            self._energy_base = self._energy_wh - float(wh)
        else:
            self._energy_wh = float(wh)
        if self.profile.energy is not None:
            self.dps[self.profile.energy] = int(wh)

    # ------------------------------------------------------------------ control
    def accepts(self, dp: str, value: Any) -> bool:
        """Whether a client may write ``value`` to ``dp``."""
        p = self.profile
        if dp in p.switches:
            return isinstance(value, bool)
        if dp in p.countdowns.values():
            top = MAX_COUNTDOWN_S // p.countdown_unit
            return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top
        setting = p.settings.get(dp)
        return setting is not None and setting.accepts(value)

    def apply(self, requested: Mapping[str, Any], *, report_power: bool = True) -> dict[str, Any]:
        """Apply a CONTROL request and return what the plug reports afterwards.

        ``None`` values are read requests (the "null DPS" query of spec §4/§2.10): the current value
        is reported and nothing changes. Values of the wrong type or range and read-only or unknown
        DPs are ignored. Switching the load off zeroes current and power at once; switching it on
        reports a fresh measurement only when ``report_power`` (plugs with the UPDATEDPS quirk keep
        the stale power until asked).
        """
        out: dict[str, Any] = {}
        before = self.outlets_on
        for key, value in requested.items():
            dp = str(key)
            if dp not in self.dps:
                continue
            if value is None:
                out[dp] = self.dps[dp]
                continue
            if dp not in self.writable or not self.accepts(dp, value):
                continue
            if dp in self.profile.outlets and value != self.dps[dp]:
                self.advance()  # close the energy interval at the old power
            self.dps[dp] = value
            out[dp] = value
        if self.outlets_on != before:
            out.update(self._after_switch(report_power=report_power))
        return out

    def _after_switch(self, *, report_power: bool) -> dict[str, Any]:
        p = self.profile
        if not self.is_on:
            self._power_w = 0.0
            zeroed = {dp: 0 for dp in (p.current, p.power) if dp is not None}
            self.dps.update(zeroed)
            return zeroed
        self._power_w = self._draw()
        if not report_power:
            return {}
        return self.refresh(p.meter_dps)

    def drift(self) -> dict[str, Any]:
        """Periodic meter update: refresh the measured DPs and return those whose value changed."""
        before = {dp: self.dps.get(dp) for dp in self.refresh_dps}
        now = self.refresh()
        return {dp: v for dp, v in now.items() if before.get(dp) != v}

    def countdown_expired(
        self, countdown_dp: str | None = None, *, report_power: bool = True
    ) -> dict[str, Any]:
        """A countdown reached 0: toggle its relay, as the real countdown does.

        ``countdown_dp`` defaults to the first outlet's countdown.
        """
        countdowns = self.profile.countdowns
        if countdown_dp is None:
            countdown_dp = next(iter(countdowns.values()))
        switch = next(sw for sw, cd in countdowns.items() if cd == countdown_dp)
        self.dps[countdown_dp] = 0
        out = self.apply({switch: not self.dps.get(switch)}, report_power=report_power)
        out[countdown_dp] = 0
        return out

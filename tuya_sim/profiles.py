"""DP tables of the plug kinds the simulator plays (``--profile``), independent of the integration.

Each :class:`Profile` says which DP holds what, in which unit, and which values a client may write.
Sources (read for the DP numbers and value sets; nothing is shared with ``custom_components/``):

* Tuya standard instruction and status sets for switches/sockets/power strips (categories
  ``kg``/``cz``/``pc``): codes ``switch_1..6``, ``countdown_1..6`` (0-86400 s), ``switch_usb1..``,
  ``add_ele``, ``cur_current`` (mA), ``cur_power`` (W, scale 1 = x10), ``cur_voltage`` (V, scale 1 =
  x10), ``relay_status`` (``power_off``/``power_on``/``last``), ``light_mode``
  (``relay``/``pos``/``none``), ``child_lock``, ``fault`` bitmap (``ov_cr``, ``ov_vol``, ``ov_pwr``,
  ``ls_cr``, ``ls_vol``, ``ls_pow``): developer.tuya.com "Standard Instruction Set" (fkg,
  id=K9gf7o3qbbklt) and "Standard Status Set" (s, id=K9gf7o5prgf7s).
* DP numbers of the standard ``cz`` metering plug (1, 9, 17-20, 26, 38-40) and of strips: tuya-local
  ``devices/smartplugv2_energy*.yaml`` (17 Wh, 19/20 scale 10; ``add_ele`` as a resetting
  measurement in ``smartplugv2_energyv2.yaml``, spec §5) and the issue's DP table (Home Assistant
  core's tuya fixtures for ``cz`` devices were not available offline to cross-check 26/38-40).
* Legacy 3.1 plugs: tuya-local ``devices/smartplugv1.yaml`` (1 switch, 2 timer in minutes 0-1440,
  4 current mA, 5 power W x10, 6 voltage V x10) and tuyapower (spec §5); DP 3 (energy) and DP 7
  (alarm) come from the issue's table and are not in that file.
* Vendor layout 101-104: tuya-local ``devices/energy_monitoring_powerstrip.yaml`` (102 current mA,
  103 power W x10, 104 voltage V x10); 101 as energy (Wh) is an assumption.
* In-wall modules (20 energy, 21 current, 22 power, 23 voltage): from the issue's table, *not*
  verified; the one public configuration found (a localtuya user configuration of a water-heater
  switch module) lists 21 current, 22 voltage, 23 power instead, so the ``swapped`` idea applies
  there too.
* ``aubess``: the simulator's original layout (the AUBESS "Smart Socket 20A": 21 power-on
  behaviour ``off/on/memory``, 22-25 calibration coefficients; tuya-local ``smartplugv2_energy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

FAULT_BITS: Final = ("ov_cr", "ov_vol", "ov_pwr", "ls_cr", "ls_vol", "ls_pow")
"""Bit names of the ``fault`` bitmap (DP 26), bit 0 first."""

RELAY_STATUS_SETS: Final = {
    "standard": ("power_off", "power_on", "last"),
    "off_on_memory": ("off", "on", "memory"),
    "digits": ("0", "1", "2"),
}


@dataclass(frozen=True, slots=True)
class Setting:
    """A writable configuration DP: its initial value and what a client may write.

    ``choices`` for enums; otherwise bools are booleans and ints are ints in ``[low, high]``.
    """

    initial: Any
    choices: tuple[str, ...] | None = None
    low: int = -(2**31)
    high: int = 2**31 - 1

    def accepts(self, value: Any) -> bool:
        """Whether a client may write ``value``."""
        if self.choices is not None:
            return value in self.choices
        if isinstance(self.initial, bool):
            return isinstance(value, bool)
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
        )


@dataclass(frozen=True, slots=True)
class Profile:
    """The DP layout of one plug kind.

    Attributes:
        name: the ``--profile`` name.
        description: one line for ``--help``.
        outlets: DPs of the relays that power the load (bool).
        usb: DP of the USB port switch, or None.
        countdowns: relay DP -> its countdown DP.
        countdown_unit: seconds per countdown step (60 for the legacy minute timer).
        energy: DP of the energy counter (Wh = kWh x 1000), or None.
        energy_increments: the counter reports the energy since its last report (it restarts
            at 0 after every report) instead of a running total.
        current: DP of the current (mA), or None.
        power: DP of the power, or None.
        power_scale: units per watt of ``power`` (10: W x 10; 1: whole watts).
        voltage: DP of the voltage (V x 10), or None.
        settings: writable configuration DPs.
        readonly: other read-only DPs and their initial values (fault bitmap, alarm).

    """

    name: str
    description: str
    outlets: tuple[str, ...] = ("1",)
    usb: str | None = None
    countdowns: Mapping[str, str] = field(default_factory=lambda: {"1": "9"})
    countdown_unit: int = 1
    energy: str | None = "17"
    energy_increments: bool = False
    current: str | None = "18"
    power: str | None = "19"
    power_scale: int = 10
    voltage: str | None = "20"
    settings: Mapping[str, Setting] = field(default_factory=dict)
    readonly: Mapping[str, Any] = field(default_factory=dict)

    @property
    def meter_dps(self) -> tuple[str, ...]:
        """Current, power and voltage DPs (what UPDATEDPS refreshes by default)."""
        return tuple(dp for dp in (self.current, self.power, self.voltage) if dp is not None)

    @property
    def switches(self) -> tuple[str, ...]:
        """Every switch DP (outlets and USB)."""
        return self.outlets + ((self.usb,) if self.usb else ())

    def default_dps(self) -> dict[str, Any]:
        """DPs of a freshly plugged-in device with every relay off, in DP order."""
        dps: dict[str, Any] = dict.fromkeys(self.switches, False)
        dps.update(dict.fromkeys(self.countdowns.values(), 0))
        if self.energy is not None:
            dps[self.energy] = 0
        if self.current is not None:
            dps[self.current] = 0
        if self.power is not None:
            dps[self.power] = 0
        if self.voltage is not None:
            dps[self.voltage] = 2300
        dps.update({dp: s.initial for dp, s in self.settings.items()})
        dps.update(self.readonly)
        return dict(sorted(dps.items(), key=lambda item: int(item[0])))


def _cz_settings(relay_values: tuple[str, ...]) -> dict[str, Setting]:
    return {
        "38": Setting(relay_values[2], choices=relay_values),  # relay_status
        "39": Setting("relay", choices=("relay", "pos", "none")),  # light_mode
        "40": Setting(False),  # child_lock
    }


def _standard(name: str, description: str, **changes: Any) -> Profile:
    relay_values = changes.pop("relay_values", RELAY_STATUS_SETS["standard"])
    base: dict[str, Any] = {
        "energy_increments": True,
        "settings": _cz_settings(relay_values),
        "readonly": {"26": 0},  # fault bitmap, FAULT_BITS
    }
    base.update(changes)
    return Profile(name, description, **base)


def _strip(n: int) -> Profile:
    outlets = tuple(str(i) for i in range(1, n + 1))
    return Profile(
        f"strip{n}",
        f"power strip: {n} outlets (1..{n}), USB 7, countdowns 9..{8 + n}, meter 18-20",
        outlets=outlets,
        usb="7",
        countdowns={dp: str(8 + int(dp)) for dp in outlets},
        energy=None,
        settings=_cz_settings(RELAY_STATUS_SETS["standard"]),
    )


_ALL: list[Profile] = [
    _standard("standard", "cz metering plug: 1, 9, 17 (increments), 18-20, 26, 38-40 (default)"),
    *(_strip(n) for n in range(2, 7)),
    Profile(
        "legacy",
        "old 3.1 plug: 1, 2 timer (min), 3 energy, 4 mA, 5 W x10, 6 V x10, 7 alarm",
        countdowns={"1": "2"},
        countdown_unit=60,
        energy="3",
        current="4",
        power="5",
        voltage="6",
        readonly={"7": 0},
    ),
    Profile(
        "inwall",
        "in-wall module: 1, 9, 20 energy, 21 mA, 22 W x10, 23 V x10 (unverified layout)",
        energy="20",
        current="21",
        power="22",
        voltage="23",
    ),
    Profile(
        "vendor",
        "vendor DPs: 1, 9, 101 energy, 102 mA, 103 W x10, 104 V x10",
        energy="101",
        current="102",
        power="103",
        voltage="104",
    ),
    _standard("power-x1", "standard, but DP 19 is whole watts (x1)", power_scale=1),
    _standard("swapped", "standard, but voltage on 19 and power on 20", power="20", voltage="19"),
    _standard(
        "relay-offonmemory",
        "standard, relay_status 38 as off/on/memory",
        relay_values=RELAY_STATUS_SETS["off_on_memory"],
    ),
    _standard(
        "relay-digits",
        "standard, relay_status 38 as 0/1/2",
        relay_values=RELAY_STATUS_SETS["digits"],
    ),
    Profile(
        "aubess",
        "the original simulator plug: 1, 9, 17 (total), 18-20, 21 off/on/memory, 22-25",
        settings={
            "21": Setting("memory", choices=("off", "on", "memory")),
            "22": Setting(620),
            "23": Setting(30000),
            "24": Setting(17600),
            "25": Setting(3000),
        },
    ),
]

#: Every profile by name.
PROFILES: Final[dict[str, Profile]] = {p.name: p for p in _ALL}
#: The profile used when none is named.
DEFAULT_PROFILE: Final = "standard"


def get_profile(profile: str | Profile | None) -> Profile:
    """The profile named ``profile`` (a :class:`Profile` is returned as is; None: the default).

    Raises:
        ValueError: unknown name.

    """
    if isinstance(profile, Profile):
        return profile
    name = DEFAULT_PROFILE if profile is None else profile
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


def fault_bitmap(*names: str) -> int:
    """The DP 26 value with the named fault bits set (e.g. ``fault_bitmap("ov_cr")`` == 1).

    Raises:
        ValueError: unknown bit name.

    """
    value = 0
    for name in names:
        if name not in FAULT_BITS:
            raise ValueError(f"unknown fault bit {name!r}")
        value |= 1 << FAULT_BITS.index(name)
    return value

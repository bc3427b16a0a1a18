"""Plug profiles: which DP plays which role on a plug, as plain data (no Home Assistant, no I/O).

A :class:`Profile` maps the roles of an energy plug or power strip to DP ids: the outlets (switch
DPs, "Outlet 1..n" and "USB"), the meters (current, power, voltage, energy, each with a divisor)
and the extras (countdown per outlet, power-on behaviour, indicator light, child lock, overcharge
cut-off, fault bitmap, overcurrent alarm). It lists only DPs the plug has, so the glue creates no
entity for a DP the plug lacks. A profile is stored in the config entry and sent to the hub
firmware in the compact *wire form* below (:meth:`Profile.to_wire` / :meth:`Profile.from_wire`).

Units after division: current A, power W, voltage V, energy kWh, countdown s (a countdown DP
counts in units of ``countdown_scale`` seconds: 1 on the standard layouts, 60 on the legacy one).

Wire form (JSON object; keys of absent roles are omitted)::

    {"v": 1,                          # schema version (absent = 1); higher versions are refused
     "name": "standard",              # layout name: standard | legacy | inwall | vendor | switch
                                      #   | custom (built from a devices.json mapping)
     "sw": ["1", "2"],                # switch DPs of the outlets, in order ("Outlet 1", "Outlet 2")
     "usb": "7",                      # switch DP of the USB ports
     "cd": {"1": "9", "2": "10"},     # countdown DP per switch DP (outlets and USB)
     "cds": 60,                       # seconds per countdown unit (absent = 1 s; legacy: minutes)
     "cur": "18", "cdiv": 1000,       # current DP, divisor to A (raw mA)
     "pow": "19", "pdiv": 10,         # power DP, divisor to W
     "vol": "20", "vdiv": 10,         # voltage DP, divisor to V
     "ene": "17", "ediv": 1000,       # energy DP, divisor to kWh (raw Wh)
     "einc": true,                    # energy DP reports increments since the last report
     "po": "38", "pov": ["power_off", "power_on", "last"],  # power-on DP, raw off/on/memory
     "led": "39", "ledv": ["relay", "pos", "none"],          # indicator DP and its raw options
     "lock": "40",                    # child lock (bool DP)
     "oc": "46",                      # overcharge cut-off (bool DP)
     "fault": "26",                   # fault bitmap (int DP, bits FAULT_BITS)
     "alarm": "7"}                    # overcurrent alarm (bool DP, legacy layout)

Sources of the DP ids (checked against the files named, tuya-local snapshot
``make-all/tuya-local@f529427``, ``custom_components/tuya_local/devices/``):

* standard, Tuya's product standard for metering sockets (category ``cz``): switch_1..6 = 1..6,
  switch_usb1 = 7, countdown_1..6 = 9..14, countdown_usb1 = 15, add_ele = 17 (Wh, kWh scale 3,
  sent as increments), cur_current = 18 (mA), cur_power = 19 (W x 10), cur_voltage = 20 (V x 10),
  fault = 26, relay_status = 38, light_mode = 39, child_lock = 40, overcharge_switch = 46
  (or 51); strips also put light_mode on 40 and child_lock on 41
  (``powerstrip_3outlet_powermonitor.yaml``) and countdown_usb1 on 15
  (``gosund_wp9rtl_usbpowerstrip.yaml``); spec §5;
  tuya-local ``smartplugv2_energy.yaml`` (relay_status value sets, light_mode ``relay/pos/none/on``,
  child lock 40, overcharge 46/51, fault 26); HA core ``tests/components/tuya/fixtures/cz_*.json``
  (value shapes, e.g. ``cz_t0a4hwsf8anfsadp``, ``cz_hj0a5c7ckzzexu8l``).
* legacy (3.1-era firmware): 1 switch, 2 countdown (minutes, 0..1440), 3 energy (Wh), 4 current
  (mA), 5 power (W x 10), 6 voltage (V x 10), 7 overcurrent alarm; spec §5; tuya-local
  ``smartplugv1.yaml``, ``cesmarthome_monitoring_smartplug.yaml`` (energy on 3);
  ``rgb_nightlight_outlet.yaml`` has 5 and 6 swapped (detection checks which one is the voltage).
* inwall (in-wall modules, 1-2 gang switches): 20 energy (Wh), 21 current (mA), 22 power (W x 10),
  23 voltage (V x 10), fault 29; tuya-local ``aubess_1gang_switch.yaml``, ``smart_p01_socket.yaml``,
  ``loratap_dual_switch.yaml``; ``cbi_astute_outdoor_smartswitch.yaml`` and
  ``asc_wifi_circuit_breaker.yaml`` have 22 and 23 swapped.
* vendor: 101 energy (Wh), 102 current (mA), 103 power (W x 10), 104 voltage (V x 10); tuya-local
  ``energy_monitoring_powerstrip.yaml``, ``brilliant_*_switch.yaml``,
  ``makegood_switch_dual_timer-energy.yaml``, ``kmc_powerstrip.yaml`` (power W x 1 there: the power
  divisor is re-checked from live data, see ``detect.recheck_power_divisor``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

WIRE_VERSION: Final = 1

#: Layout names (``Profile.name``).
STANDARD: Final = "standard"
LEGACY: Final = "legacy"
INWALL: Final = "inwall"
VENDOR: Final = "vendor"
SWITCH_ONLY: Final = "switch"
CUSTOM: Final = "custom"
LAYOUTS: Final = (STANDARD, LEGACY, INWALL, VENDOR, SWITCH_ONLY, CUSTOM)

#: Divisors to A, W, V and kWh of the standard layout (spec §5).
CURRENT_DIVISOR: Final = 1000
POWER_DIVISOR: Final = 10
VOLTAGE_DIVISOR: Final = 10
ENERGY_DIVISOR: Final = 1000
DIVISORS: Final = (1, 10, 100, 1000)

#: Normalised options of the power-on behaviour, in the order of every raw value set.
POWER_ON_OPTIONS: Final = ("off", "on", "memory")
#: Raw value sets of ``relay_status`` (tuya-local ``smartplugv2_energy.yaml``), each off/on/memory.
POWER_ON_VALUE_SETS: Final[tuple[tuple[str, str, str], ...]] = (
    ("power_off", "power_on", "last"),
    ("off", "on", "memory"),
    ("0", "1", "2"),
)
#: Raw options of ``light_mode``: follow the relay, show the position (inverse), off, always on.
INDICATOR_VALUES: Final = ("relay", "pos", "none", "on")
#: Bits of the ``fault`` bitmap, bit 0 first (Tuya metering socket standard, ``fault`` label).
FAULT_BITS: Final = ("ov_cr", "ov_vol", "ov_pwr", "ls_cr", "ls_vol", "ls_pow")

#: Seconds per countdown unit a profile may declare: seconds, or minutes (legacy DP 2, tuya-local
#: ``smartplugv1.yaml``: ``timer`` 0..1440 min).
COUNTDOWN_SCALES: Final = (1, 60)
#: Seconds per countdown unit of the legacy layout.
LEGACY_COUNTDOWN_SCALE: Final = 60

#: The largest DP id a Tuya device uses (one byte in the product schema).
MAX_DP: Final = 255
_DP_RE: Final = re.compile(r"[1-9][0-9]{0,2}")


class ProfileError(ValueError):
    """A profile or its wire form is malformed (the message names the field, never a value)."""


def is_dp_id(value: object) -> bool:
    """True for a DP id string ``"1"``..``"255"`` (no sign, no leading zero)."""
    return isinstance(value, str) and bool(_DP_RE.fullmatch(value)) and int(value) <= MAX_DP


def dp_sort_key(dp: str) -> tuple[int, str]:
    """Sort DP ids numerically (non-numeric keys last, alphabetically)."""
    return (int(dp), "") if dp.isdigit() else (1 << 30, dp)


@dataclass(frozen=True, slots=True)
class Outlet:
    """One switched outlet: ``dp`` its bool switch DP, ``countdown`` its countdown DP.

    The countdown DP counts in units of ``countdown_scale`` seconds (1, or 60 on legacy plugs).
    """

    dp: str
    name: str
    countdown: str | None = None
    usb: bool = False
    countdown_scale: int = 1


@dataclass(frozen=True, slots=True)
class Meter:
    """A numeric DP read as ``raw / divisor`` (A, W, V or kWh)."""

    dp: str
    divisor: int

    def value(self, dps: Mapping[str, object]) -> float | None:
        """The scaled reading from ``dps``, or None when the DP is absent or not an integer."""
        raw = dps.get(self.dp)
        if isinstance(raw, bool) or not isinstance(raw, int):
            return None
        return raw / self.divisor


@dataclass(frozen=True, slots=True)
class PowerOnBehaviour:
    """The power-on behaviour DP (``relay_status``): ``raw`` holds the raw off/on/memory values."""

    dp: str
    raw: tuple[str, str, str]

    def option(self, value: object) -> str | None:
        """The normalised option (``off``/``on``/``memory``) of a raw value, None if unknown."""
        for option, raw in zip(POWER_ON_OPTIONS, self.raw, strict=True):
            if value == raw:
                return option
        return None

    def raw_value(self, option: str) -> str:
        """The raw value to send for a normalised option; ValueError for an unknown option."""
        try:
            return self.raw[POWER_ON_OPTIONS.index(option)]
        except ValueError:
            raise ValueError(f"unknown power-on option {option!r}") from None


@dataclass(frozen=True, slots=True)
class Indicator:
    """The indicator light DP (``light_mode``) and the raw options it accepts."""

    dp: str
    options: tuple[str, ...]


def fault_names(value: object) -> tuple[str, ...]:
    """Names of the bits set in a fault bitmap value (``FAULT_BITS``; unknown bits as ``bitN``).

    A non-integer value gives ``()``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return ()
    names = []
    for bit in range(value.bit_length()):
        if value >> bit & 1:
            names.append(FAULT_BITS[bit] if bit < len(FAULT_BITS) else f"bit{bit}")
    return tuple(names)


def outlet_names(count: int) -> tuple[str, ...]:
    """Names of ``count`` switched outlets: ``Outlet 1`` .. ``Outlet n``."""
    return tuple(f"Outlet {i}" for i in range(1, count + 1))


USB_NAME: Final = "USB"


@dataclass(frozen=True, slots=True)
class Profile:
    """The roles of one plug mapped to its DPs (see the module docstring for the wire form).

    Raises :class:`ProfileError` on construction when a DP id is malformed, a DP has two roles,
    a divisor is not one of ``DIVISORS``, a countdown scale is not one of ``COUNTDOWN_SCALES``
    or differs between outlets, there is no outlet or the name is unknown.
    """

    name: str
    outlets: tuple[Outlet, ...]
    current: Meter | None = None
    power: Meter | None = None
    voltage: Meter | None = None
    energy: Meter | None = None
    energy_increments: bool = True
    power_on: PowerOnBehaviour | None = None
    indicator: Indicator | None = None
    child_lock: str | None = None
    overcharge: str | None = None
    fault: str | None = None
    alarm: str | None = None
    _roles: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in LAYOUTS:
            raise ProfileError("name: unknown layout")
        if not self.outlets:
            raise ProfileError("sw: a profile needs at least one outlet")
        if sum(o.usb for o in self.outlets) > 1:
            raise ProfileError("usb: at most one USB switch")
        roles: dict[str, str] = {}

        def claim(dp: str | None, role: str) -> None:
            if dp is None:
                return
            if not is_dp_id(dp):
                raise ProfileError(f"{role}: not a DP id")
            if dp in roles:
                raise ProfileError(f"{role}: DP already used as {roles[dp]}")
            roles[dp] = role

        for outlet in self.outlets:
            claim(outlet.dp, "usb" if outlet.usb else "sw")
            claim(outlet.countdown, "cd")
        if {o.countdown_scale for o in self.outlets} - {self.countdown_scale}:
            raise ProfileError("cds: one countdown scale for every outlet")
        if self.countdown_scale not in COUNTDOWN_SCALES:
            raise ProfileError(f"cds: countdown scale not one of {COUNTDOWN_SCALES}")
        for key, meter in (
            ("cur", self.current),
            ("pow", self.power),
            ("vol", self.voltage),
            ("ene", self.energy),
        ):
            if meter is not None:
                claim(meter.dp, key)
                if meter.divisor not in DIVISORS:
                    raise ProfileError(f"{key}: divisor not one of {DIVISORS}")
        if self.power_on is not None:
            claim(self.power_on.dp, "po")
            if self.power_on.raw not in POWER_ON_VALUE_SETS:
                raise ProfileError("pov: unknown power-on value set")
        if self.indicator is not None:
            claim(self.indicator.dp, "led")
            opts = self.indicator.options
            if len(opts) < 2 or len(set(opts)) != len(opts) or not set(opts) <= {*INDICATOR_VALUES}:
                raise ProfileError("ledv: unknown indicator options")
        claim(self.child_lock, "lock")
        claim(self.overcharge, "oc")
        claim(self.fault, "fault")
        claim(self.alarm, "alarm")
        object.__setattr__(self, "_roles", roles)

    # -- views used by the glue ------------------------------------------------------------

    @property
    def switches(self) -> tuple[Outlet, ...]:
        """The switched outlets without the USB switch."""
        return tuple(o for o in self.outlets if not o.usb)

    @property
    def usb(self) -> Outlet | None:
        """The USB switch, if any."""
        return next((o for o in self.outlets if o.usb), None)

    @property
    def countdown_scale(self) -> int:
        """Seconds per countdown unit (the same for every outlet; 1 or 60)."""
        return self.outlets[0].countdown_scale

    @property
    def meters(self) -> dict[str, Meter]:
        """Present meters by role: ``current``, ``power``, ``voltage``, ``energy``."""
        pairs = (
            ("current", self.current),
            ("power", self.power),
            ("voltage", self.voltage),
            ("energy", self.energy),
        )
        return {role: meter for role, meter in pairs if meter is not None}

    def dp_ids(self) -> frozenset[str]:
        """Every DP id the profile uses."""
        return frozenset(self._roles)

    def role_of(self, dp: str) -> str | None:
        """The wire-form key of the role ``dp`` plays (``sw``, ``cur``, ``lock`` ...), or None."""
        return self._roles.get(dp)

    def refresh_dps(self) -> tuple[int, ...]:
        """Meter DPs to re-request with UPDATEDPS (spec §5), ascending."""
        return tuple(sorted(int(m.dp) for m in self.meters.values()))

    def with_power_divisor(self, divisor: int) -> Profile:
        """A copy with the power divisor replaced (ProfileError if there is no power DP)."""
        if self.power is None:
            raise ProfileError("pow: the profile has no power DP")
        return replace(self, power=Meter(self.power.dp, divisor))

    def with_divisors(self, power: int | None = None, voltage: int | None = None) -> Profile:
        """A copy with the power and voltage divisors replaced where the meter is present.

        None keeps a divisor; a meter the profile lacks stays absent. ProfileError when a
        divisor is not one of ``DIVISORS``.
        """
        profile = self
        if power is not None and profile.power is not None:
            profile = replace(profile, power=Meter(profile.power.dp, power))
        if voltage is not None and profile.voltage is not None:
            profile = replace(profile, voltage=Meter(profile.voltage.dp, voltage))
        return profile

    # -- wire form ---------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The compact JSON-able form (module docstring); ``from_wire`` gives an equal profile."""
        wire: dict[str, Any] = {"v": WIRE_VERSION, "name": self.name}
        wire["sw"] = [o.dp for o in self.switches]
        usb = self.usb
        if usb is not None:
            wire["usb"] = usb.dp
        countdowns = {o.dp: o.countdown for o in self.outlets if o.countdown is not None}
        if countdowns:
            wire["cd"] = countdowns
        if self.countdown_scale != 1:
            wire["cds"] = self.countdown_scale
        for key, div_key, meter in (
            ("cur", "cdiv", self.current),
            ("pow", "pdiv", self.power),
            ("vol", "vdiv", self.voltage),
            ("ene", "ediv", self.energy),
        ):
            if meter is not None:
                wire[key] = meter.dp
                wire[div_key] = meter.divisor
        if self.energy is not None:
            wire["einc"] = self.energy_increments
        if self.power_on is not None:
            wire["po"] = self.power_on.dp
            wire["pov"] = list(self.power_on.raw)
        if self.indicator is not None:
            wire["led"] = self.indicator.dp
            wire["ledv"] = list(self.indicator.options)
        for key, dp in (
            ("lock", self.child_lock),
            ("oc", self.overcharge),
            ("fault", self.fault),
            ("alarm", self.alarm),
        ):
            if dp is not None:
                wire[key] = dp
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> Profile:
        """Parse the wire form; unknown keys are ignored (newer writers), a newer ``v`` is not.

        Raises :class:`ProfileError` naming the first bad field.
        """
        if not isinstance(wire, Mapping):
            raise ProfileError("profile: not an object")
        version = wire.get("v", WIRE_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ProfileError("v: not a schema version")
        if version > WIRE_VERSION:
            raise ProfileError("v: written by a newer version")
        name = wire.get("name")
        if not isinstance(name, str):
            raise ProfileError("name: not a string")
        sw = wire.get("sw", [])
        if not isinstance(sw, list) or not all(is_dp_id(dp) for dp in sw):
            raise ProfileError("sw: not a list of DP ids")
        usb = _opt_dp(wire, "usb")
        cd = wire.get("cd", {})
        if not isinstance(cd, Mapping) or not all(is_dp_id(v) for v in cd.values()):
            raise ProfileError("cd: not an object of DP ids")
        switch_dps = [*sw, *([usb] if usb is not None else [])]
        if not set(cd) <= set(switch_dps):
            raise ProfileError("cd: countdown for a DP that is not a switch")
        cds = wire.get("cds", 1)
        if isinstance(cds, bool) or not isinstance(cds, int) or cds not in COUNTDOWN_SCALES:
            raise ProfileError(f"cds: countdown scale not one of {COUNTDOWN_SCALES}")
        outlets = build_outlets(sw, usb, dict(cd), cds)
        einc = wire.get("einc", True)
        if not isinstance(einc, bool):
            raise ProfileError("einc: not a boolean")
        return cls(
            name=name,
            outlets=outlets,
            current=_opt_meter(wire, "cur", "cdiv", CURRENT_DIVISOR),
            power=_opt_meter(wire, "pow", "pdiv", POWER_DIVISOR),
            voltage=_opt_meter(wire, "vol", "vdiv", VOLTAGE_DIVISOR),
            energy=_opt_meter(wire, "ene", "ediv", ENERGY_DIVISOR),
            energy_increments=einc,
            power_on=_opt_power_on(wire),
            indicator=_opt_indicator(wire),
            child_lock=_opt_dp(wire, "lock"),
            overcharge=_opt_dp(wire, "oc"),
            fault=_opt_dp(wire, "fault"),
            alarm=_opt_dp(wire, "alarm"),
        )


def build_outlets(
    switch_dps: list[str],
    usb_dp: str | None,
    countdowns: Mapping[str, str],
    countdown_scale: int = 1,
) -> tuple[Outlet, ...]:
    """Outlets named ``Outlet 1..n`` in the order of ``switch_dps``, then ``USB``.

    ``countdown_scale`` is the seconds per countdown unit of every outlet (1, or 60 on legacy).
    """
    outlets = [
        Outlet(dp, name, countdowns.get(dp), countdown_scale=countdown_scale)
        for dp, name in zip(switch_dps, outlet_names(len(switch_dps)), strict=True)
    ]
    if usb_dp is not None:
        outlets.append(
            Outlet(
                usb_dp, USB_NAME, countdowns.get(usb_dp), usb=True, countdown_scale=countdown_scale
            )
        )
    return tuple(outlets)


def _opt_dp(wire: Mapping[str, Any], key: str) -> str | None:
    value = wire.get(key)
    if value is None:
        return None
    if not is_dp_id(value):
        raise ProfileError(f"{key}: not a DP id")
    return str(value)


def _opt_meter(wire: Mapping[str, Any], key: str, div_key: str, default: int) -> Meter | None:
    dp = _opt_dp(wire, key)
    if dp is None:
        return None
    divisor = wire.get(div_key, default)
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise ProfileError(f"{div_key}: not an integer")
    return Meter(dp, divisor)


def _opt_power_on(wire: Mapping[str, Any]) -> PowerOnBehaviour | None:
    dp = _opt_dp(wire, "po")
    if dp is None:
        return None
    raw = wire.get("pov")
    if not isinstance(raw, list) or tuple(raw) not in POWER_ON_VALUE_SETS:
        raise ProfileError("pov: unknown power-on value set")
    off, on, memory = raw
    return PowerOnBehaviour(dp, (off, on, memory))


def _opt_indicator(wire: Mapping[str, Any]) -> Indicator | None:
    dp = _opt_dp(wire, "led")
    if dp is None:
        return None
    options = wire.get("ledv")
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ProfileError("ledv: not a list of strings")
    return Indicator(dp, tuple(options))


# -- built-in layouts ------------------------------------------------------------------------

_STANDARD_PO = PowerOnBehaviour("38", POWER_ON_VALUE_SETS[0])
_STANDARD_LED = Indicator("39", ("relay", "pos", "none"))


def _std_outlets(count: int, usb: str | None, countdown_base: int | None) -> tuple[Outlet, ...]:
    sw = [str(i) for i in range(1, count + 1)]
    cd = {} if countdown_base is None else {dp: str(countdown_base + int(dp)) for dp in sw}
    if usb is not None and countdown_base is not None:
        cd[usb] = "15"
    return build_outlets(sw, usb, cd)


#: The built-in layouts with every DP they can have (the module docstring cites the sources).
#: Detection (``detect.py``) keeps only the DPs a plug reports; these are the references for the
#: docs and for a user who picks a layout by hand (:func:`builtin_profile`).
BUILTIN_PROFILES: Final[Mapping[str, Profile]] = {
    STANDARD: Profile(
        name=STANDARD,
        outlets=_std_outlets(6, "7", 8),
        energy=Meter("17", ENERGY_DIVISOR),
        current=Meter("18", CURRENT_DIVISOR),
        power=Meter("19", POWER_DIVISOR),
        voltage=Meter("20", VOLTAGE_DIVISOR),
        fault="26",
        power_on=_STANDARD_PO,
        indicator=_STANDARD_LED,
        child_lock="40",
        overcharge="46",
    ),
    LEGACY: Profile(
        name=LEGACY,
        outlets=(Outlet("1", "Outlet 1", countdown="2", countdown_scale=LEGACY_COUNTDOWN_SCALE),),
        energy=Meter("3", ENERGY_DIVISOR),
        current=Meter("4", CURRENT_DIVISOR),
        power=Meter("5", POWER_DIVISOR),
        voltage=Meter("6", VOLTAGE_DIVISOR),
        alarm="7",
    ),
    INWALL: Profile(
        name=INWALL,
        outlets=_std_outlets(2, None, 8),
        energy=Meter("20", ENERGY_DIVISOR),
        current=Meter("21", CURRENT_DIVISOR),
        power=Meter("22", POWER_DIVISOR),
        voltage=Meter("23", VOLTAGE_DIVISOR),
        fault="29",
        power_on=_STANDARD_PO,
    ),
    VENDOR: Profile(
        name=VENDOR,
        outlets=_std_outlets(4, None, None),
        energy=Meter("101", ENERGY_DIVISOR),
        current=Meter("102", CURRENT_DIVISOR),
        power=Meter("103", POWER_DIVISOR),
        voltage=Meter("104", VOLTAGE_DIVISOR),
    ),
    SWITCH_ONLY: Profile(name=SWITCH_ONLY, outlets=_std_outlets(1, None, 8)),
}


def builtin_profile(name: str, outlets: int = 1, usb: bool = False) -> Profile:
    """A built-in layout cut to ``outlets`` switched outlets (1..6) and an optional USB switch.

    The result keeps the layout's meters and extras (the options flow lets a user pick a layout
    by hand when detection could not tell). Raises ProfileError for an unknown name, a count the
    layout does not have, or a USB switch on a layout without one.
    """
    template = BUILTIN_PROFILES.get(name)
    if template is None:
        raise ProfileError("name: not a built-in layout")
    switches = template.switches
    if not 1 <= outlets <= len(switches):
        raise ProfileError(f"sw: the {name} layout has 1 to {len(switches)} outlets")
    if usb and template.usb is None:
        raise ProfileError(f"usb: the {name} layout has no USB switch")
    kept = switches[:outlets] + ((template.usb,) if usb and template.usb else ())
    return replace(template, outlets=kept)

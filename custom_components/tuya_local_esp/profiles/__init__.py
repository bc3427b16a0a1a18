"""Plug profiles: the DP layout of energy plugs and power strips (pure Python, no Home Assistant).

* ``model``: :class:`Profile` (roles -> DPs, wire form), the built-in layouts.
* ``detect``: :func:`detect_profile` from a plug's DPS, :func:`recheck_power_divisor`.
* ``devices_json``: :func:`parse_devices_json`, the plugs of a tinytuya ``devices.json``.
"""

from .detect import CANDIDATE_METERING_DPS, Detection, detect_profile, recheck_power_divisor
from .devices_json import (
    DevicesJsonError,
    DevicesJsonImport,
    ImportedPlug,
    SkippedEntry,
    parse_devices_json,
)
from .model import (
    BUILTIN_PROFILES,
    FAULT_BITS,
    POWER_ON_OPTIONS,
    Indicator,
    Meter,
    Outlet,
    PowerOnBehaviour,
    Profile,
    ProfileError,
    builtin_profile,
    fault_names,
)

__all__ = [
    "BUILTIN_PROFILES",
    "CANDIDATE_METERING_DPS",
    "FAULT_BITS",
    "POWER_ON_OPTIONS",
    "Detection",
    "DevicesJsonError",
    "DevicesJsonImport",
    "ImportedPlug",
    "Indicator",
    "Meter",
    "Outlet",
    "PowerOnBehaviour",
    "Profile",
    "ProfileError",
    "SkippedEntry",
    "builtin_profile",
    "detect_profile",
    "fault_names",
    "parse_devices_json",
    "recheck_power_divisor",
]

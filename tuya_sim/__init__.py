"""Simulated Tuya Wi-Fi plugs speaking the local protocol 3.1-3.5, for tests, benchmarks and demos.

Not shipped to users (HACS copies only ``custom_components/``). Stands on its own: the device side
of the protocol (:mod:`tuya_sim.crypto`, :mod:`tuya_sim.frames`, :mod:`tuya_sim.codec`,
:mod:`tuya_sim.udp`) is written from the spec with ``cryptography`` only and shares no code with the
integration, so a codec bug cannot hide in both ends; ``python -m tuya_sim`` needs neither Home
Assistant nor ``custom_components``. See :mod:`tuya_sim.server` for the reproduced plug behaviour.
"""

from .broadcast import PlugBroadcaster
from .plug import PlugModel, default_dps
from .profiles import PROFILES, Profile, get_profile
from .server import PlugStats, SimulatedPlug, port_outside_ephemeral_range
from .threaded import PlugThread

__all__ = [
    "PROFILES",
    "PlugBroadcaster",
    "PlugModel",
    "PlugStats",
    "PlugThread",
    "Profile",
    "SimulatedPlug",
    "default_dps",
    "get_profile",
    "port_outside_ephemeral_range",
]

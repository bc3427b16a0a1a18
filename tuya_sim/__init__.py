"""Simulated Tuya Wi-Fi plugs speaking the local protocol 3.1-3.5, for tests, benchmarks and demos.

Not shipped to users (HACS copies only ``custom_components/``). Reuses the integration's protocol
library in the device role; see :mod:`tuya_sim.server` for the reproduced plug behaviour.
"""

from .broadcast import PlugBroadcaster
from .plug import PlugModel, default_dps
from .server import PlugStats, SimulatedPlug
from .threaded import PlugThread

__all__ = [
    "PlugBroadcaster",
    "PlugModel",
    "PlugStats",
    "PlugThread",
    "SimulatedPlug",
    "default_dps",
]

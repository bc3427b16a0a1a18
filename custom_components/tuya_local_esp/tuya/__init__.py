"""Tuya local protocol library: sans-I/O codec and an asyncio client (no Home Assistant imports).

Public API::

    async with TuyaDevice(host, device_id, local_key, version="3.3") as dev:
        dps = await dev.status()            # {"1": True, "19": 1234, ...}
        await dev.set_dps({"1": False})     # -> DPS confirmed by the device
        unsubscribe = dev.subscribe(print)  # pushed DPS changes

Also: ``dev.subscribe_connection(cb)``, ``dev.subscribe_failure(cb)`` (classified errors:
:class:`TuyaKeyError` only when the device refused the key, :class:`TuyaBusyError` when another
client holds it), ``dev.wake()`` (its UDP broadcast was heard: retry now), ``dev.busy``.
``device.py`` holds :class:`TuyaDevice` (the device across connections), ``connection.py`` one
TCP connection, ``failures.py`` the classification of failures across attempts (wrong key,
busy, version suspicion), ``backoff.py`` the reconnect pacing. Behaviour under faults:
``docs/reliability.md``.

Protocol reference: ``../shared/docs/tuya-protocol.md`` (cited in each module).
"""

from .const import DEFAULT_PORT, VERSIONS, Command
from .device import AUTO_VERSION, TuyaDevice
from .errors import (
    TuyaBusyError,
    TuyaConnectionError,
    TuyaDeviceError,
    TuyaError,
    TuyaFrameError,
    TuyaKeyError,
    TuyaProtocolError,
    TuyaTimeoutError,
)
from .frame import FrameParser, RawFrame
from .message import Message, MessageCodec

__all__ = [
    "AUTO_VERSION",
    "DEFAULT_PORT",
    "VERSIONS",
    "Command",
    "FrameParser",
    "Message",
    "MessageCodec",
    "RawFrame",
    "TuyaBusyError",
    "TuyaConnectionError",
    "TuyaDevice",
    "TuyaDeviceError",
    "TuyaError",
    "TuyaFrameError",
    "TuyaKeyError",
    "TuyaProtocolError",
    "TuyaTimeoutError",
]

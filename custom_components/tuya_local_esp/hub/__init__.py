"""Client library for the tuya_local_esp ESP32 hub (no Home Assistant imports).

The channel is specified in ``docs/hub-protocol.md``. Typical use::

    client = HubClient("192.0.2.5", 6670, secret)
    inventory = await client.connect()          # or: await client.start() for auto-reconnect
    unsubscribe = client.subscribe(on_update)   # StateUpdate pushes
    confirmed = await client.set_dps(device_id, {"1": True})
"""

from .client import HubClient
from .errors import (
    HubAuthError,
    HubBusyError,
    HubCommandError,
    HubConnectionError,
    HubError,
    HubProtocolError,
    HubTimeoutError,
)
from .models import HubHealth, HubTime, Inventory, PlugState, StateUpdate
from .protocol import DEFAULT_PORT, MAX_RECORD, PROTOCOL_VERSION

__all__ = [
    "DEFAULT_PORT",
    "MAX_RECORD",
    "PROTOCOL_VERSION",
    "HubAuthError",
    "HubBusyError",
    "HubClient",
    "HubCommandError",
    "HubConnectionError",
    "HubError",
    "HubHealth",
    "HubProtocolError",
    "HubTime",
    "HubTimeoutError",
    "Inventory",
    "PlugState",
    "StateUpdate",
]

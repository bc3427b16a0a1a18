"""Constants of the Tuya Local ESP integration."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

DOMAIN: Final = "tuya_local_esp"
LOGGER = logging.getLogger(__package__)

CONF_TRANSPORT: Final = "transport"
CONF_DEVICE_ID: Final = "device_id"
CONF_LOCAL_KEY: Final = "local_key"
CONF_PROTOCOL_VERSION: Final = "protocol_version"
CONF_DP_IDS: Final = "dp_ids"
#: The protocol version found by the "auto" probe; tried first on the next start.
CONF_DETECTED_VERSION: Final = "detected_version"
#: The plug's profile in wire form (``profiles.Profile.to_wire``): detected when it was added, or
#: built from a devices.json mapping. In ``entry.options`` it is the user's choice and wins.
CONF_PROFILE: Final = "profile"
#: Names the user gave the outlets' switches (options; "" keeps the translated "Outlet n").
CONF_OUTLET_NAMES: Final = "outlet_names"
#: DP ids seen when the plug matched no metering layout (for the repair issue).
CONF_UNMATCHED_DPS: Final = "unmatched_dps"

TRANSPORT_DIRECT: Final = "direct"
TRANSPORT_HUB: Final = "hub"

# ESP32 hub entries (docs/hub-protocol.md)
CONF_SECRET: Final = "secret"  # noqa: S105 - the name of the field, not a secret
CONF_HUB_ID: Final = "hub_id"
#: Plugs of the hub's inventory ``[{"id", "name", "ver"}]`` as config entries of version 1.1
#: stored them; migrated to one subentry per plug (entry version 1.2).
CONF_PLUGS: Final = "plugs"
#: Subentry type of a plug behind a hub (one config subentry per plug, ``strings.json``
#: ``config_subentries.plug``); its data holds the device id and protocol version.
SUBENTRY_PLUG: Final = "plug"
#: Device ids of plugs whose subentry was deleted while the hub could not be told yet; they are
#: removed from the hub when it is next connected.
CONF_REMOVING: Final = "removing"
DEFAULT_HUB_PORT: Final = 6670
#: The hub's DHCP host name is this prefix + its hub id (``esp32/board.py``).
HUB_HOSTNAME_PREFIX: Final = "tuya-esp-hub-"
#: Protocol versions the hub firmware speaks.
HUB_PROTOCOL_VERSIONS: Final = ["3.1", "3.3", "3.4", "3.5"]
DEFAULT_HUB_NAME: Final = "Tuya ESP32 hub"
#: Hub health and inventory are polled this often; DP changes arrive as pushes.
HUB_POLL_INTERVAL: Final = timedelta(seconds=60)

DEFAULT_PORT: Final = 6668
AUTO_VERSION: Final = "auto"
DEFAULT_VERSION: Final = AUTO_VERSION
PROTOCOL_VERSIONS: Final = [AUTO_VERSION, "3.1", "3.2", "3.3", "3.4", "3.5"]
DEFAULT_NAME: Final = "Tuya plug"

#: The coordinator is push-driven; this poll only catches pushes a plug never sent.
SAFETY_POLL_INTERVAL: Final = timedelta(minutes=5)
#: Power DPs 18/19/20 are refreshed with UPDATEDPS this often (spec §5: plugs often update
#: them only when asked), so values do not go stale while the phone app is closed.
POWER_REFRESH_SECONDS: Final = 10.0
HEARTBEAT_SECONDS: Final = 10.0
REQUEST_TIMEOUT: Final = 5.0

# DP ids of the common Tuya energy-monitoring plug ("cz/kg" scheme, spec §5).
DP_SWITCH: Final = "1"
DP_ADD_ELE: Final = "17"
DP_CURRENT: Final = "18"
DP_POWER: Final = "19"
DP_VOLTAGE: Final = "20"

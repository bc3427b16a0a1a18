"""One shared LAN discovery listener for every config entry of the integration.

It hears the plugs' UDP broadcasts (6666/6667) and the answers of silent 3.5 plugs (7000) that
its periodic REQ_DEVINFO requests solicit (``tuya/discovery.py``; spec §3), and then:

* a plug that is not configured yet starts an ``integration_discovery`` config flow, so that it
  shows up under "Discovered" with host, device id and version filled in;
* a configured plug announcing a new address is followed: the entry's host is updated and the
  device client reconnects there at once.

It starts in the background and never blocks Home Assistant's start-up; a UDP port that is taken
is logged and skipped.
"""

from __future__ import annotations

import os
from typing import Any

from homeassistant.components import network
from homeassistant.config_entries import SOURCE_IGNORE, SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import CONF_HOST, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.util.hass_dict import HassKey

from .const import (
    AUTO_VERSION,
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_PROTOCOL_VERSION,
    CONF_TRANSPORT,
    DOMAIN,
    LOGGER,
    TRANSPORT_DIRECT,
)
from .coordinator import DirectPlugCoordinator
from .tuya.discovery import DEFAULT_PORTS, PORT_APP, DiscoveredDevice
from .tuya.discovery_listener import DiscoveryListener

DISCOVERY: HassKey[TuyaDiscovery] = HassKey(f"{DOMAIN}_discovery")
#: UDP ports listened on (tests use free ports).
LISTEN_PORTS: tuple[int, ...] = DEFAULT_PORTS
#: Seconds between two REQ_DEVINFO requests (tinytuya's scanner uses 6 s).
REQUEST_INTERVAL = 6.0
#: Comma-separated broadcast addresses for the REQ_DEVINFO requests, overriding those of Home
#: Assistant's network adapters (``scripts/develop`` keeps them on loopback).
TARGETS_ENV = "TUYA_LOCAL_ESP_DISCOVERY_TARGETS"

DATA_VERSION = "version"
DATA_PRODUCT_KEY = "product_key"


class TuyaDiscovery:
    """The listener and what Home Assistant does with its announcements."""

    def __init__(self, hass: HomeAssistant, listener: DiscoveryListener) -> None:
        """Wrap ``listener``; call :meth:`async_start` next."""
        self.hass = hass
        self.listener = listener
        listener.subscribe(self._on_device)

    async def async_start(self) -> None:
        """Bind the UDP ports and start the requests (returns at once)."""
        await self.listener.start()

    async def async_stop(self) -> None:
        """Close the sockets."""
        await self.listener.stop()

    def seen(self) -> list[DiscoveredDevice]:
        """Plugs heard so far, newest announcement of each."""
        return [seen.device for seen in self.listener.devices.values()]

    @callback
    def unconfigured(self) -> list[dict[str, Any]]:
        """Discovery data of the plugs heard that Home Assistant does not know yet."""
        return [
            discovery_data(device)
            for device in self.seen()
            if self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, device.device_id)
            is None
            and not self._served(device.device_id)
        ]

    def _served(self, device_id: str) -> bool:
        """True for a plug that a loaded entry handles already (e.g. behind a hub)."""
        return any(
            device_id in e.runtime_data.plugs
            for e in self.hass.config_entries.async_loaded_entries(DOMAIN)
        )

    @callback
    def _on_device(self, device: DiscoveredDevice) -> None:
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, device.device_id)
        if entry is None:
            if not self._served(device.device_id):
                discovery_flow.async_create_flow(
                    self.hass,
                    DOMAIN,
                    context={"source": SOURCE_INTEGRATION_DISCOVERY},
                    data=discovery_data(device),
                )
            return
        if entry.source == SOURCE_IGNORE or entry.data.get(CONF_TRANSPORT) != TRANSPORT_DIRECT:
            return
        updates: dict[str, Any] = {}
        if entry.data[CONF_HOST] != device.ip:
            LOGGER.info("Plug %s moved to %s", device.device_id, device.ip)
            updates[CONF_HOST] = device.ip
        if (
            entry.data.get(CONF_PROTOCOL_VERSION) == AUTO_VERSION
            and entry.data.get(CONF_DETECTED_VERSION) != device.version
        ):
            updates[CONF_DETECTED_VERSION] = device.version
        if not updates:
            return
        self.hass.config_entries.async_update_entry(entry, data={**entry.data, **updates})
        coordinator = getattr(entry, "runtime_data", None)
        if isinstance(coordinator, DirectPlugCoordinator) and CONF_HOST in updates:
            coordinator.device.set_host(device.ip)


def discovery_data(device: DiscoveredDevice) -> dict[str, Any]:
    """What a discovery config flow gets about a plug."""
    return {
        CONF_DEVICE_ID: device.device_id,
        CONF_HOST: device.ip,
        DATA_VERSION: device.version,
        DATA_PRODUCT_KEY: device.product_key,
    }


async def _request_targets(hass: HomeAssistant) -> list[tuple[str, int]]:
    override = os.environ.get(TARGETS_ENV)
    if override:
        return [(addr.strip(), PORT_APP) for addr in override.split(",") if addr.strip()]
    addresses = await network.async_get_ipv4_broadcast_addresses(hass)
    return [(str(addr), PORT_APP) for addr in addresses]


async def async_get_discovery(hass: HomeAssistant) -> TuyaDiscovery:
    """Return the shared discovery, starting it on first use (never blocks on the network)."""
    if (discovery := hass.data.get(DISCOVERY)) is not None:
        return discovery
    listener = DiscoveryListener(
        ports=LISTEN_PORTS,
        request_interval=REQUEST_INTERVAL,
        request_targets=await _request_targets(hass),
        only_changes=True,
    )
    discovery = hass.data[DISCOVERY] = TuyaDiscovery(hass, listener)
    await discovery.async_start()

    async def _stop(_: Event) -> None:
        await discovery.async_stop()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop)
    return discovery

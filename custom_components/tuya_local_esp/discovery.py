"""One shared LAN discovery listener for every config entry of the integration.

It hears the plugs' UDP broadcasts (6666/6667) and the answers of silent 3.5 plugs (7000) that
its periodic REQ_DEVINFO requests solicit (``tuya/discovery.py``; spec §3), and then:

* a plug that is not configured yet starts an ``integration_discovery`` config flow, so that it
  shows up under "Discovered" with host, device id and version filled in; a plug a hub entry
  has as a plug subentry is configured, whatever the state of that entry (at Home Assistant's
  start a hub's plugs broadcast while its entry is still being set up), and a hub that takes a
  plug ends that plug's discovery flows (:func:`async_end_discovery_flows`);
* a configured plug announcing a new address is followed: a direct entry's host is updated, and
  the plug's source (direct or hub) connects there at once (``PlugSource.async_follow_host``);
* a configured plug that is heard while its connection is down is reconnected at once
  (``PlugSource.wake``) instead of at the end of its backoff.

It starts in the background and never blocks Home Assistant's start-up; a UDP port that is taken
(another integration or tool listening without SO_REUSEADDR) is skipped and reported as a repair
issue naming the ports.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from homeassistant.components import network
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigEntry,
    ConfigEntryState,
)
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
    SUBENTRY_PLUG,
    TRANSPORT_DIRECT,
)
from .coordinator import keep_warning_issue
from .source import PlugSource
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

#: Repair issue: some discovery ports are held by another program.
PORTS_ISSUE = "discovery_ports_taken"

DATA_VERSION = "version"
DATA_PRODUCT_KEY = "product_key"


class TuyaDiscovery:
    """The listener and what Home Assistant does with its announcements."""

    def __init__(self, hass: HomeAssistant, listener: DiscoveryListener) -> None:
        """Wrap ``listener``; call :meth:`async_start` next."""
        self.hass = hass
        self.listener = listener
        #: (ip, version, product key, mac) last heard per device id
        self._identities: dict[str, tuple[str, str, str, str | None]] = {}
        #: device ids a discovery flow was started for
        self._offered: set[str] = set()
        listener.subscribe(self._on_device)

    async def async_start(self) -> None:
        """Bind the UDP ports and start the requests (returns at once).

        Ports another program holds are skipped; a repair issue (``discovery_ports_taken``)
        names them, and goes away at the next start that binds every port.
        """
        await self.listener.start()
        taken = self.listener.unbound_ports
        keep_warning_issue(
            self.hass,
            PORTS_ISSUE,
            PORTS_ISSUE,
            {"ports": ", ".join(str(p) for p in taken)} if taken else None,
        )

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
        """True for a plug a hub entry has as a plug subentry, loaded or not."""
        return any(
            sub.unique_id == device_id
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
        )

    def _hub_source(self, device_id: str) -> PlugSource | None:
        """The source of the loaded entry that serves ``device_id`` without being its entry."""
        for entry in self.hass.config_entries.async_loaded_entries(DOMAIN):
            source: PlugSource = entry.runtime_data.source
            if device_id in source.plugs:
                return source
        return None

    @callback
    def _on_device(self, device: DiscoveredDevice) -> None:
        """Every broadcast heard; most are repeats (plugs announce themselves every ~5 s)."""
        changed = self._identities.get(device.device_id) != device.identity
        self._identities[device.device_id] = device.identity
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, device.device_id)
        source: PlugSource | None
        if entry is None:
            if not self._served(device.device_id):
                # offered again when it changed, or when it was not offered yet (e.g. a plug
                # heard while a hub served it, then removed from the hub)
                if changed or device.device_id not in self._offered:
                    self._offered.add(device.device_id)
                    discovery_flow.async_create_flow(
                        self.hass,
                        DOMAIN,
                        context={"source": SOURCE_INTEGRATION_DISCOVERY},
                        data=discovery_data(device),
                    )
                return
            source = self._hub_source(device.device_id)
            if source is None:
                return  # its hub entry is not loaded (yet): nothing to follow or wake
        elif entry.source == SOURCE_IGNORE or entry.data.get(CONF_TRANSPORT) != TRANSPORT_DIRECT:
            return
        else:
            if changed:
                self._update_entry(entry, device)
            if entry.state is not ConfigEntryState.LOADED:
                return
            source = entry.runtime_data.source
        if changed:
            self.hass.async_create_background_task(
                source.async_follow_host(device.device_id, device.ip),
                f"{DOMAIN} follow {device.device_id}",
            )
        if not source.plug_online(device.device_id):
            source.wake(device.device_id)

    @callback
    def _update_entry(self, entry: ConfigEntry, device: DiscoveredDevice) -> None:
        """Store a direct plug's new address and announced version in its entry."""
        updates: dict[str, Any] = {}
        if entry.data[CONF_HOST] != device.ip:
            LOGGER.info("Plug %s moved to %s", device.device_id, device.ip)
            updates[CONF_HOST] = device.ip
        if (
            entry.data.get(CONF_PROTOCOL_VERSION) == AUTO_VERSION
            and entry.data.get(CONF_DETECTED_VERSION) != device.version
        ):
            updates[CONF_DETECTED_VERSION] = device.version
        if updates:
            self.hass.config_entries.async_update_entry(entry, data={**entry.data, **updates})


@callback
def async_end_discovery_flows(hass: HomeAssistant, device_ids: Collection[str]) -> None:
    """End the discovery flows of plugs a hub serves (they were offered before it took them)."""
    flows = hass.config_entries.flow
    for flow in flows.async_progress_by_handler(
        DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
    ):
        if flow["context"].get("unique_id") in device_ids:
            flows.async_abort(flow["flow_id"])


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
        only_changes=False,  # repeats wake plugs that wait to reconnect
    )
    discovery = hass.data[DISCOVERY] = TuyaDiscovery(hass, listener)
    await discovery.async_start()

    async def _stop(_: Event) -> None:
        await discovery.async_stop()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop)
    return discovery

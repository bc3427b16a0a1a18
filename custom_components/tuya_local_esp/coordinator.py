"""Coordinators: the push-driven link between a transport and the entities.

Every coordinator holds ``data`` shaped ``{device_id: {dp_id: value}}`` so that the entities do
not care whether a plug is reached directly or through an ESP32 hub. A coordinator also answers
:meth:`PlugCoordinator.plug_online` and sets DPs with :meth:`PlugCoordinator.async_set_dps`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .const import (
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROTOCOL_VERSION,
    DEFAULT_NAME,
    DOMAIN,
    HEARTBEAT_SECONDS,
    LOGGER,
    POWER_REFRESH_SECONDS,
    REQUEST_TIMEOUT,
    SAFETY_POLL_INTERVAL,
)
from .tuya import TuyaDevice, TuyaError

type PlugData = dict[str, dict[str, Any]]

#: Connection attempts in a row that the plug refused with our key before asking the user.
KEY_FAILURES_FOR_REAUTH = 3


@dataclass(frozen=True, slots=True)
class PlugInfo:
    """What the entities need to know about one plug."""

    device_id: str
    name: str
    protocol_version: str
    host: str | None = None
    #: Identifier of the hub device in the device registry, for plugs behind a hub.
    via_hub: str | None = None


class PlugCoordinator(DataUpdateCoordinator[PlugData]):
    """Base class: DPS per plug, online state per plug, and setting DPs."""

    config_entry: ConfigEntry
    plugs: dict[str, PlugInfo]

    @abstractmethod
    def plug_online(self, device_id: str) -> bool:
        """Return True while the plug can be reached."""

    def known_dp_ids(self, device_id: str) -> set[str] | None:
        """DP ids the plug reported when it was added, or None when unknown."""
        return None

    @abstractmethod
    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs on a plug and return the DPS it confirmed.

        Raises:
            HomeAssistantError: translated, when the plug did not confirm.

        """


class DirectPlugCoordinator(PlugCoordinator):
    """One plug reached directly over the Tuya local protocol (TCP 6668).

    STATUS pushes and answers update the data at once (``async_set_updated_data``); a slow
    safety poll reads every DP in case a push was missed. The device client reconnects by
    itself; the entities go unavailable while it is disconnected and come back with it.
    """

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Create the device client for ``entry`` (nothing is opened yet)."""
        data = entry.data
        self.device_id: str = data[CONF_DEVICE_ID]
        self.device = TuyaDevice(
            data[CONF_HOST],
            self.device_id,
            data[CONF_LOCAL_KEY],
            version=data[CONF_PROTOCOL_VERSION],
            version_hint=data.get(CONF_DETECTED_VERSION),
            port=data[CONF_PORT],
            timeout=REQUEST_TIMEOUT,
            heartbeat_interval=HEARTBEAT_SECONDS,
            refresh_interval=POWER_REFRESH_SECONDS,
        )
        self.plugs = {
            self.device_id: PlugInfo(
                self.device_id,
                data.get(CONF_NAME) or DEFAULT_NAME,
                self.device.version,
                data[CONF_HOST],
            )
        }
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {self.device_id}",
            update_interval=SAFETY_POLL_INTERVAL,
            always_update=False,
        )
        self.data = {self.device_id: {}}
        self._unsubs = [
            self.device.subscribe(self._on_dps),
            self.device.subscribe_connection(self._on_connection),
        ]

    async def async_start(self) -> None:
        """Start connecting in the background; never blocks Home Assistant's start-up."""
        await self.device.start()

    async def async_suspend(self) -> None:
        """Close the connection for now; :meth:`async_start` opens it again.

        Plugs accept one connection, so the reconfigure flow needs it released to probe.
        """
        await self.device.close()

    async def async_shutdown(self) -> None:
        """Close the connection and stop the coordinator."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        await self.device.close()
        await super().async_shutdown()

    @override
    def plug_online(self, device_id: str) -> bool:
        return self.device.connected

    @override
    def known_dp_ids(self, device_id: str) -> set[str] | None:
        ids = self.config_entry.data.get(CONF_DP_IDS)
        return set(ids) if ids else None

    @callback
    def _on_dps(self, dps: dict[str, Any]) -> None:
        self.async_set_updated_data({self.device_id: {**self.data[self.device_id], **dps}})

    @callback
    def _on_connection(self, connected: bool) -> None:
        if connected:
            LOGGER.info("Plug %s is connected (protocol %s)", self.device_id, self.device.version)
            entry = self.config_entry
            if self.device.version != entry.data.get(CONF_DETECTED_VERSION):
                # remember what the auto probe found: it is tried first next time
                self.hass.config_entries.async_update_entry(
                    entry, data={**entry.data, CONF_DETECTED_VERSION: self.device.version}
                )
            self.async_set_updated_data({self.device_id: dict(self.device.dps)})
        else:
            LOGGER.info("Plug %s is unreachable; reconnecting", self.device_id)
            self.async_update_listeners()

    @override
    async def _async_update_data(self) -> PlugData:
        if not self.device.connected:
            if self.device.key_failures >= KEY_FAILURES_FOR_REAUTH:
                # re-paired plugs get a new local key: ask the user for it
                self.config_entry.async_start_reauth(self.hass)
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="plug_unreachable",
                translation_placeholders={"device_id": self.device_id},
            )
        try:
            dps = await self.device.status()
        except TuyaError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="plug_unreachable",
                translation_placeholders={"device_id": self.device_id},
            ) from err
        return {self.device_id: dps}

    @override
    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        try:
            confirmed = await self.device.set_dps(dps)
        except TuyaError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": str(err)},
            ) from err
        self._on_dps(confirmed)
        return confirmed

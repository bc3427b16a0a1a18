"""Update entity of the ESP32 hub: installs the firmware bundled with the integration.

The bundle (``firmware/``: the modules built by ``scripts/build_firmware.py`` and their
``manifest.json`` with the release notes) gives the latest version; the hub's ``hello.fw`` the
installed one. Install sends the modules over the hub channel (:mod:`.hub.update`,
hub-protocol §7.3.1); the hub restarts into them on trial and confirms them after running
30 s with a client connected. Until then the entity shows the install in progress: while
sending, while the hub restarts, and while its ``health`` reports ``trial`` (§7.3, polled every
:data:`TRIAL_POLL` then), also for an update that another client installed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, override

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityFeature,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util.hass_dict import HassKey

from . import TuyaLocalConfigEntry
from .const import DOMAIN, LOGGER
from .entity import HubEntity
from .hub import HubCommandError, HubError, HubHealth
from .hub.update import FirmwareBundle, FirmwareBundleError, install, load_bundle
from .hub_coordinator import HubCoordinator

PARALLEL_UPDATES = 1  # one firmware installation at a time

#: The firmware bundle shipped with the integration (``scripts/build_firmware.py``).
FIRMWARE_DIR: Final = Path(__file__).parent / "firmware"
#: Bundles read so far, by directory (:func:`_async_bundle`).
BUNDLES: HassKey[dict[Path, FirmwareBundle | None]] = HassKey(f"{DOMAIN}_firmware_bundles")
#: How often the hub's ``health`` is asked (a coordinator refresh) while its firmware is on
#: trial or restarting into one: the hub sends no push when it confirms the trial
#: (hub-protocol §7.3.1). The timer runs while the entity is added and asks nothing otherwise;
#: the coordinator's debouncer (HA's ``REQUEST_REFRESH_DEFAULT_COOLDOWN``, 10 s) would hold a
#: shorter period back to this anyway.
TRIAL_POLL: Final = timedelta(seconds=10)
#: Seconds after a commit within which the hub must report how the new firmware came up
#: (confirmed or rolled back): its trial ends by 600 s (``ota_trial_s``), the rollback after
#: 2 boots; past this the entity stops showing the install in progress.
RESTART_WAIT: Final = 900.0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's firmware update entity (hub entries only)."""
    hub = entry.runtime_data.hub
    if hub is None:
        return
    async_add_entities([HubFirmwareUpdate(hub, await _async_bundle(hass))])


async def _async_bundle(hass: HomeAssistant) -> FirmwareBundle | None:
    """The bundle in :data:`FIRMWARE_DIR`, read and checked once per run (None: unusable).

    It ships with the integration and changes only with it (after a restart), while a hub
    entry is set up again at every change of its plug subentries.
    """
    bundles = hass.data.setdefault(BUNDLES, {})
    if FIRMWARE_DIR not in bundles:
        try:
            bundles[FIRMWARE_DIR] = await hass.async_add_executor_job(load_bundle, FIRMWARE_DIR)
        except FirmwareBundleError as err:
            LOGGER.warning("No hub firmware to install: %s", err)
            bundles[FIRMWARE_DIR] = None
    return bundles[FIRMWARE_DIR]


class HubFirmwareUpdate(HubEntity, UpdateEntity):
    """The hub's firmware: installed (``hello.fw``) against bundled; install with progress.

    ``in_progress`` is true while the modules are sent, from the commit until the restarted hub
    reports how the new firmware came up, and while the hub reports a firmware on ``trial``;
    Home Assistant's install service refuses to start another install meanwhile.
    """

    _attr_device_class = UpdateDeviceClass.FIRMWARE
    _attr_entity_category = EntityCategory.CONFIG
    _attr_translation_key = "hub_firmware"
    _attr_title = "Tuya Local ESP hub firmware"

    def __init__(self, coordinator: HubCoordinator, bundle: FirmwareBundle | None) -> None:
        """Create the entity; ``bundle`` is the firmware to offer (None: nothing to offer)."""
        super().__init__(coordinator, "firmware_update")
        self._bundle = bundle
        self._attr_latest_version = bundle.version if bundle is not None else None
        features = UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
        if bundle is not None and bundle.notes:
            features |= UpdateEntityFeature.RELEASE_NOTES
        self._attr_supported_features = features
        #: The modules are being sent (:meth:`async_install`).
        self._sending = False
        #: Version committed by :meth:`async_install` and when (``time.monotonic()``), until a
        #: health report from after the restart tells how it came up.
        self._committed: tuple[str, float] | None = None
        #: The coordinator's health report last looked at while an install is committed
        #: (each refresh makes a new one).
        self._seen_health: HubHealth | None = None

    @property
    @override
    def installed_version(self) -> str | None:
        return self.coordinator.firmware

    @property
    @override
    def in_progress(self) -> bool:
        return self._sending or self._committed is not None or self._hub_on_trial

    @property
    def _hub_on_trial(self) -> bool:
        """The hub's last health report (hub-protocol §7.3) says its firmware is on trial."""
        health = self.coordinator.health
        return health is not None and health.trial

    @property
    @override
    def available(self) -> bool:
        # during the restart after a commit the hub is away, the install still in progress
        return self.coordinator.hub_connected or self._sending or self._committed is not None

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(async_track_time_interval(self.hass, self._tick, TRIAL_POLL))

    @override
    async def async_release_notes(self) -> str | None:
        """The bundled firmware's release notes (Markdown, from ``manifest.json``)."""
        return self._bundle.notes if self._bundle is not None else None

    @override
    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Send the bundled firmware to the hub; it restarts into it.

        Raises:
            HomeAssistantError: translated ``firmware_unavailable`` (no bundle, or another
                version asked for), ``firmware_update_busy`` (the hub answered ``busy``:
                another client is updating it or its firmware is still on trial) or
                ``firmware_update_failed`` (the hub's error code and message, or why the hub
                could not be reached); the hub then runs its old firmware.

        """
        bundle = self._bundle
        if bundle is None or (version is not None and version != bundle.version):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_unavailable",
                translation_placeholders={"version": version or "?"},
            )
        hub_id = self.coordinator.hub_id
        self._sending = True
        self._attr_update_percentage = 0
        self.async_write_ha_state()
        try:
            await install(self.coordinator.client, bundle, self._progress)
        except HubCommandError as err:
            if err.code != "busy":
                raise self._failed(err) from err
            self._poll()  # the trial, if that is why: shown as in progress
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_update_busy",
                translation_placeholders={"hub_id": hub_id},
            ) from err
        except HubError as err:
            raise self._failed(err) from err
        finally:
            self._sending = False
            self._attr_update_percentage = None
        self._committed = (bundle.version, time.monotonic())
        self._seen_health = self.coordinator.health  # from before the restart
        LOGGER.info("Hub %s: firmware %s installed; it restarts into it", hub_id, bundle.version)

    def _failed(self, err: HubError) -> HomeAssistantError:
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="firmware_update_failed",
            translation_placeholders={
                "hub_id": self.coordinator.hub_id,
                # the hub's code with its explanation ("incompatible: modules for mpy
                # 11014, this hub runs 2822"), or why it could not be reached
                "error": str(err),
            },
        )

    def _progress(self, sent: int, total: int) -> None:
        percentage = sent * 100 // total
        if percentage != self._attr_update_percentage:
            self._attr_update_percentage = percentage
            self.async_write_ha_state()

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        health, committed = self.coordinator.health, self._committed
        if committed is not None and health is not None and health is not self._seen_health:
            self._seen_health = health
            self._take_health(health, committed)
        super()._handle_coordinator_update()

    def _take_health(self, health: HubHealth, committed: tuple[str, float]) -> None:
        """End the committed install if ``health`` shows the hub restarted, off trial.

        A report (hub-protocol §7.3) from after the restart without a trial means the new
        firmware was confirmed, or rolled back.
        """
        if health.uptime_s > time.monotonic() - committed[1]:
            return  # the hub has run since before the commit: the restart is still to come
        if not health.trial:
            self._committed = None
            self._log_outcome(committed[0])

    def _log_outcome(self, version: str) -> None:
        """The hub reports, after the restart into ``version``, that no trial runs."""
        running = self.coordinator.firmware
        if running == version:
            LOGGER.info("Hub %s: firmware %s confirmed", self.coordinator.hub_id, running)
        else:
            LOGGER.warning(
                "Hub %s: firmware %s did not come up; the hub rolled back to %s",
                self.coordinator.hub_id,
                version,
                running,
            )

    @callback
    def _tick(self, _now: datetime) -> None:
        """Every :data:`TRIAL_POLL`: ask for health while a trial or a restart is followed."""
        committed = self._committed
        if committed is not None and time.monotonic() - committed[1] > RESTART_WAIT:
            LOGGER.warning(
                "Hub %s did not report firmware %s within %d s of installing it",
                self.coordinator.hub_id,
                committed[0],
                RESTART_WAIT,
            )
            self._committed = None
            self.async_write_ha_state()
        if self._hub_on_trial or self._committed is not None:
            self._poll()

    def _poll(self) -> None:
        """Have the coordinator ask the hub for its health now (only while connected).

        Its refresh brings the report to :meth:`_handle_coordinator_update`; its debouncer
        keeps to one request at a time.
        """
        if self.coordinator.hub_connected:
            self.coordinator.config_entry.async_create_background_task(
                self.hass,
                self.coordinator.async_request_refresh(),
                f"{DOMAIN} hub {self.coordinator.hub_id} trial",
            )

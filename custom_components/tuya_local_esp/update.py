"""Update entity of the ESP32 hub: installs the firmware bundled with the integration.

The bundle (``firmware/``: the modules built by ``scripts/build_firmware.py`` and their
``manifest.json``) gives the latest version; the hub's ``hello.fw`` the installed one. Install
sends the modules over the hub channel (:mod:`.hub.update`, hub-protocol §7.3.1); the hub
restarts into them and reports the new version once the client has reconnected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, override

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityFeature,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util.hass_dict import HassKey

from . import TuyaLocalConfigEntry
from .const import DOMAIN, LOGGER
from .entity import HubEntity
from .hub import HubError
from .hub.update import FirmwareBundle, FirmwareBundleError, install, load_bundle
from .hub_coordinator import HubCoordinator

PARALLEL_UPDATES = 1  # one firmware installation at a time

#: The firmware bundle shipped with the integration (``scripts/build_firmware.py``).
FIRMWARE_DIR: Final = Path(__file__).parent / "firmware"
#: Bundles read so far, by directory (:func:`_async_bundle`).
BUNDLES: HassKey[dict[Path, FirmwareBundle | None]] = HassKey(f"{DOMAIN}_firmware_bundles")


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
    """The hub's firmware: installed (``hello.fw``) against bundled; install with progress."""

    _attr_device_class = UpdateDeviceClass.FIRMWARE
    _attr_entity_category = EntityCategory.CONFIG
    _attr_supported_features = UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
    _attr_translation_key = "hub_firmware"
    _attr_title = "Tuya Local ESP hub firmware"

    def __init__(self, coordinator: HubCoordinator, bundle: FirmwareBundle | None) -> None:
        """Create the entity; ``bundle`` is the firmware to offer (None: nothing to offer)."""
        super().__init__(coordinator, "firmware_update")
        self._bundle = bundle
        self._attr_latest_version = bundle.version if bundle is not None else None

    @property
    @override
    def installed_version(self) -> str | None:
        return self.coordinator.firmware

    @property
    @override
    def available(self) -> bool:
        return self.coordinator.hub_connected or bool(self._attr_in_progress)

    @override
    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Send the bundled firmware to the hub; it restarts into it.

        Raises:
            HomeAssistantError: translated ``firmware_unavailable`` (no bundle, or another
                version asked for) or ``firmware_update_failed`` (the hub's error code and
                message, or why the hub could not be reached); the hub then runs its old
                firmware.

        """
        bundle = self._bundle
        if bundle is None or (version is not None and version != bundle.version):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_unavailable",
                translation_placeholders={"version": version or "?"},
            )
        self._attr_in_progress = True
        self._attr_update_percentage = 0
        self.async_write_ha_state()
        try:
            await install(self.coordinator.client, bundle, self._progress)
        except HubError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_update_failed",
                translation_placeholders={
                    "hub_id": self.coordinator.hub_id,
                    # the hub's code with its explanation ("incompatible: modules for mpy
                    # 11014, this hub runs 2822"), or why it could not be reached
                    "error": str(err),
                },
            ) from err
        finally:
            self._attr_in_progress = False
            self._attr_update_percentage = None
        hub_id = self.coordinator.hub_id
        LOGGER.info("Hub %s: firmware %s installed; it restarts into it", hub_id, bundle.version)

    def _progress(self, sent: int, total: int) -> None:
        percentage = sent * 100 // total
        if percentage != self._attr_update_percentage:
            self._attr_update_percentage = percentage
            self.async_write_ha_state()

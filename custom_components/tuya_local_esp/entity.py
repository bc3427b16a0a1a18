"""Base entity of the plugs."""

from __future__ import annotations

from typing import Any, override

from homeassistant.const import EntityCategory
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import PlugCoordinator
from .hub_coordinator import HubCoordinator


class PlugEntity(CoordinatorEntity[PlugCoordinator]):
    """An entity of one plug; available while the plug is online and has reported."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: PlugCoordinator, device_id: str, key: str) -> None:
        """Attach the entity to plug ``device_id``; ``key`` makes the unique id."""
        super().__init__(coordinator)
        self.device_id = device_id
        plug = coordinator.plugs[device_id]
        self._attr_unique_id = f"{device_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, device_id)},
            name=plug.name,
            manufacturer="Tuya",
            model="Wi-Fi smart plug",
            model_id=f"protocol {plug.protocol_version}",
            serial_number=device_id,
        )
        if plug.via_hub:  # the hub's device is registered by the hub entry's setup
            self._attr_device_info["via_device_id"] = dr.async_get_device_id_by_identifier(
                coordinator.hass,
                (DOMAIN, plug.via_hub),
                config_entry_id=coordinator.config_entry.entry_id,
            )

    @property
    def dps(self) -> dict[str, Any]:
        """Current DPS of this plug."""
        return self.coordinator.data.get(self.device_id, {}) if self.coordinator.data else {}

    @property
    @override
    def available(self) -> bool:
        return self.coordinator.plug_online(self.device_id) and bool(self.dps)


class HubEntity(CoordinatorEntity[HubCoordinator]):
    """An entity of the hub device itself."""

    _attr_has_entity_name = True
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: HubCoordinator, key: str) -> None:
        """Attach to the hub's device; ``key`` makes the unique id."""
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.hub_id}_{key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.hub_id)})

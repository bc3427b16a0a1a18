"""Binary sensor of a hub entry: is the hub connected."""

from __future__ import annotations

from typing import override

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .entity import HubEntity
from .hub_coordinator import HubCoordinator

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's connectivity sensor (this platform is set up for hub entries only)."""
    if (hub := entry.runtime_data.hub) is not None:
        async_add_entities([HubConnectedSensor(hub)])


class HubConnectedSensor(HubEntity, BinarySensorEntity):
    """On while Home Assistant's authenticated channel to the hub is up."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_translation_key = "hub_connected"

    def __init__(self, coordinator: HubCoordinator) -> None:
        """Create the sensor."""
        super().__init__(coordinator, "connected")

    @property
    @override
    def available(self) -> bool:
        return True  # it reports the outage itself

    @property
    @override
    def is_on(self) -> bool:
        return self.coordinator.hub_connected

"""Binary sensors: is the hub connected (hub entries); a plug's faults (from its profile)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, override

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .entity import HubEntity, PlugDpEntity, async_add_plug_entities
from .hub_coordinator import HubCoordinator
from .profiles import fault_names
from .source import PlugSource

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's connectivity sensor (hub entries) and each plug's problem sensors."""
    if (hub := entry.runtime_data.hub) is not None:
        async_add_entities([HubConnectedSensor(hub)])
    async_add_plug_entities(hass, entry, async_add_entities, plug_problem_sensors)


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


# -- plugs: faults ---------------------------------------------------------------------------

FAULT = BinarySensorEntityDescription(
    key="fault",
    translation_key="fault",
    device_class=BinarySensorDeviceClass.PROBLEM,
    entity_category=EntityCategory.DIAGNOSTIC,
)
OVERCURRENT = BinarySensorEntityDescription(
    key="overcurrent",
    translation_key="overcurrent",
    device_class=BinarySensorDeviceClass.PROBLEM,
    entity_category=EntityCategory.DIAGNOSTIC,
)


def plug_problem_sensors(source: PlugSource, device_id: str, via: str | None) -> list[PlugProblem]:
    """A problem sensor per fault bitmap or overcurrent alarm in the plug's profile."""
    profile = source.plug_profile(device_id)
    return [
        PlugProblem(source, device_id, description, dp, via)
        for description, dp in ((FAULT, profile.fault), (OVERCURRENT, profile.alarm))
        if dp is not None
    ]


class PlugProblem(PlugDpEntity[BinarySensorEntityDescription], BinarySensorEntity):
    """On while the plug reports a fault; ``faults`` lists the fault names (``FAULT_BITS``)."""

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.is_on, tuple(self._faults()))

    def _faults(self) -> list[str]:
        value = self.dps.get(self.dp)
        if self.entity_description.key == FAULT.key:
            return list(fault_names(value))
        return ["overcurrent"] if value not in (None, False, 0) else []

    @property
    @override
    def is_on(self) -> bool | None:
        if self.dps.get(self.dp) is None:
            return None
        return bool(self._faults())

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        return {"faults": self._faults()}

"""Voltage, current, power and energy sensors of a plug (and the hub's diagnostic sensors).

The DPs and divisors come from the plug's profile (``profiles/model.py``; standard layout: DP 18
current in mA, DP 19 power in W x 10, DP 20 voltage in V x 10, spec §5). The divisor is read from
the source's profile at every update, so a corrected power divisor applies at once.

Energy (kWh, for the Energy dashboard) is integrated here from the power DP, because DP 17
(``add_ele``) is reset by many plugs whenever they report to the cloud (spec §5) and is often
never pushed locally. The total survives restarts (``RestoreSensor``) and never decreases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfInformation,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from . import TuyaLocalConfigEntry
from .entity import HubEntity, PlugDpEntity, PlugEntity, async_add_plug_entities
from .hub_coordinator import HubCoordinator
from .source import PlugSource

PARALLEL_UPDATES = 0

#: A gap longer than this between two power readings is not integrated (plug unreachable).
MAX_INTEGRATION_GAP = 300.0


@dataclass(frozen=True, kw_only=True)
class PlugSensorDescription(SensorEntityDescription):
    """A sensor of one meter role of the profile (``current``, ``power``, ``voltage``)."""

    role: str


SENSORS: tuple[PlugSensorDescription, ...] = (
    PlugSensorDescription(
        key="voltage",
        translation_key="voltage",
        role="voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
    ),
    PlugSensorDescription(
        key="current",
        translation_key="current",
        role="current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
    ),
    PlugSensorDescription(
        key="power",
        translation_key="power",
        role="power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
    ),
)


def meter_value(source: PlugSource, device_id: str, role: str) -> float | None:
    """The plug's reading of meter ``role`` scaled by its profile (None: absent or no number)."""
    meter = source.plug_profile(device_id).meters.get(role)
    if meter is None:
        return None
    value = meter.value(source.plug_dps(device_id))
    return None if value is None else round(value, 3)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of the meters in each plug's profile, and the hub's own sensors."""
    async_add_plug_entities(hass, entry, async_add_entities, plug_sensors)
    if (hub := entry.runtime_data.hub) is not None:
        async_add_entities(HubSensor(hub, description) for description in HUB_SENSORS)


def plug_sensors(source: PlugSource, device_id: str, via: str | None) -> list[PlugEntity]:
    """A sensor per meter of the plug's profile, and the energy sensor when it meters power."""
    meters = source.plug_profile(device_id).meters
    entities: list[PlugEntity] = [
        PlugSensor(source, device_id, description, meters[description.role].dp, via)
        for description in SENSORS
        if description.role in meters
    ]
    if "power" in meters:
        entities.append(PlugEnergySensor(source, device_id, meters["power"].dp, via))
    return entities


@dataclass(frozen=True, kw_only=True)
class HubSensorDescription(SensorEntityDescription):
    """A diagnostic value of the hub."""

    value_fn: Callable[[HubCoordinator], StateType | datetime]
    #: Read from the hub's health (``health`` request): unavailable until it is answered
    #: after each connect.
    from_health: bool = True


HUB_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="firmware",
        translation_key="hub_firmware",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda c: c.firmware,
        from_health=False,  # from the hello
    ),
    HubSensorDescription(
        key="heap_free",
        translation_key="hub_heap_free",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.KILOBYTES,
        state_class=SensorStateClass.MEASUREMENT,
        entity_registry_enabled_default=False,
        value_fn=lambda c: c.health.heap_free if c.health else None,
    ),
    HubSensorDescription(
        # when the hub started: changes only when it restarts (a duration would change at
        # every poll and fill the recorder)
        key="uptime",
        translation_key="hub_uptime",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda c: c.boot_time,
    ),
    HubSensorDescription(
        key="rssi",
        translation_key="hub_rssi",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.SIGNAL_STRENGTH,
        native_unit_of_measurement=SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
        state_class=SensorStateClass.MEASUREMENT,
        entity_registry_enabled_default=False,
        value_fn=lambda c: c.health.rssi if c.health else None,
    ),
)


class HubSensor(HubEntity, SensorEntity):
    """A diagnostic sensor of the hub device."""

    entity_description: HubSensorDescription

    def __init__(self, coordinator: HubCoordinator, description: HubSensorDescription) -> None:
        """Create the hub sensor ``description``."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    @override
    def available(self) -> bool:
        return self.coordinator.hub_connected and (
            not self.entity_description.from_health or self.coordinator.health is not None
        )

    @property
    @override
    def native_value(self) -> StateType | datetime:
        return self.entity_description.value_fn(self.coordinator)


class PlugSensor(PlugDpEntity[PlugSensorDescription], SensorEntity):
    """A measurement read from one DP (its meter role's, scaled by the profile)."""

    entity_description: PlugSensorDescription

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.native_value)

    @property
    @override
    def native_value(self) -> float | None:
        return meter_value(self.source, self.device_id, self.entity_description.role)


class PlugEnergySensor(PlugEntity, RestoreSensor):
    """Energy in kWh, integrated from the power DP (left Riemann sum), never decreasing."""

    _attr_translation_key = "energy"
    _attr_device_class = SensorDeviceClass.ENERGY
    _attr_state_class = SensorStateClass.TOTAL_INCREASING
    _attr_native_unit_of_measurement = UnitOfEnergy.KILO_WATT_HOUR
    _attr_suggested_display_precision = 3

    def __init__(
        self, source: PlugSource, device_id: str, power_dp: str, via_device_id: str | None
    ) -> None:
        """Create the energy sensor of plug ``device_id`` (power read from ``power_dp``)."""
        super().__init__(source, device_id, "energy", via_device_id)
        #: Every power report is integrated, changed or not.
        self.listen_dps = frozenset({power_dp})
        self._energy_kwh = 0.0
        self._last: tuple[float, float] | None = None  # (monotonic time, watts)

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        restored = await self.async_get_last_sensor_data()
        if restored is not None and isinstance(restored.native_value, int | float):
            self._energy_kwh = float(restored.native_value)
        self._integrate()
        self._written = self._shown()

    @property
    @override
    def native_value(self) -> float:
        return round(self._energy_kwh, 6)

    def _integrate(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        watts = meter_value(self.source, self.device_id, "power") if self.available else None
        if self._last is not None and watts is not None:
            then, last_watts = self._last
            elapsed = now - then
            if 0 < elapsed <= MAX_INTEGRATION_GAP:
                self._energy_kwh += last_watts * elapsed / 3_600_000
        self._last = (now, watts) if watts is not None else None

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.native_value)

    @callback
    @override
    def _handle_plug(self) -> None:
        self._integrate()
        super()._handle_plug()

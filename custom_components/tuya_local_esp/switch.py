"""Switch of a plug (DP 1)."""

from __future__ import annotations

from typing import Any, override

from homeassistant.components.switch import SwitchEntity
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .const import DP_SWITCH
from .coordinator import PlugCoordinator
from .entity import PlugEntity

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add one switch per plug."""
    coordinator = entry.runtime_data
    async_add_entities(PlugSwitch(coordinator, device_id) for device_id in coordinator.plugs)


class PlugSwitch(PlugEntity, SwitchEntity):
    """The plug's relay. Its state changes only when the plug confirms it."""

    _attr_device_class = SwitchDeviceClass.OUTLET
    _attr_name = None  # the device name alone

    def __init__(self, coordinator: PlugCoordinator, device_id: str) -> None:
        """Create the switch of plug ``device_id``."""
        super().__init__(coordinator, device_id, "switch")

    @property
    @override
    def is_on(self) -> bool | None:
        value = self.dps.get(DP_SWITCH)
        return value if isinstance(value, bool) else None

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.coordinator.async_set_dps(self.device_id, {DP_SWITCH: True})

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.coordinator.async_set_dps(self.device_id, {DP_SWITCH: False})

"""Switch of a plug (DP 1)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, override

from homeassistant.components.switch import SwitchEntity
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .const import DP_SWITCH
from .entity import PlugEntity, add_plug_entities, via_device_ids
from .source import PlugSource

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add one switch per plug."""
    source = entry.runtime_data.source
    via = via_device_ids(hass, entry.entry_id, source)
    add_plug_entities(
        async_add_entities,
        source,
        (PlugSwitch(source, device_id, via[device_id]) for device_id in source.plugs),
    )


class PlugSwitch(PlugEntity, SwitchEntity):
    """The plug's relay. Its state changes only when the plug confirms it."""

    _attr_device_class = SwitchDeviceClass.OUTLET
    _attr_name = None  # the device name alone
    listen_dps = frozenset({DP_SWITCH})

    def __init__(self, source: PlugSource, device_id: str, via_device_id: str | None) -> None:
        """Create the switch of plug ``device_id``."""
        super().__init__(source, device_id, "switch", via_device_id)

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.is_on)

    @property
    @override
    def is_on(self) -> bool | None:
        value = self.dps.get(DP_SWITCH)
        return value if isinstance(value, bool) else None

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.source.async_set_dps(self.device_id, {DP_SWITCH: True})

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.source.async_set_dps(self.device_id, {DP_SWITCH: False})

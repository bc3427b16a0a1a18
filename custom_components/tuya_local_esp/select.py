"""Selects of a plug, from its profile: power-on behaviour and indicator light (configuration).

Power-on behaviour shows the options ``off``/``on``/``memory`` whatever raw value set the plug
uses (``power_off/power_on/last``, ``off/on/memory`` or ``0/1/2``, ``profiles.model``); the
indicator light shows the plug's raw options (``relay``, ``pos``, ``none``, ``on``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .entity import PlugDpEntity, PlugEntity, async_add_plug_entities
from .profiles import POWER_ON_OPTIONS, Indicator, PowerOnBehaviour
from .source import PlugSource

PARALLEL_UPDATES = 1

POWER_ON = SelectEntityDescription(
    key="power_on",
    translation_key="power_on",
    entity_category=EntityCategory.CONFIG,
    options=list(POWER_ON_OPTIONS),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the selects of every plug's profile."""
    async_add_plug_entities(hass, entry, async_add_entities, plug_selects)


def plug_selects(source: PlugSource, device_id: str, via: str | None) -> list[PlugEntity]:
    """The power-on behaviour and indicator selects the plug's profile has."""
    profile = source.plug_profile(device_id)
    entities: list[PlugEntity] = []
    if profile.power_on is not None:
        entities.append(PowerOnSelect(source, device_id, profile.power_on, via))
    if profile.indicator is not None:
        entities.append(IndicatorSelect(source, device_id, profile.indicator, via))
    return entities


class _PlugSelect(PlugDpEntity[SelectEntityDescription], SelectEntity):
    """A select on one enum DP; its state changes when the plug confirms."""

    def _raw(self, option: str) -> str:
        return option

    def _option(self, raw: object) -> str | None:
        return raw if isinstance(raw, str) and raw in self.options else None

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.current_option)

    @property
    @override
    def current_option(self) -> str | None:
        return self._option(self.dps.get(self.dp))

    @override
    async def async_select_option(self, option: str) -> None:
        await self.source.async_set_dps(self.device_id, {self.dp: self._raw(option)})


class PowerOnSelect(_PlugSelect):
    """What the relay does when mains returns: off, on, or as before (memory)."""

    def __init__(
        self,
        source: PlugSource,
        device_id: str,
        behaviour: PowerOnBehaviour,
        via_device_id: str | None,
    ) -> None:
        """Create the select of the power-on ``behaviour`` DP."""
        super().__init__(source, device_id, POWER_ON, behaviour.dp, via_device_id)
        self._behaviour = behaviour

    @override
    def _raw(self, option: str) -> str:
        return self._behaviour.raw_value(option)

    @override
    def _option(self, raw: object) -> str | None:
        return self._behaviour.option(raw)


class IndicatorSelect(_PlugSelect):
    """The indicator light mode (the plug's raw options)."""

    def __init__(
        self, source: PlugSource, device_id: str, indicator: Indicator, via_device_id: str | None
    ) -> None:
        """Create the select of the ``indicator`` DP."""
        description = SelectEntityDescription(
            key="indicator",
            translation_key="indicator",
            entity_category=EntityCategory.CONFIG,
            options=list(indicator.options),
        )
        super().__init__(source, device_id, description, indicator.dp, via_device_id)

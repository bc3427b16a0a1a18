"""Countdown of each outlet (seconds until the outlet toggles; 0 = none), from the plug's profile.

Countdown DPs per the profile (standard 9..14 for outlets 1..6 and 15 for USB, legacy 2; Tuya's
``countdown_N``, 0..86400 s; ``profiles/model.py`` cites the sources). The entity always shows
seconds; a DP that counts minutes (legacy DP 2, ``Outlet.countdown_scale`` 60, tuya-local
``smartplugv1.yaml``) is converted on read and write, and the entity then steps by 60 s.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import override

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .entity import PlugDpEntity, PlugEntity, async_add_plug_entities
from .profiles import Profile
from .source import PlugSource

PARALLEL_UPDATES = 1

#: The longest countdown a plug accepts (one day, Tuya ``countdown_N``).
MAX_COUNTDOWN = 86400


def countdown_descriptions(profile: Profile) -> list[tuple[NumberEntityDescription, str]]:
    """(entity description, countdown DP) of every outlet with a countdown.

    The description is in seconds, stepping by the outlet's ``countdown_scale``.
    """
    result: list[tuple[NumberEntityDescription, str]] = []
    single = len(profile.switches) == 1
    for index, outlet in enumerate(profile.outlets, start=1):
        if outlet.countdown is None:
            continue
        if outlet.usb:
            key, translation_key, placeholders = "countdown_usb", "usb_countdown", None
        elif single:
            key, translation_key, placeholders = "countdown", "countdown", None
        else:
            key, translation_key = f"countdown_{outlet.dp}", "outlet_countdown"
            placeholders = {"index": str(index)}
        description = NumberEntityDescription(
            key=key,
            translation_key=translation_key,
            translation_placeholders=placeholders,
            entity_category=EntityCategory.CONFIG,
            device_class=NumberDeviceClass.DURATION,
            native_unit_of_measurement=UnitOfTime.SECONDS,
            native_min_value=0,
            native_max_value=MAX_COUNTDOWN,
            native_step=outlet.countdown_scale,
            mode=NumberMode.BOX,
        )
        result.append((description, outlet.countdown))
    return result


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a countdown per outlet that has one."""

    def build(source: PlugSource, device_id: str, via: str | None) -> Iterable[PlugEntity]:
        return (
            CountdownNumber(source, device_id, description, dp, via)
            for description, dp in countdown_descriptions(source.plug_profile(device_id))
        )

    async_add_plug_entities(hass, entry, async_add_entities, build)


def seconds_to_raw(seconds: float, scale: int) -> int:
    """The countdown DP value for ``seconds`` on a DP counting ``scale``-second units.

    Rounded to the nearest unit, but a positive time never becomes 0 (which would cancel it).
    """
    raw = round(seconds / scale)
    return max(raw, 1) if seconds > 0 else 0


class CountdownNumber(PlugDpEntity[NumberEntityDescription], NumberEntity):
    """Seconds until the outlet toggles (the plug counts down and reports it, in its own unit)."""

    def __init__(
        self,
        source: PlugSource,
        device_id: str,
        description: NumberEntityDescription,
        dp: str,
        via_device_id: str | None,
    ) -> None:
        """Create the countdown ``description`` on ``dp`` of plug ``device_id``."""
        super().__init__(source, device_id, description, dp, via_device_id)
        #: Seconds per unit of the countdown DP (the description's step, 1 or 60).
        self.scale = int(description.native_step or 1)

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.native_value)

    @property
    @override
    def native_value(self) -> float | None:
        value = self.dps.get(self.dp)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value * self.scale

    @override
    async def async_set_native_value(self, value: float) -> None:
        await self.source.async_set_dps(
            self.device_id, {self.dp: seconds_to_raw(value, self.scale)}
        )

"""Switches of a plug, from its profile: one per outlet and USB, child lock, overcharge cut-off.

The first outlet keeps the unique id ``{device_id}_switch`` it had before profiles (and no name
of its own on a single-outlet plug); the others are ``switch_{dp}`` and ``usb``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import TuyaLocalConfigEntry
from .const import CONF_OUTLET_NAMES
from .entity import PlugDpEntity, PlugEntity, async_add_plug_entities
from .profiles import Profile
from .source import PlugSource

PARALLEL_UPDATES = 1


def switch_descriptions(
    profile: Profile, names: Sequence[str] = ()
) -> list[tuple[SwitchEntityDescription, str]]:
    """(entity description, DP) of every switch the profile gives, outlets first.

    ``names`` are the user's outlet names in outlet order ("" or missing: the translated name).
    """
    result: list[tuple[SwitchEntityDescription, str]] = []
    single = len(profile.switches) == 1
    for index, outlet in enumerate(profile.switches, start=1):
        name = names[index - 1] if index <= len(names) else ""
        if name:
            description = SwitchEntityDescription(
                key="switch" if index == 1 else f"switch_{outlet.dp}",
                name=name,
                device_class=SwitchDeviceClass.OUTLET,
            )
        elif index == 1 and single:
            description = SwitchEntityDescription(
                key="switch", name=None, device_class=SwitchDeviceClass.OUTLET
            )
        else:
            description = SwitchEntityDescription(
                key="switch" if index == 1 else f"switch_{outlet.dp}",
                translation_key="outlet",
                translation_placeholders={"index": str(index)},
                device_class=SwitchDeviceClass.OUTLET,
            )
        result.append((description, outlet.dp))
    if (usb := profile.usb) is not None:
        result.append(
            (
                SwitchEntityDescription(
                    key="usb", translation_key="usb", device_class=SwitchDeviceClass.OUTLET
                ),
                usb.dp,
            )
        )
    for key, dp in (("child_lock", profile.child_lock), ("overcharge", profile.overcharge)):
        if dp is not None:
            result.append(
                (
                    SwitchEntityDescription(
                        key=key, translation_key=key, entity_category=EntityCategory.CONFIG
                    ),
                    dp,
                )
            )
    return result


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the switches of every plug's profile, with the user's outlet names.

    A direct plug's names are in its entry's options (``flow_plug_options``), a hub plug's in
    its config subentry (``flow_hub_plugs``' reconfigure step).
    """

    def build(source: PlugSource, device_id: str, via: str | None) -> Iterable[PlugEntity]:
        subentry = entry.subentries.get(source.plugs[device_id].subentry_id or "")
        names = (subentry.data if subentry is not None else entry.options).get(
            CONF_OUTLET_NAMES, []
        )
        return (
            PlugSwitch(source, device_id, description, dp, via)
            for description, dp in switch_descriptions(source.plug_profile(device_id), names)
        )

    async_add_plug_entities(hass, entry, async_add_entities, build)


class PlugSwitch(PlugDpEntity[SwitchEntityDescription], SwitchEntity):
    """A bool DP of the plug (relay, USB, child lock ...); it changes when the plug confirms."""

    @override
    def _shown(self) -> Hashable:
        return (self.available, self.is_on)

    @property
    @override
    def is_on(self) -> bool | None:
        value = self.dps.get(self.dp)
        return value if isinstance(value, bool) else None

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.source.async_set_dps(self.device_id, {self.dp: True})

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.source.async_set_dps(self.device_id, {self.dp: False})

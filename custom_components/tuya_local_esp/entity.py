"""Base entities: a plug's entity (fed by a :class:`~.source.PlugSource`) and the hub's."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, override

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .hub_coordinator import HubCoordinator
from .profiles import Profile
from .source import PlugInfo, PlugSource

if TYPE_CHECKING:
    from . import TuyaLocalConfigEntry


def plug_device_info(
    plug: PlugInfo, via_device_id: str | None, model: str = "Wi-Fi smart plug"
) -> DeviceInfo:
    """The device of a plug; ``via_device_id``: the hub's device registry id, or None.

    ``model`` is the device model shown (:func:`plug_model` of the plug's profile).

    Everything is given to the constructor (HA 2026.11 makes ``DeviceInfo`` a dataclass).
    HA's device registry keeps the firmware version in ``sw_version``: a plug does not report
    its firmware locally, so it holds the Tuya protocol version the firmware speaks.
    """
    common = DeviceInfo(
        identifiers={(DOMAIN, plug.device_id)},
        name=plug.name,
        manufacturer="Tuya",
        model=model,
        sw_version=f"Tuya protocol {plug.protocol_version}",
        serial_number=plug.device_id,
    )
    if via_device_id is None:
        return common
    return DeviceInfo(**common, via_device_id=via_device_id)


def plug_model(profile: Profile) -> str:
    """The device model shown for a plug: ``Wi-Fi smart plug`` or ``Wi-Fi power strip (n outlets)``.

    ``+ USB`` is added when the profile has a USB switch.
    """
    usb = " + USB" if profile.usb is not None else ""
    count = len(profile.switches)
    if count == 1:
        return f"Wi-Fi smart plug{' with USB' if usb else ''}"
    return f"Wi-Fi power strip ({count} outlets{usb})"


class PlugEntity(Entity):
    """An entity of one plug; available while the plug is online and has reported.

    It listens to its own DPs only (:attr:`listen_dps`) and writes its state only when what it
    shows changed (:meth:`_shown`): a power refresh does not rewrite the switch.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    #: DP ids this entity shows; None: every DP.
    listen_dps: frozenset[str] | None = None

    def __init__(
        self, source: PlugSource, device_id: str, key: str, via_device_id: str | None
    ) -> None:
        """Attach the entity to plug ``device_id``; ``key`` makes the unique id.

        ``via_device_id`` is the device registry id of the hub the plug is reached through.
        """
        self.source = source
        self.device_id = device_id
        plug = source.plugs[device_id]
        self._attr_unique_id = f"{device_id}_{key}"
        # HA device registry: sw_version is the firmware's version; the plug's firmware is not
        # reported locally, the protocol version it speaks is what it tells about it.
        self._attr_device_info = plug_device_info(
            plug, via_device_id, plug_model(source.plug_profile(device_id))
        )
        self._written: Hashable = None

    @property
    def dps(self) -> Mapping[str, Any]:
        """Current DPS of this plug."""
        return self.source.plug_dps(self.device_id)

    @property
    @override
    def available(self) -> bool:
        return self.source.plug_online(self.device_id) and bool(self.dps)

    def _shown(self) -> Hashable:
        """What the entity's state shows; a new state is written only when this changes."""
        return self.available

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(
            self.source.async_subscribe_plug(self.device_id, self.listen_dps, self._handle_plug)
        )
        self._written = self._shown()  # Home Assistant writes the first state itself

    @callback
    def _handle_plug(self) -> None:
        """One of our DPs was reported, or the plug went online or offline."""
        shown = self._shown()
        if shown != self._written:
            self._written = shown
            self.async_write_ha_state()


class PlugDpEntity[D: EntityDescription](PlugEntity):
    """A plug entity of an entity description (type ``D``) that shows one DP, ``dp``.

    ``dp`` is the only DP it listens to.
    """

    def __init__(
        self,
        source: PlugSource,
        device_id: str,
        description: D,
        dp: str,
        via_device_id: str | None,
    ) -> None:
        """Create the entity ``description`` on ``dp`` of plug ``device_id``."""
        super().__init__(source, device_id, description.key, via_device_id)
        self.entity_description = description
        self.dp = dp
        self.listen_dps = frozenset({dp})


#: Makes the entities of one plug: ``build(source, device_id, via_device_id)``.
type PlugEntityBuilder = Callable[[PlugSource, str, str | None], Iterable[PlugEntity]]


def async_add_plug_entities(
    hass: HomeAssistant,
    entry: TuyaLocalConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: PlugEntityBuilder,
) -> None:
    """Add the entities ``build`` makes for every plug of ``entry`` (a platform's set-up).

    ``build`` is given the entry's source, the plug's device id and the device registry id of
    the hub the plug is reached through (None: reached directly; the hub's device is registered
    by the hub entry's set-up before the platforms). The entities of a plug behind a hub go to
    the plug's config subentry.
    """
    source = entry.runtime_data.source
    by_subentry: dict[str | None, list[PlugEntity]] = {}
    for device_id, plug in source.plugs.items():
        via_device_id = (
            dr.async_get_device_id_by_identifier(
                hass, (DOMAIN, plug.via_hub), config_entry_id=entry.entry_id
            )
            if plug.via_hub
            else None
        )
        by_subentry.setdefault(plug.subentry_id, []).extend(build(source, device_id, via_device_id))
    for subentry_id, group in by_subentry.items():
        if group:
            async_add_entities(group, config_subentry_id=subentry_id)


class HubEntity(CoordinatorEntity[HubCoordinator]):
    """An entity of the hub device itself."""

    _attr_has_entity_name = True
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: HubCoordinator, key: str) -> None:
        """Attach to the hub's device; ``key`` makes the unique id."""
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.hub_id}_{key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.hub_id)})

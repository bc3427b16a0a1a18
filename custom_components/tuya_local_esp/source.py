"""The one interface between the glue and a transport: :class:`PlugSource`.

Entities, discovery, the config flow and diagnostics speak only to a ``PlugSource``; the direct
coordinator (``coordinator.py``, one plug over the Tuya local protocol) and the hub coordinator
(``hub_coordinator.py``, the plugs behind an ESP32 hub) implement it. Nothing outside those two
modules needs to know which transport serves a plug.

Entities hear only about their own data: :meth:`PlugSource.async_subscribe_plug` calls a listener
when one of *its* DPs was reported or when the plug's online state changed, not on every update
of every plug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from homeassistant.core import CALLBACK_TYPE

from .profiles import Profile

#: Called without arguments; the listener reads what it needs from the source.
type PlugListener = Callable[[], None]


@dataclass(frozen=True, slots=True)
class PlugInfo:
    """What the entities need to know about one plug."""

    device_id: str
    name: str
    protocol_version: str
    host: str | None = None
    #: Identifier of the hub device in the device registry, for plugs behind a hub.
    via_hub: str | None = None
    #: The config subentry of a plug behind a hub (its entities are attached to it).
    subentry_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewPlug:
    """A plug to be added to a hub: device id, 16-character local key, IPv4 host, version."""

    device_id: str
    local_key: str
    host: str
    version: str
    name: str
    port: int


class PlugManagementError(Exception):
    """Adding or removing a plug failed.

    ``reason`` is the error key of the options form (``strings.json`` ``options.error``):
    ``cannot_connect``, ``already_on_hub``, ``hub_full`` or ``invalid_plug``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        """Carry the form error key ``reason`` and a detail for the log."""
        super().__init__(detail or reason)
        self.reason = reason


class PlugSource(Protocol):
    """DPS and online state per plug, setting DPs, and what the glue asks of a transport.

    Every method that names a ``device_id`` expects one of :attr:`plugs`.
    """

    #: The plugs this source serves, by device id.
    plugs: dict[str, PlugInfo]

    async def async_start(self) -> None:
        """Start connecting in the background (returns at once)."""
        ...

    async def async_shutdown(self) -> None:
        """Close every connection and stop."""
        ...

    def plug_online(self, device_id: str) -> bool:
        """True while the plug can be reached."""
        ...

    def plug_dps(self, device_id: str) -> Mapping[str, Any]:
        """The plug's last known DPS ``{dp_id: value}`` (empty until it reported)."""
        ...

    def known_dp_ids(self, device_id: str) -> set[str] | None:
        """DP ids the plug reported when it was added, or None when unknown."""
        ...

    def plug_profile(self, device_id: str) -> Profile:
        """The plug's profile: which DP plays which role; the entities are built from it."""
        ...

    def async_subscribe_plug(
        self, device_id: str, dp_ids: Iterable[str] | None, listener: PlugListener
    ) -> CALLBACK_TYPE:
        """Call ``listener()`` when one of the plug's ``dp_ids`` (None: any) was reported.

        Also called whenever the plug goes online or offline. A report counts whether its value
        changed or not; the listener decides whether what it shows changed.

        Returns:
            A function that removes the subscription.

        """
        ...

    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs on a plug and return the DPS it confirmed.

        Raises:
            HomeAssistantError: translated (``set_failed``), when the plug did not confirm.

        """
        ...

    async def async_follow_host(self, device_id: str, host: str) -> None:
        """The plug was heard at ``host`` (IPv4): connect to it there from now on."""
        ...

    def wake(self, device_id: str) -> None:
        """The plug was heard on the LAN: if a reconnection is waiting, try at once."""
        ...

    async def async_release(self, device_id: str) -> None:
        """Let go of the plug's connection (plugs accept one; a probe needs it)."""
        ...

    async def async_resume(self, device_id: str) -> None:
        """Take the plug's connection again after :meth:`async_release`."""
        ...

    async def async_add_plug(self, plug: NewPlug) -> None:
        """Add a plug to the hub and reload the plug list.

        Raises:
            PlugManagementError: refused, or the hub cannot be reached (or not a hub).

        """
        ...

    async def async_remove_plug(self, device_id: str) -> None:
        """Remove a plug from the hub and reload the plug list.

        Raises:
            PlugManagementError: the hub cannot be reached (or not a hub).

        """
        ...

    def diagnostics(self) -> dict[str, Any]:
        """Transport state for the diagnostics download (no secrets)."""
        ...

"""Coordinators: the push-driven link between a transport and the entities.

:class:`PlugCoordinator` is the shared base of the two :class:`~.source.PlugSource`
implementations: it holds ``data`` shaped ``{device_id: {dp_id: value}}`` and tells each entity
only about its own DPs (per-plug, per-DP listeners) instead of rewriting every entity on every
update. :class:`DirectPlugCoordinator` serves one plug over the Tuya local protocol; the hub
coordinator lives in ``hub_coordinator.py``.

Each plug has a :class:`~.profiles.Profile` (:meth:`PlugCoordinator.plug_profile`): the entities
are built from it. A direct plug's profile is stored in its entry, a hub plug's in its subentry
(detected when it was added); entries and subentries from before profiles get
:func:`fallback_profile`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .const import (
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROFILE,
    CONF_PROTOCOL_VERSION,
    CONF_UNMATCHED_DPS,
    DEFAULT_NAME,
    DOMAIN,
    HEARTBEAT_SECONDS,
    LOGGER,
    POWER_REFRESH_SECONDS,
    REQUEST_TIMEOUT,
    SAFETY_POLL_INTERVAL,
)
from .flow_probes import refreshed_meters
from .profiles import (
    BUILTIN_PROFILES,
    Profile,
    ProfileError,
    detect_profile,
    recheck_power_divisor,
)
from .profiles.model import STANDARD, build_outlets
from .source import NewPlug, PlugInfo, PlugListener, PlugManagementError
from .tuya import TuyaBusyError, TuyaDevice, TuyaError, TuyaKeyError

__all__ = [
    "DirectPlugCoordinator",
    "PlugCoordinator",
    "PlugData",
    "PlugInfo",
    "entry_profile",
    "fallback_profile",
]

type PlugData = dict[str, dict[str, Any]]

#: Connection attempts in a row that the plug refused with our key before asking the user
#: (the client classifies a refused key apart from a busy or unreachable plug).
KEY_FAILURES_FOR_REAUTH = 2
#: Heartbeat and power-refresh periods vary by this factor per plug, so that the timers of many
#: plugs that connected in the same second drift apart instead of all firing together.
INTERVAL_SPREAD = 0.1


class PlugCoordinator(DataUpdateCoordinator[PlugData]):
    """Shared base: DPS per plug, per-DP listeners, and the slow safety poll.

    Subclasses implement the rest of :class:`~.source.PlugSource`.
    """

    config_entry: ConfigEntry
    plugs: dict[str, PlugInfo]

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, name: str, interval: Any) -> None:
        """Create the coordinator of ``entry``; ``data`` starts empty for every plug."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=name,
            update_interval=interval,
            always_update=False,
        )
        self.data = {device_id: {} for device_id in self.plugs}
        #: device id -> [(DP ids or None for all, listener)]
        self._plug_listeners: dict[str, list[tuple[frozenset[str] | None, PlugListener]]] = {}
        # The entities listen per plug, not to the coordinator; this listener keeps the
        # coordinator's own poll timer running (it only runs while someone listens).
        self._unsub_poll: CALLBACK_TYPE | None = self.async_add_listener(_poll_keeper)

    def plug_dps(self, device_id: str) -> Mapping[str, Any]:
        """The plug's last known DPS."""
        return self.data.get(device_id, {})

    def known_dp_ids(self, device_id: str) -> set[str] | None:
        """DP ids the plug reported when it was added, or None when unknown."""
        return None

    def plug_profile(self, device_id: str) -> Profile:
        """The plug's profile: which DP plays which role (the entities are built from it).

        The base gives :func:`fallback_profile` of the known DP ids; a transport that knows
        a plug's profile (a direct entry; the hub, from its plug subentries) overrides this.
        """
        return fallback_profile(self.known_dp_ids(device_id))

    @callback
    def async_subscribe_plug(
        self, device_id: str, dp_ids: Iterable[str] | None, listener: PlugListener
    ) -> CALLBACK_TYPE:
        """See :meth:`.source.PlugSource.async_subscribe_plug`."""
        item = (None if dp_ids is None else frozenset(dp_ids), listener)
        listeners = self._plug_listeners.setdefault(device_id, [])
        listeners.append(item)

        @callback
        def unsubscribe() -> None:
            if item in listeners:
                listeners.remove(item)

        return unsubscribe

    @callback
    def _update_plug(self, device_id: str, dps: Mapping[str, Any]) -> None:
        """Merge reported ``dps`` into the plug's data and tell the listeners of those DPs."""
        self.data.setdefault(device_id, {}).update(dps)
        if dps:
            self._notify(device_id, dps.keys())

    @callback
    def _notify(self, device_id: str, reported: Iterable[str] | None = None) -> None:
        """Call the plug's listeners of the ``reported`` DPs (None: all, e.g. online changed)."""
        listeners = self._plug_listeners.get(device_id)
        if not listeners:
            return
        ids = None if reported is None else set(reported)
        for dp_ids, listener in list(listeners):
            if ids is None or dp_ids is None or not dp_ids.isdisjoint(ids):
                listener()

    @callback
    def _notify_all(self) -> None:
        """Every plug's online state may have changed (e.g. the hub connection)."""
        for device_id in list(self._plug_listeners):
            self._notify(device_id)

    async def async_shutdown(self) -> None:
        """Stop the poll and forget the listeners (safe to call twice)."""
        if self._unsub_poll is not None:
            self._unsub_poll()
            self._unsub_poll = None
        self._plug_listeners.clear()
        await super().async_shutdown()


def fallback_profile(known: set[str] | None) -> Profile:
    """The standard layout cut to ``known`` DP ids, for plugs without a stored profile.

    Keeps the outlets (1..6), the USB switch (7) and the meters (18 mA, 19 W x 10, 20 V x 10)
    among ``known``; outlet 1 always (the entity every plug had before profiles). No extras:
    their raw value sets are unknown without a reading. ``known`` None: outlet 1 and 18-20.
    """
    std = BUILTIN_PROFILES[STANDARD]
    ids = {"1", "18", "19", "20"} if known is None else known
    switch_dps = ["1", *(o.dp for o in std.switches[1:] if o.dp in ids)]
    meters = {
        role: meter for role, meter in std.meters.items() if role != "energy" and meter.dp in ids
    }
    return Profile(
        name=STANDARD,
        outlets=build_outlets(switch_dps, "7" if "7" in ids else None, {}),
        current=meters.get("current"),
        power=meters.get("power"),
        voltage=meters.get("voltage"),
    )


def entry_profile(entry: ConfigEntry, *, picked: bool = True) -> Profile:
    """The profile of a direct plug's entry: the options' choice, the stored one, or the fallback.

    ``picked`` False skips the options' choice: the profile detected (or the fallback of the
    known DP ids). A malformed stored profile (ProfileError) is logged and replaced by
    :func:`fallback_profile`.
    """
    places = (("options", entry.options), ("data", entry.data))
    for where, stored in places if picked else places[1:]:
        wire = stored.get(CONF_PROFILE)
        if wire is None:
            continue
        try:
            return Profile.from_wire(wire)
        except ProfileError as err:
            LOGGER.warning("Stored profile of %s (%s) is unusable: %s", entry.title, where, err)
    ids = entry.data.get(CONF_DP_IDS)
    return fallback_profile(set(ids) if ids else None)


def keep_warning_issue(
    hass: HomeAssistant,
    issue_id: str,
    translation_key: str,
    placeholders: dict[str, str] | None,
) -> None:
    """Raise the warning repair issue ``issue_id``, or delete it (``placeholders`` None).

    The issue is not fixable and not kept across restarts; ``placeholders`` fill its text.
    """
    if placeholders is None:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=translation_key,
        translation_placeholders=placeholders,
    )


def report_unknown_layout(
    hass: HomeAssistant,
    device_id: str,
    name: str,
    unmatched: Iterable[str] | None,
    translation_key: str,
) -> None:
    """Keep the plug's repair issue ``unknown_layout_<device id>`` equal to its detection.

    Raised (``translation_key``: the direct or the hub plug's text) while the plug matched no
    metering layout (``unmatched``: the DP ids left over) and none was picked (the caller then
    passes None); deleted otherwise.
    """
    keep_warning_issue(
        hass,
        f"unknown_layout_{device_id}",
        translation_key,
        {"name": name, "device_id": device_id, "dps": ", ".join(str(dp) for dp in unmatched)}
        if unmatched
        else None,
    )


@callback
def _poll_keeper() -> None:
    """Nothing to do: entities are told per DP, see :meth:`PlugCoordinator._notify`."""


class DirectPlugCoordinator(PlugCoordinator):
    """One plug reached directly over the Tuya local protocol (TCP 6668).

    STATUS pushes and answers update the data at once and reach only the entities of the DPs in
    them; a slow safety poll reads every DP when no push came for a whole poll interval. The
    device client reconnects by itself; the entities go unavailable while it is disconnected and
    come back with it. A refused local key leads to a reauth flow after
    ``KEY_FAILURES_FOR_REAUTH`` attempts; another client holding the plug raises a repair issue.
    """

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Create the device client for ``entry`` (nothing is opened yet)."""
        data = entry.data
        self.device_id: str = data[CONF_DEVICE_ID]
        spread = random.uniform(1 - INTERVAL_SPREAD, 1 + INTERVAL_SPREAD)
        self.device = TuyaDevice(
            data[CONF_HOST],
            self.device_id,
            data[CONF_LOCAL_KEY],
            version=data[CONF_PROTOCOL_VERSION],
            version_hint=data.get(CONF_DETECTED_VERSION),
            port=data[CONF_PORT],
            timeout=REQUEST_TIMEOUT,
            heartbeat_interval=HEARTBEAT_SECONDS * spread,
            refresh_interval=POWER_REFRESH_SECONDS * spread,
        )
        #: What the entities are built from; the power divisor may be corrected while running.
        self.profile = entry_profile(entry)
        #: The user picked the profile in the options: never corrected automatically.
        self._profile_pinned = CONF_PROFILE in entry.options
        #: Added without a profile and without known DPs (a devices.json entry without mapping):
        #: detect the profile at the first connection, then reload with its entities.
        self._detect_pending = CONF_PROFILE not in data and not data.get(CONF_DP_IDS)
        self.device.refresh_dps = self.profile.refresh_dps()
        self.plugs = {
            self.device_id: PlugInfo(
                self.device_id,
                data.get(CONF_NAME) or DEFAULT_NAME,
                self.device.version,
                data[CONF_HOST],
            )
        }
        super().__init__(hass, entry, f"{DOMAIN} {self.device_id}", SAFETY_POLL_INTERVAL)
        self._last_push: float | None = None
        self._key_check_requested = False
        self._unsubs = [
            self.device.subscribe(self._on_dps),
            self.device.subscribe_connection(self._on_connection),
            self.device.subscribe_failure(self._on_failure),
        ]

    @property
    def _busy_issue_id(self) -> str:
        return f"plug_busy_{self.device_id}"

    @override
    def plug_profile(self, device_id: str) -> Profile:
        return self.profile

    async def async_start(self) -> None:
        """Start connecting in the background; never blocks Home Assistant's start-up."""
        unmatched = self.config_entry.data.get(CONF_UNMATCHED_DPS)
        report_unknown_layout(
            self.hass,
            self.device_id,
            self.plugs[self.device_id].name,
            None if self._profile_pinned else unmatched,
            "unknown_layout",
        )
        await self.device.start()

    async def async_shutdown(self) -> None:
        """Close the connection and stop the coordinator."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        await self.device.close()
        ir.async_delete_issue(self.hass, DOMAIN, self._busy_issue_id)
        await super().async_shutdown()

    def plug_online(self, device_id: str) -> bool:
        """True while the plug is connected and accepted our key."""
        return self.device.connected

    @override
    def known_dp_ids(self, device_id: str) -> set[str] | None:
        ids = self.config_entry.data.get(CONF_DP_IDS)
        return set(ids) if ids else None

    async def async_follow_host(self, device_id: str, host: str) -> None:
        """Connect to ``host`` from now on (reconnects there at once)."""
        self.device.set_host(host)

    def wake(self, device_id: str) -> None:
        """The plug was heard on the LAN: cut a waiting reconnection short."""
        if not self.device.connected:
            self.device.wake()

    async def async_release(self, device_id: str) -> None:
        """Close the connection for now; :meth:`async_resume` opens it again."""
        await self.device.close()

    async def async_resume(self, device_id: str) -> None:
        """Reconnect in the background after :meth:`async_release`."""
        await self.device.start()

    async def async_add_plug(self, plug: NewPlug) -> None:
        """A directly connected plug has no plugs to manage.

        Raises:
            PlugManagementError: always.

        """
        raise PlugManagementError("cannot_connect", "not a hub")

    async def async_remove_plug(self, device_id: str) -> None:
        """A directly connected plug has no plugs to manage.

        Raises:
            PlugManagementError: always.

        """
        raise PlugManagementError("cannot_connect", "not a hub")

    def diagnostics(self) -> dict[str, Any]:
        """The connection's state: version, counters, last error (no key)."""
        device = self.device
        return {
            "connection": {
                "connected": device.connected,
                "protocol_version": device.version,
                "connect_count": device.connect_count,
                "bad_frames": device.bad_frames,
                "key_failures": device.key_failures,
                "busy": device.busy,
                "last_error": str(device.last_error) if device.last_error else None,
            }
        }

    @callback
    def _on_dps(self, dps: dict[str, Any]) -> None:
        self._last_push = self.hass.loop.time()
        self._update_plug(self.device_id, dps)

    @callback
    @override
    def _update_plug(self, device_id: str, dps: Mapping[str, Any]) -> None:
        """Pushes and the safety poll alike: re-check the power divisor before telling."""
        self._recheck_power_divisor(dps)
        super()._update_plug(device_id, dps)

    @callback
    def _recheck_power_divisor(self, dps: Mapping[str, Any]) -> None:
        """Correct the power divisor from the power factor (``profiles.detect``), store it."""
        power = self.profile.power
        if self._profile_pinned or power is None or power.dp not in dps:
            return
        latest = {**self.data.get(self.device_id, {}), **dps}
        corrected = recheck_power_divisor(self.profile, latest)
        if corrected is None or corrected.power is None:
            return
        LOGGER.info(
            "Plug %s: power divisor %s instead of %s (from the power factor)",
            self.device_id,
            corrected.power.divisor,
            power.divisor,
        )
        self.profile = corrected
        entry = self.config_entry
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_PROFILE: corrected.to_wire()}
        )

    @callback
    def _on_connection(self, connected: bool) -> None:
        if connected:
            LOGGER.info("Plug %s is connected (protocol %s)", self.device_id, self.device.version)
            self._key_check_requested = False
            ir.async_delete_issue(self.hass, DOMAIN, self._busy_issue_id)
            entry = self.config_entry
            if self.device.version != entry.data.get(CONF_DETECTED_VERSION):
                # remember what the auto probe found: it is tried first next time
                self.hass.config_entries.async_update_entry(
                    entry, data={**entry.data, CONF_DETECTED_VERSION: self.device.version}
                )
            self.data[self.device_id].update(self.device.dps)
            if self._detect_pending:
                self._detect_pending = False
                entry.async_create_background_task(
                    self.hass, self._async_detect(), f"{DOMAIN} detect {self.device_id}"
                )
        else:
            LOGGER.info("Plug %s is unreachable; reconnecting", self.device_id)
        self._notify(self.device_id)

    async def _async_detect(self) -> None:
        """Detect the profile (status + UPDATEDPS pushes), store it, reload if it differs."""
        status = dict(self.device.dps)
        refreshed = await refreshed_meters(self.device)
        detection = detect_profile(status, refreshed)
        if detection.profile is None:
            LOGGER.warning("Plug %s reported no switch DP; keeping outlet 1", self.device_id)
            return
        entry = self.config_entry
        self.hass.config_entries.async_update_entry(
            entry,
            data={
                **entry.data,
                CONF_PROFILE: detection.profile.to_wire(),
                CONF_DP_IDS: list(detection.seen),
                CONF_UNMATCHED_DPS: [] if detection.matched else list(detection.seen),
            },
        )
        LOGGER.info("Plug %s: detected the %s layout", self.device_id, detection.profile.name)
        if detection.profile != self.profile or not detection.matched:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)

    @callback
    def _on_failure(self, err: TuyaError) -> None:
        """A background connection attempt failed (``err`` is classified by the client)."""
        if isinstance(err, TuyaBusyError):
            keep_warning_issue(
                self.hass,
                self._busy_issue_id,
                "plug_busy",
                {
                    "name": self.plugs[self.device_id].name,
                    "device_id": self.device_id,
                    "host": self.device.host,
                },
            )
        elif (
            isinstance(err, TuyaKeyError)
            and self.device.key_failures >= KEY_FAILURES_FOR_REAUTH
            and not self._key_check_requested
        ):
            # the plug was paired again (new local key): the refresh raises ConfigEntryAuthFailed
            self._key_check_requested = True
            self.config_entry.async_create_background_task(
                self.hass, self.async_refresh(), f"{DOMAIN} key check {self.device_id}"
            )

    @override
    async def _async_update_data(self) -> PlugData:
        if not self.device.connected:
            if self.device.key_failures >= KEY_FAILURES_FOR_REAUTH:
                raise ConfigEntryAuthFailed(
                    translation_domain=DOMAIN,
                    translation_key="key_refused",
                    translation_placeholders={"device_id": self.device_id},
                )
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="plug_unreachable",
                translation_placeholders={"device_id": self.device_id},
            )
        interval = self.update_interval
        if (
            self._last_push is not None
            and interval is not None
            and self.hass.loop.time() - self._last_push < interval.total_seconds()
        ):
            return self.data  # the plug spoke within the poll interval: nothing was missed
        try:
            dps = await self.device.status()
        except TuyaError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="plug_unreachable",
                translation_placeholders={"device_id": self.device_id},
            ) from err
        self._update_plug(self.device_id, dps)
        return self.data

    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs and return those the plug confirmed.

        Raises:
            HomeAssistantError: translated ``set_failed``, when the plug did not confirm.

        """
        try:
            confirmed = await self.device.set_dps(dps)
        except TuyaError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": str(err)},
            ) from err
        # The device's DPS as last read (pushes, answers; in read order): a push read behind
        # the confirmation already reached this coordinator and is newer than ``confirmed``.
        self._on_dps({k: self.device.dps.get(k, v) for k, v in confirmed.items()})
        return confirmed

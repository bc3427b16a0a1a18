"""Coordinator of an ESP32 hub entry: the plugs behind the hub, over our hub channel.

State pushes from the hub (``docs/hub-protocol.md``) update the data at once; health and the
inventory are polled every minute. A plug is online while the hub is connected and reports the
plug online; everything goes unavailable while the hub is unreachable (the client drops a hub
silent for 10 s) and comes back by itself. A hub that refuses the secret starts a reauth flow
at the first refused attempt. A plug the hub cannot use because of its local key or another
client (the plug's ``fault``, hub-protocol §7.1) gets a repair issue while the fault lasts.

Each plug's profile (``profiles``) is stored in its config subentry, as a direct plug's is in its
entry: :meth:`HubCoordinator.async_add_plug_detected` gives the hub a new plug with every
candidate metering DP to refresh, detects the profile (``profiles.detect``) from the DPS the hub
reports for it, and gives the hub the profile's ``refresh`` and ``dps`` lists with the
``profile`` request (hub-protocol §7.3, firmware 0.2.1; an older firmware gets the plug again
with ``remove`` + ``add``). A plug that does not answer while it is added, or whose subentry
dates from before profiles, is detected when it first does (:data:`CONF_DETECT_PENDING`), with
the candidate lists given to the hub first. A layout picked by the user
(:data:`CONF_PICKED_PROFILE`, the plug's reconfigure step) wins and is never changed
automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .const import (
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_HUB_ID,
    CONF_PROFILE,
    CONF_PROTOCOL_VERSION,
    CONF_REMOVING,
    CONF_SECRET,
    CONF_UNMATCHED_DPS,
    DEFAULT_HUB_NAME,
    DOMAIN,
    HUB_POLL_INTERVAL,
    LOGGER,
    SUBENTRY_PLUG,
)
from .coordinator import PlugCoordinator, PlugData, fallback_profile, report_unknown_layout
from .discovery import async_end_discovery_flows
from .hub import (
    HubAuthError,
    HubClient,
    HubCommandError,
    HubError,
    HubHealth,
    Inventory,
    StateUpdate,
)
from .profiles import (
    CANDIDATE_METERING_DPS,
    Detection,
    Profile,
    ProfileError,
    detect_profile,
    recheck_power_divisor,
)
from .source import NewPlug, PlugInfo, PlugManagementError

#: The hub's device: the board's maker and what it is (HA device registry ``manufacturer``,
#: ``model``); its firmware version goes to ``sw_version``.
HUB_MANUFACTURER = "Espressif"
HUB_MODEL = "ESP32 hub"
#: A boot time estimate this close to the last one is the same boot (poll latency, rounding).
BOOT_TIME_TOLERANCE = timedelta(seconds=30)
#: Plug faults reported by the hub (hub-protocol §7.1) that the user can act on -> translation
#: key of their repair issue ("unreachable" is shown as the plug being unavailable).
FAULT_ISSUES = {"key": "hub_plug_key", "busy": "hub_plug_busy"}

#: Subentry data: the layout the user picked in the plug's reconfigure step (wire form); it
#: wins over the detected ``profile`` and is never corrected automatically.
CONF_PICKED_PROFILE: Final = "picked_profile"
#: Subentry data: True while the plug's profile is to be detected: it did not answer while it
#: was added (the hub refreshes every candidate metering DP meanwhile), or its subentry dates
#: from before profiles (set by the entry's migration to 1.3, ``__init__.async_migrate_entry``;
#: the hub keeps the lists it had).
CONF_DETECT_PENDING: Final = "detect_pending"
#: Seconds adding a plug waits for the hub to report it online with its status.
DETECT_ONLINE_S: Final = 10.0
#: The firmware sends its first UPDATEDPS this long after the plug is online
#: (``esp32/plug.py`` ``_start``: ``_REFRESH_AT`` now + 2000 ms).
HUB_FIRST_REFRESH_S: Final = 2.0
#: Seconds to wait for the pushes the first UPDATEDPS brings (the hub pushes only DPs that
#: changed, hub-protocol §7.2, so an answer that changes nothing brings none) ...
DETECT_WAIT_S: Final = 2.0
#: ... ending early once the plug has been quiet this long after such a push.
DETECT_QUIET_S: Final = 0.5


def plug_subentry(device_id: str, name: str, version: str) -> ConfigSubentryData:
    """The config subentry of a plug the hub has already (no local key: the hub keeps it).

    Its profile is detected when the hub reports the plug (:data:`CONF_DETECT_PENDING`).
    """
    return ConfigSubentryData(
        data={CONF_DEVICE_ID: device_id, CONF_PROTOCOL_VERSION: version, CONF_DETECT_PENDING: True},
        subentry_type=SUBENTRY_PLUG,
        title=name,
        unique_id=device_id,
    )


def hub_profile_lists(profile: Profile | None) -> tuple[list[int], list[str] | None]:
    """The ``refresh`` and ``dps`` lists of ``add`` (hub-protocol §7.3) for a plug's profile.

    ``refresh``: the profile's meter DPs (ints, ascending; ``[]`` for a switch-only plug: no
    UPDATEDPS). ``dps``: every DP id the profile uses (strings, numeric order; at most 23 for
    the largest built-in layout, under the hub's 32). ``profile`` None (being detected):
    every candidate metering DP (``profiles.CANDIDATE_METERING_DPS``) and the hub's default
    ``dps``.
    """
    if profile is None:
        return list(CANDIDATE_METERING_DPS), None
    return list(profile.refresh_dps()), sorted(profile.dp_ids(), key=int)


def plug_subentry_of(entry: ConfigEntry, device_id: str) -> ConfigSubentry | None:
    """The plug subentry of ``device_id`` in the hub entry (None: none, e.g. being added)."""
    return next(
        (
            sub
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
            if sub.data.get(CONF_DEVICE_ID) == device_id
        ),
        None,
    )


def subentry_profile(data: Mapping[str, Any], title: str = "") -> Profile | None:
    """The profile stored in a plug subentry's ``data``: the picked one, else the detected one.

    None when neither is stored (subentries from before profiles, a plug still being detected)
    or usable (a malformed profile is logged, never raised).
    """
    for key in (CONF_PICKED_PROFILE, CONF_PROFILE):
        wire = data.get(key)
        if wire is None:
            continue
        try:
            return Profile.from_wire(wire)
        except ProfileError as err:
            LOGGER.warning("Stored profile of %s (%s) is unusable: %s", title, key, err)
    return None


def never_detected(data: Mapping[str, Any]) -> bool:
    """True for a plug subentry's ``data`` that has no profile state at all.

    As integration versions before 0.3.0 stored them: device id and protocol version only; no
    detection (``dp_ids``, stored by every detection, also one that found no profile), no
    picked layout, no pending detection.
    """
    return not any(
        key in data for key in (CONF_DP_IDS, CONF_PROFILE, CONF_PICKED_PROFILE, CONF_DETECT_PENDING)
    )


def detection_data(detection: Detection) -> dict[str, Any]:
    """Subentry data of a detection: profile (wire form), DP ids seen, unmatched DPs."""
    data: dict[str, Any] = {
        CONF_DP_IDS: list(detection.seen),
        CONF_UNMATCHED_DPS: [] if detection.matched else list(detection.seen),
    }
    if detection.profile is not None:
        data[CONF_PROFILE] = detection.profile.to_wire()
    return data


def _complete(detection: Detection) -> bool:
    """The status alone settled the profile: a verified layout with all four meters."""
    profile = detection.profile
    return (
        profile is not None
        and detection.matched
        and detection.voltage_verified
        and len(profile.meters) == 4
    )


def inventory_subentries(inventory: Inventory) -> list[ConfigSubentryData]:
    """One subentry per plug of the hub's inventory, by device id."""
    return [
        plug_subentry(p.device_id, p.name, p.version)
        for p in sorted(inventory.plugs.values(), key=lambda p: p.device_id)
    ]


class HubCoordinator(PlugCoordinator):
    """All plugs behind one hub; a :class:`~.source.PlugSource`."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Create the hub client for ``entry`` (nothing is opened yet)."""
        data = entry.data
        self.hub_id: str = data[CONF_HUB_ID]
        self.client = HubClient(data[CONF_HOST], data[CONF_PORT], data[CONF_SECRET])
        self.plugs = {
            sub.data[CONF_DEVICE_ID]: PlugInfo(
                sub.data[CONF_DEVICE_ID],
                sub.title,
                sub.data[CONF_PROTOCOL_VERSION],
                via_hub=self.hub_id,
                subentry_id=sub.subentry_id,
            )
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
        }
        #: Profiles stored in the plug subentries (plugs without one: :func:`fallback_profile`).
        self.profiles: dict[str, Profile] = {
            sub.data[CONF_DEVICE_ID]: profile
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
            if (profile := subentry_profile(sub.data, sub.title)) is not None
        }
        subentries = [
            sub
            for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
            if CONF_PICKED_PROFILE not in sub.data  # a picked layout is never changed
        ]
        #: Plugs whose power divisor is re-checked (:meth:`_recheck_power_divisor`): a detected
        #: profile is stored. Any subentry change reloads the entry, which derives this again.
        self._recheck: set[str] = {
            sub.data[CONF_DEVICE_ID] for sub in subentries if CONF_PROFILE in sub.data
        }
        #: Plugs detected again once a candidate meter DP shows up (:meth:`_redetect_unmatched`):
        #: they matched no layout.
        self._redetect: set[str] = {
            sub.data[CONF_DEVICE_ID] for sub in subentries if sub.data.get(CONF_UNMATCHED_DPS)
        }
        self._detecting: set[str] = set()
        self.health: HubHealth | None = None
        #: When the hub started (UTC, whole seconds), from its uptime; None before its health.
        self.boot_time: datetime | None = None
        #: The uptime (s) the hub last reported: one that goes down means a restart.
        self._last_uptime_s: int | None = None
        self._online: dict[str, bool] = {}
        #: Each faulty plug's fault as the hub last reported it (fine plugs are absent).
        self.faults: dict[str, str] = {}
        #: A reauth check was started for the hub's refused secret (until it connects again).
        self._auth_check_requested = False
        #: Plugs being added or re-added by a subentry flow: the flow creates or keeps their
        #: subentry itself (until the entry reloads).
        self._adding: set[str] = set()
        #: Firmware version last written to the hub's device.
        self._device_firmware: str | None = None
        super().__init__(hass, entry, f"{DOMAIN} hub {self.hub_id}", HUB_POLL_INTERVAL)
        self._unsubs = [
            self.client.subscribe(self._on_state),
            self.client.subscribe_connection(self._on_connection),
            self.client.subscribe_failure(self._on_failure),
        ]

    @property
    def hub_connected(self) -> bool:
        """True while the authenticated channel to the hub is up."""
        return self.client.connected

    @property
    def firmware(self) -> str | None:
        """Firmware version of the hub, once known."""
        inventory = self.client.inventory
        return inventory.firmware if inventory else None

    def register_hub_device(self) -> None:
        """Create the hub's device so that the plugs can name it as their ``via`` device."""
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.config_entry.entry_id,
            identifiers={(DOMAIN, self.hub_id)},
            name=self.config_entry.title or DEFAULT_HUB_NAME,
            manufacturer=HUB_MANUFACTURER,
            model=HUB_MODEL,
            serial_number=self.hub_id,
            sw_version=self.firmware,
        )

    @callback
    def _update_hub_firmware(self) -> None:
        """Write the firmware version the hub reported to its device (None before)."""
        firmware = self.firmware
        if firmware is None or firmware == self._device_firmware:
            return
        self._device_firmware = firmware
        registry = dr.async_get(self.hass)
        device = registry.async_get_device_by_identifier(
            (DOMAIN, self.hub_id), self.config_entry.entry_id
        )
        if device is not None:
            registry.async_update_device(device.id, sw_version=firmware)

    @callback
    def remove_stale_plug_devices(self) -> None:
        """Remove the devices of plugs that were removed from the hub."""
        registry = dr.async_get(self.hass)
        keep = {*self.plugs, self.hub_id}
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            if not any(i[0] == DOMAIN and i[1] in keep for i in device.identifiers):
                registry.async_remove_device(device.id)

    async def async_start(self) -> None:
        """Connect in the background; never blocks Home Assistant's start-up.

        Nothing is started while Home Assistant stops: a reload that lands after its stop event
        (e.g. a subentry change just before) would leave a connection nobody closes.
        """
        if self.hass.is_stopping:
            LOGGER.debug("Hub %s: Home Assistant is stopping; not connecting", self.hub_id)
            return
        self._start_profile_watch()
        await self.client.start()

    @override
    def plug_profile(self, device_id: str) -> Profile:
        """The profile of the plug's subentry, or :func:`fallback_profile` (none stored)."""
        return self.profiles.get(device_id) or fallback_profile(None)

    def _start_profile_watch(self) -> None:
        """Raise the unknown-layout repair issues; detect pending plugs once they answer."""
        for sub in self.config_entry.get_subentries_of_type(SUBENTRY_PLUG):
            device_id = sub.data[CONF_DEVICE_ID]
            report_unknown_layout(
                self.hass,
                device_id,
                sub.title,
                None if CONF_PICKED_PROFILE in sub.data else sub.data.get(CONF_UNMATCHED_DPS),
                "unknown_layout_hub_plug",
            )
            if sub.data.get(CONF_DETECT_PENDING):

                @callback
                def _check(device_id: str = device_id) -> None:
                    if self.plug_online(device_id) and self.plug_dps(device_id):
                        self._start_pending_detection(device_id)

                # (the coordinator forgets its plug listeners when it shuts down)
                self.async_subscribe_plug(device_id, None, _check)

    @callback
    def _start_pending_detection(self, device_id: str) -> None:
        if device_id in self._detecting:
            return
        self._detecting.add(device_id)
        self.config_entry.async_create_background_task(
            self.hass, self._async_detect_pending(device_id), f"{DOMAIN} detect {device_id}"
        )

    async def _async_detect_pending(self, device_id: str) -> None:
        """Detect a plug marked :data:`CONF_DETECT_PENDING`; store the profile (the entry reloads).

        Runs once the hub reports the plug online with DPS: a plug added while it did not
        answer, or one whose subentry dates from before profiles (migration to 1.3). The hub
        is first given every candidate metering DP to refresh (:func:`hub_profile_lists`,
        hub-protocol §7.3 ``profile``), so that a plug reporting its meters only when asked
        shows them, and after the detection the lists of the plug's profile (a layout the
        user picked stays in the subentry and wins; a plug that matched no layout keeps the
        candidates). A firmware without the ``profile`` request (0.2.0) keeps the lists it
        has (the candidates for the former, ``[18,19,20]`` for the latter): changing them
        there needs the plug's local key (its reconfigure step).
        """
        # a status that settles the profile needs no candidate refresh; False: the hub's
        # firmware has no `profile` request
        takes_lists = _complete(detect_profile(dict(self.plug_dps(device_id)))) or (
            await self._async_set_hub_lists(device_id, None)
        )
        detection = await self._async_detect(device_id, DETECT_ONLINE_S)
        entry = self.config_entry
        sub = plug_subentry_of(self.config_entry, device_id)
        if detection is None or sub is None:
            self._detecting.discard(device_id)  # went away again: the next answer retries
            return
        LOGGER.info(
            "Plug %s behind hub %s: detected the %s layout",
            device_id,
            self.hub_id,
            detection.profile.name if detection.profile else "no",
        )
        data = {k: v for k, v in sub.data.items() if k != CONF_DETECT_PENDING}
        picked = subentry_profile({CONF_PICKED_PROFILE: data.get(CONF_PICKED_PROFILE)}, sub.title)
        use = picked or (detection.profile if detection.matched else None)
        if takes_lists and use is not None:
            await self._async_set_hub_lists(device_id, use)
        self.hass.config_entries.async_update_subentry(
            entry, sub, data={**data, **detection_data(detection)}
        )

    @callback
    @override
    def _update_plug(self, device_id: str, dps: Mapping[str, Any]) -> None:
        """Every report: re-check the plug's profile before telling the listeners."""
        self._recheck_power_divisor(device_id, dps)
        self._redetect_unmatched(device_id, dps)
        super()._update_plug(device_id, dps)

    @callback
    def _redetect_unmatched(self, device_id: str, dps: Mapping[str, Any]) -> None:
        """Detect again a plug that matched no layout once a candidate meter DP shows up.

        E.g. its meters answered only a later UPDATEDPS (the first one was lost). A new
        detection that matches a layout is stored in the subentry (the entry reloads; the hub
        keeps the candidate lists, which hold the profile's meters). Never for a picked
        layout.
        """
        if device_id not in self._redetect:
            return
        profile = self.profiles.get(device_id)
        known = profile.dp_ids() if profile is not None else frozenset()
        new = {
            dp
            for dp, value in dps.items()
            if dp.isdigit()
            and int(dp) in CANDIDATE_METERING_DPS
            and isinstance(value, int)
            and dp not in known
        }
        if not new:
            return
        detection = detect_profile({**self.plug_dps(device_id), **dps})
        if not detection.matched or detection.profile is None:
            return
        sub = plug_subentry_of(self.config_entry, device_id)
        # (a subentry flow may have changed it since: the entry's reload is on its way)
        if sub is None or not sub.data.get(CONF_UNMATCHED_DPS) or CONF_PICKED_PROFILE in sub.data:
            return
        self._redetect.discard(device_id)
        LOGGER.info(
            "Plug %s behind hub %s reported meters: detected the %s layout",
            device_id,
            self.hub_id,
            detection.profile.name,
        )
        self.profiles[device_id] = detection.profile
        self.hass.config_entries.async_update_subentry(
            self.config_entry, sub, data={**sub.data, **detection_data(detection)}
        )

    @callback
    def _recheck_power_divisor(self, device_id: str, dps: Mapping[str, Any]) -> None:
        """Correct a detected power divisor from the power factor (``profiles.detect``).

        As on the direct path: never a picked layout. The corrected profile is stored in the
        plug's subentry (the entry reloads).
        """
        profile = self.profiles.get(device_id)
        if (
            device_id not in self._recheck
            or profile is None
            or profile.power is None
            or profile.power.dp not in dps
        ):
            return
        corrected = recheck_power_divisor(profile, {**self.plug_dps(device_id), **dps})
        if corrected is None or corrected.power is None:
            return
        sub = plug_subentry_of(self.config_entry, device_id)
        # (a subentry flow may have changed it since: the entry's reload is on its way)
        if sub is None or CONF_PICKED_PROFILE in sub.data or CONF_PROFILE not in sub.data:
            return
        LOGGER.info(
            "Plug %s behind hub %s: power divisor %s instead of %s (from the power factor)",
            device_id,
            self.hub_id,
            corrected.power.divisor,
            profile.power.divisor,
        )
        self.profiles[device_id] = corrected
        self.hass.config_entries.async_update_subentry(
            self.config_entry, sub, data={**sub.data, CONF_PROFILE: corrected.to_wire()}
        )

    async def _async_detect(self, device_id: str, online_within: float) -> Detection | None:
        """Detect the profile from the DPS the hub reports for the plug (``profiles.detect``).

        Waits up to ``online_within`` s for the plug to be online with its status; then, unless
        the status settled the profile (a verified layout with all four meters), for the pushes
        of the hub's first UPDATEDPS of the candidate metering DPs (:data:`HUB_FIRST_REFRESH_S`
        after online, then up to :data:`DETECT_WAIT_S`). None when the plug did not answer.
        """
        loop = self.hass.loop
        reported = asyncio.Event()
        last_report = [loop.time()]

        @callback
        def _reported() -> None:
            last_report[0] = loop.time()
            reported.set()

        async def _wait(until: float) -> bool:
            reported.clear()
            try:
                async with asyncio.timeout(max(0.0, until - loop.time())):
                    await reported.wait()
            except TimeoutError:
                return False
            return True

        unsubscribe = self.async_subscribe_plug(device_id, None, _reported)
        try:
            deadline = loop.time() + online_within
            while not (self.plug_online(device_id) and self.plug_dps(device_id)):
                if self.faults.get(device_id) == "key" or not await _wait(deadline):
                    return None
            status = dict(self.plug_dps(device_id))
            early = detect_profile(status)
            if _complete(early):
                return early
            refresh_at = loop.time() + HUB_FIRST_REFRESH_S
            end = refresh_at + DETECT_WAIT_S
            while loop.time() < end:
                if await _wait(end) and last_report[0] >= refresh_at:
                    end = min(end, last_report[0] + DETECT_QUIET_S)
            return detect_profile(status, dict(self.plug_dps(device_id)))
        finally:
            unsubscribe()

    async def async_shutdown(self) -> None:
        """Close the channel and stop the coordinator."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        await self.client.close()
        for device_id in list(self.faults):
            self._set_fault(device_id, None)
        await super().async_shutdown()

    def plug_online(self, device_id: str) -> bool:
        """True while the hub is connected and reports the plug online."""
        return self.client.connected and self._online.get(device_id, False)

    async def async_follow_host(self, device_id: str, host: str) -> None:
        """The plug was heard at ``host``: tell the hub (``host`` request, hub-protocol §7.3).

        The hub stores the address and reconnects there at once. Nothing is sent when the hub
        has that address already or is not connected (discovery asks again when the plug's
        announcement changes, and after a restart); a refusal is logged and changes nothing.
        """
        inventory = self.client.inventory
        plug = inventory.plugs.get(device_id) if inventory is not None else None
        if plug is None or plug.host == host or not self.client.connected:
            return
        LOGGER.info("Plug %s behind hub %s moved to %s", device_id, self.hub_id, host)
        try:
            await self.client.set_plug_host(device_id, host)
        except HubError as err:
            LOGGER.warning(
                "Hub %s did not take the new address of plug %s: %s", self.hub_id, device_id, err
            )

    def wake(self, device_id: str) -> None:
        """The hub reconnects to its plugs itself; nothing to do here."""

    async def async_release(self, device_id: str) -> None:
        """The hub keeps its plugs' connections; nothing to release."""

    async def async_resume(self, device_id: str) -> None:
        """See :meth:`async_release`."""

    async def async_add_plug(self, plug: NewPlug, profile: Profile | None = None) -> None:
        """Give the hub a plug (stored on its flash), then read the inventory again.

        ``profile`` gives the hub the plug's ``refresh`` and ``dps`` lists
        (:func:`hub_profile_lists`); None: every candidate metering DP, for detection.
        The caller (the subentry flow) creates the plug's subentry; until the entry reloads,
        the inventory does not create one for it.

        Raises:
            PlugManagementError: the hub refused (``already_on_hub``, ``hub_full``,
                ``invalid_plug``) or is not connected (``cannot_connect``).

        """
        self._adding.add(plug.device_id)
        refresh, dps = hub_profile_lists(profile)
        await self._manage(
            self.client.add_plug(
                plug.device_id,
                plug.local_key,
                plug.host,
                version=plug.version,
                name=plug.name,
                port=plug.port,
                refresh=refresh,
                dps=dps,
            )
        )

    async def async_add_plug_detected(self, plug: NewPlug) -> dict[str, Any]:
        """Give the hub a new plug, detect its profile, give the hub the profile's lists.

        The lists go with the ``profile`` request (hub-protocol §7.3); a firmware without it
        (``unknown_type``, before 0.2.1) refuses ``add`` for a plug it has (``exists``, §6):
        there the plug is removed and added again. A plug that does not
        answer within :data:`DETECT_ONLINE_S` stays on the hub with the candidate lists and is
        detected when it first answers.

        A plug that matched no metering layout stays with the candidate lists too, and is
        detected again when a candidate meter DP shows up (:meth:`_redetect_unmatched`).

        Returns:
            What to store in the plug's subentry besides its device id and version: the
            profile, DP ids seen and unmatched DPs (:func:`detection_data`), or
            ``{CONF_DETECT_PENDING: True}``.

        Raises:
            PlugManagementError: as :meth:`async_add_plug`; ``readd_failed`` when the hub
                refused the plug with its profile (it no longer has the plug);
                ``plug_key_refused`` when the hub reported the plug's ``fault`` "key" before
                it answered (the plug is removed from the hub again).

        """
        await self.async_add_plug(plug)
        detection = await self._async_detect(plug.device_id, DETECT_ONLINE_S)
        if detection is None and self.faults.get(plug.device_id) == "key":
            # the plug's frames do not decrypt with this key (hub-protocol §7.1): not kept
            LOGGER.info("Hub %s: plug %s refused the local key", self.hub_id, plug.device_id)
            with contextlib.suppress(PlugManagementError):
                await self.async_remove_plug(plug.device_id)
            raise PlugManagementError("plug_key_refused", "the plug refused the local key")
        if detection is None:
            LOGGER.info("Plug %s did not answer through hub %s yet", plug.device_id, self.hub_id)
            return {CONF_DETECT_PENDING: True}
        LOGGER.info(
            "Plug %s behind hub %s: detected the %s layout%s",
            plug.device_id,
            self.hub_id,
            detection.profile.name if detection.profile else "no",
            f" ({'; '.join(detection.notes)})" if detection.notes else "",
        )
        if (
            detection.profile is not None
            and detection.matched
            and not await self._async_set_hub_lists(plug.device_id, detection.profile)
        ):
            await self.async_remove_plug(plug.device_id)
            try:
                await self.async_add_plug(plug, detection.profile)
            except PlugManagementError as err:
                raise PlugManagementError("readd_failed", str(err)) from err
        # unmatched: the hub keeps asking for every candidate meter (a lost UPDATEDPS, a plug
        # that reports its meters late); when one shows up the plug is detected again
        return detection_data(detection)

    async def async_set_plug_profile(self, device_id: str, profile: Profile | None) -> bool:
        """Give the hub the plug's lists for ``profile`` without its local key.

        The ``profile`` request (hub-protocol §7.3) with :func:`hub_profile_lists` (None: the
        candidate lists of a plug being detected); the hub uses them at once, without
        reconnecting to the plug. Returns False when the hub's firmware does not know the
        request (``unknown_type``, firmware before 0.2.1): nothing changed, and the caller
        falls back to re-adding the plug with its local key.

        Raises:
            PlugManagementError: as :meth:`async_add_plug` (``cannot_connect`` for an unknown
                plug too).

        """
        refresh, dps = hub_profile_lists(profile)
        try:
            # (the hub's `plug` push, before its result, updates the inventory)
            await self._manage(
                self.client.set_plug_profile(device_id, refresh, dps), refresh_inventory=False
            )
        except PlugManagementError as err:
            cause = err.__cause__
            if isinstance(cause, HubCommandError) and cause.code == "unknown_type":
                LOGGER.debug(
                    "Hub %s (firmware %s) has no profile request", self.hub_id, self.firmware
                )
                return False
            raise
        return True

    async def _async_set_hub_lists(self, device_id: str, profile: Profile | None) -> bool:
        """:meth:`async_set_plug_profile`, a failure logged (the same lists change nothing).

        Returns False when the hub does not know the request (the caller stops asking).
        """
        try:
            return await self.async_set_plug_profile(device_id, profile)
        except PlugManagementError as err:
            # (the hub goes on with the lists it has: those of a plug being detected ask for
            # every candidate meter, the profile's among them). Not connected: the entry is
            # reloading (another plug's detection) or the hub went away
            LOGGER.log(
                logging.WARNING if self.client.connected else logging.DEBUG,
                "Hub %s did not take the lists of plug %s: %s",
                self.hub_id,
                device_id,
                err,
            )
            return True

    async def async_remove_plug(self, device_id: str) -> None:
        """Remove a plug from the hub, then read the inventory again.

        Raises:
            PlugManagementError: the hub is not connected or refused (``cannot_connect``).

        """
        await self._manage(self.client.remove_plug(device_id))
        ir.async_delete_issue(self.hass, DOMAIN, f"unknown_layout_{device_id}")

    async def async_replace_plug(self, plug: NewPlug, profile: Profile | None = None) -> None:
        """Store new settings (local key, version, address, profile) of a plug the hub has.

        The hub has no "change" request (``docs/hub-protocol.md`` §7.3): the plug is removed and
        added again, and its DPS stream restarts. ``profile``: the plug's profile for the hub's
        lists (:func:`hub_profile_lists`; None: the candidate lists of a plug being detected).

        Raises:
            PlugManagementError: as :meth:`async_add_plug`; when adding fails after the removal
                the hub no longer has the plug, and the error says so (``readd_failed``).

        """
        self._adding.add(plug.device_id)  # its subentry stays while it is re-added
        inventory = self.client.inventory
        if inventory is None or plug.device_id in inventory.plugs:  # else: a re-add failed
            await self.async_remove_plug(plug.device_id)
        try:
            await self.async_add_plug(plug, profile)
        except PlugManagementError as err:
            raise PlugManagementError("readd_failed", str(err)) from err

    async def async_set_plug_host(self, device_id: str, host: str) -> None:
        """Give a plug the hub has a new IPv4 address (``host`` request, hub-protocol §7.3).

        Raises:
            PlugManagementError: as :meth:`async_add_plug`.

        """
        await self._manage(self.client.set_plug_host(device_id, host))

    async def _manage(
        self, request: Coroutine[Any, Any, None], *, refresh_inventory: bool = True
    ) -> None:
        if not self.client.connected:
            request.close()
            raise PlugManagementError("cannot_connect", "the hub is not connected")
        try:
            await request
            if refresh_inventory:
                await self.async_refresh_inventory()
        except HubCommandError as err:
            raise PlugManagementError(
                _HUB_ERRORS.get(err.code, "cannot_connect"), err.code
            ) from err
        except HubError as err:
            raise PlugManagementError("cannot_connect", str(err)) from err

    def diagnostics(self) -> dict[str, Any]:
        """The hub channel's state and the hub's health (no secret)."""
        client = self.client
        return {
            "hub": {
                "hub_id": self.hub_id,
                "connected": client.connected,
                "firmware": self.firmware,
                # all of HubHealth, e.g. reset_cause, mp_heap_free, idf_heap_free (None when
                # the firmware does not report them)
                "health": asdict(self.health) if self.health else None,
                "boot_time": self.boot_time.isoformat() if self.boot_time else None,
                "last_error": str(client.last_error) if client.last_error else None,
                # the plugs the hub cannot use, and why: "key", "busy", "unreachable"
                "plug_faults": dict(sorted(self.faults.items())),
            }
        }

    def _merge(self, inventory: Inventory) -> None:
        """Take the plugs' online state and DPS from ``inventory``; tell the listeners."""
        online = {d: p.online for d, p in inventory.plugs.items()}
        changed = {d for d in online if online[d] != self._online.get(d)}
        self._online = online
        for device_id in [d for d in self.faults if d not in inventory.plugs]:
            self._set_fault(device_id, None)  # the plug left the hub
        for device_id, plug in inventory.plugs.items():
            self._set_fault(device_id, plug.fault)
            self._update_plug(device_id, plug.dps)
            if device_id in changed:
                self._notify(device_id)

    @callback
    def _apply_inventory(self, inventory: Inventory) -> None:
        """Keep the entry's plug subentries equal to the hub's plugs.

        A plug the hub has without a subentry gets one (added on the hub by other means; its
        profile is detected when the hub reports it, :func:`plug_subentry`),
        unless its subentry was deleted while the hub was away: then it is removed from the
        hub now. A subentry whose plug the hub no longer has is removed. Each subentry change
        reloads the entry (its update listener), which rebuilds the entities.
        """
        async_end_discovery_flows(self.hass, inventory.plugs)
        self._merge(inventory)
        self._update_hub_firmware()
        self.sync_subentries()

    @callback
    def sync_subentries(self) -> None:
        """Make the plug subentries follow the last inventory (see :meth:`_apply_inventory`).

        Only once the entry is loaded: a subentry change reloads the entry, which must not
        happen in the middle of its set-up (``__init__`` calls this again when loaded).
        """
        entry = self.config_entry
        inventory = self.client.inventory
        if inventory is None or entry.state is not ConfigEntryState.LOADED:
            return
        config_entries = self.hass.config_entries
        removing = set(entry.data.get(CONF_REMOVING, []))
        by_device = {
            sub.data[CONF_DEVICE_ID]: sub for sub in entry.get_subentries_of_type(SUBENTRY_PLUG)
        }
        for device_id, plug in inventory.plugs.items():
            if device_id in by_device or device_id in self._adding:
                continue
            if device_id in removing:
                self.hass.async_create_background_task(
                    self._remove_deleted(device_id), f"{DOMAIN} remove {device_id}"
                )
                continue
            LOGGER.info("Hub %s has a new plug %s", self.hub_id, device_id)
            new = plug_subentry(device_id, plug.name, plug.version)
            config_entries.async_add_subentry(
                entry,
                ConfigSubentry(
                    data=MappingProxyType(new["data"]),
                    subentry_type=new["subentry_type"],
                    title=new["title"],
                    unique_id=new["unique_id"],
                ),
            )
        for device_id, sub in by_device.items():
            if device_id not in inventory.plugs and device_id not in self._adding:
                LOGGER.info("Hub %s no longer has plug %s", self.hub_id, device_id)
                config_entries.async_remove_subentry(entry, sub.subentry_id)
        if done := {d for d in removing if d not in inventory.plugs}:
            config_entries.async_update_entry(
                entry, data={**entry.data, CONF_REMOVING: sorted(removing - done)}
            )

    async def _remove_deleted(self, device_id: str) -> None:
        """Remove from the hub a plug whose subentry was deleted (retried at each connect)."""
        try:
            await self.async_remove_plug(device_id)
        except PlugManagementError as err:
            LOGGER.warning("Hub %s could not remove plug %s yet: %s", self.hub_id, device_id, err)

    async def async_refresh_inventory(self) -> None:
        """Read the hub's inventory now (after adding or removing a plug).

        Raises:
            HubError: the hub did not answer.

        """
        self._apply_inventory(await self.client.refresh_inventory())

    @callback
    def _on_connection(self, connected: bool) -> None:
        if connected and (inventory := self.client.inventory) is not None:
            LOGGER.info("Hub %s is connected", self.hub_id)
            self._auth_check_requested = False
            self._apply_inventory(inventory)
            # its health (uptime, memory) now rather than at the next poll, up to a minute away
            self.config_entry.async_create_background_task(
                self.hass, self.async_request_refresh(), f"{DOMAIN} hub {self.hub_id} health"
            )
        else:
            LOGGER.info("Hub %s is unreachable; reconnecting", self.hub_id)
            # its health is asked for again once it is back: until then the health sensors
            # are unavailable, rather than showing values from before (a restart changes them)
            self.health = None
        self._notify_all()
        self.async_update_listeners()  # the hub's own entities

    @callback
    def _on_failure(self, err: HubError) -> None:
        """A background connection attempt failed; a refused secret starts reauth at once.

        Only :class:`HubAuthError` (the hub's handshake proof did not match our secret, §4)
        does; a timeout, a refused or reset connection, a busy hub never do.
        """
        if isinstance(err, HubAuthError) and not self._auth_check_requested:
            self._auth_check_requested = True
            # the refresh raises ConfigEntryAuthFailed, and the coordinator starts the flow
            self.config_entry.async_create_background_task(
                self.hass, self.async_refresh(), f"{DOMAIN} hub {self.hub_id} secret check"
            )

    def _fault_issue_id(self, device_id: str) -> str:
        return f"hub_plug_fault_{self.hub_id}_{device_id}"

    @callback
    def _set_fault(self, device_id: str, fault: str | None) -> None:
        """Keep the plug's repair issue equal to its fault (hub-protocol §7.1).

        The issue is (re)created at every report of a fault the user can act on, so one that
        was fixed from the repairs dashboard while the fault lasts comes back; ``hub_plug_key``
        is fixable (``repairs.py``: the plug subentry's reconfigure form).
        """
        old = self.faults.get(device_id)
        if fault is None:
            self.faults.pop(device_id, None)
        else:
            self.faults[device_id] = fault
            if fault != old:
                LOGGER.info("Hub %s reports plug %s: %s", self.hub_id, device_id, fault)
                self._notify(device_id, ())  # wakes the plug's any-DP listeners (detection)
        issue_id = self._fault_issue_id(device_id)
        translation_key = FAULT_ISSUES.get(fault or "")
        if translation_key is None:
            # also one an earlier load raised (a reload starts with no faults known); the
            # registry's own lookup: deleting an issue that does not exist does nothing
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        inventory = self.client.inventory
        plug = inventory.plugs.get(device_id) if inventory is not None else None
        info = self.plugs.get(device_id)
        fixable = fault == "key" and info is not None  # its subentry holds the settings
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            data={"entry_id": self.config_entry.entry_id, "device_id": device_id}
            if fixable
            else None,
            is_fixable=fixable,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=translation_key,
            translation_placeholders={
                "name": info.name if info else (plug.name if plug else device_id),
                "device_id": device_id,
                "host": plug.host if plug else "",
                "hub": self.config_entry.title or DEFAULT_HUB_NAME,
            },
        )

    @callback
    def _on_state(self, update: StateUpdate) -> None:
        self._set_fault(update.device_id, update.fault)
        was_online = self._online.get(update.device_id)
        self._online[update.device_id] = update.online
        self._update_plug(update.device_id, update.dps)
        if was_online != update.online:
            self._notify(update.device_id)

    @override
    async def _async_update_data(self) -> PlugData:
        if not self.client.connected:
            if isinstance(self.client.last_error, HubAuthError):
                raise ConfigEntryAuthFailed(  # the hub's secret changed
                    translation_domain=DOMAIN,
                    translation_key="hub_secret_refused",
                    translation_placeholders={"hub_id": self.hub_id},
                )
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="hub_unreachable",
                translation_placeholders={"hub_id": self.hub_id},
            )
        try:
            self.health = await self.client.health()
            self._update_boot_time(self.health.uptime_s)
            inventory = await self.client.refresh_inventory()
        except HubError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="hub_unreachable",
                translation_placeholders={"hub_id": self.hub_id},
            ) from err
        self._merge(inventory)
        self.async_update_listeners()  # health is not part of the data
        return self.data

    def _update_boot_time(self, uptime_s: int, now: datetime | None = None) -> None:
        """Derive the hub's start time from its uptime (seconds).

        The estimate moves by the poll's latency each time; it is kept unless it moved by more
        than :data:`BOOT_TIME_TOLERANCE` or the uptime went down (the hub restarted, however
        soon after its last start), so the sensor changes only then.
        """
        estimate = ((now or dt_util.utcnow()) - timedelta(seconds=uptime_s)).replace(microsecond=0)
        restarted = self._last_uptime_s is not None and uptime_s < self._last_uptime_s
        if (
            self.boot_time is None
            or restarted
            or abs(estimate - self.boot_time) > BOOT_TIME_TOLERANCE
        ):
            self.boot_time = estimate
        self._last_uptime_s = uptime_s

    async def async_set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs of a plug through the hub; return those the plug confirmed.

        Raises:
            HomeAssistantError: translated ``set_failed`` (the hub's error code, or why the
                hub could not be asked).

        """
        try:
            confirmed = await self.client.set_dps(device_id, dps)
        except HubCommandError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": err.code},
            ) from err
        except HubError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="set_failed",
                translation_placeholders={"device_id": device_id, "error": str(err)},
            ) from err
        # The hub's inventory as read (its state pushes in order): a push read right behind
        # the result, already given to the listeners, is newer than the confirmation.
        inventory = self.client.inventory
        plug = inventory.plugs.get(device_id) if inventory is not None else None
        latest = plug.dps if plug is not None else {}
        self._update_plug(device_id, {k: latest.get(k, v) for k, v in confirmed.items()})
        return confirmed


#: Hub error codes (docs/hub-protocol.md §6) -> error keys of the options form.
_HUB_ERRORS = {"exists": "already_on_hub", "limit": "hub_full", "bad_request": "invalid_plug"}

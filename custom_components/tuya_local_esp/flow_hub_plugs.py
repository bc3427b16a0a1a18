"""Config subentry flow of a hub entry: one subentry per plug behind the hub.

"Add plug" on the hub entry's page gives the hub a plug (the hub stores it on its flash, with
its local key; Home Assistant keeps the device id, the protocol version and the plug's profile,
detected as on the direct path: ``HubCoordinator.async_add_plug_detected``); each plug's
subentry can be reconfigured (name, address, local key, protocol version, and its layout,
divisors and outlet names as a direct plug's options flow picks them: ``flow_plug_options``).
Deleting a subentry removes the plug from the hub (``__init__._async_hub_entry_changed``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Final

import probatio as vol
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.selector import SelectSelector, SelectSelectorConfig, SelectSelectorMode

from .const import (
    CONF_DEVICE_ID,
    CONF_LOCAL_KEY,
    CONF_OUTLET_NAMES,
    CONF_PROFILE,
    CONF_PROTOCOL_VERSION,
    CONF_UNMATCHED_DPS,
    DEFAULT_NAME,
)
from .coordinator import fallback_profile
from .flow_plug_options import (
    CONF_LAYOUT,
    CONF_OUTLETS,
    CONF_POWER_DIVISOR,
    CONF_USB,
    CONF_VOLTAGE_DIVISOR,
    DETECTED,
    layout_summary,
    outlet_names,
    profile_schema,
)
from .flow_probes import local_key_error
from .flow_schemas import (
    add_hub_plug_schema,
    reconfigure_hub_plug_schema,
    version_from_option,
    with_option_version,
)
from .hub import HubError
from .hub_coordinator import (
    CONF_DETECT_PENDING,
    CONF_PICKED_PROFILE,
    HubCoordinator,
    hub_profile_lists,
    subentry_profile,
)
from .profiles import BUILTIN_PROFILES, Profile, ProfileError, builtin_profile
from .source import NewPlug, PlugManagementError

#: The layout choice that keeps the layout picked before (offered only when there is one).
PICKED: Final = "picked"

#: Seconds a plug form waits for the hub entry to load and the hub to connect.
HUB_WAIT_S = 10.0


class HubPlugSubentryFlow(ConfigSubentryFlow):
    """Add a plug to the hub, or change one the hub has."""

    async def _hub(self) -> HubCoordinator:
        """The running hub entry's coordinator, once loaded and connected.

        Right after a plug was added, changed or deleted the entry reloads and the hub
        reconnects: this waits up to :data:`HUB_WAIT_S` for both, so that the next plug can be
        added at once.

        Raises:
            PlugManagementError: ``cannot_connect``, the entry did not load in time (e.g. it
                is disabled). A hub that did not connect in time is reported by the request.

        """
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            loaded = asyncio.Event()

            @callback
            def _state_changed() -> None:
                if entry.state is ConfigEntryState.LOADED:
                    loaded.set()

            unsubscribe = entry.async_on_state_change(_state_changed)
            try:
                async with asyncio.timeout(HUB_WAIT_S):
                    await loaded.wait()
            except TimeoutError as err:
                raise PlugManagementError("cannot_connect", "the hub entry is not loaded") from err
            finally:
                unsubscribe()
        hub: HubCoordinator = entry.runtime_data.hub
        if not hub.client.connected:
            with contextlib.suppress(HubError):
                await hub.client.wait_connected(within=HUB_WAIT_S)
        return hub

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Give the hub a plug: device id, local key, address, protocol version, name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key = str(user_input[CONF_LOCAL_KEY]).strip()
            device_id = str(user_input[CONF_DEVICE_ID]).strip()
            if error := local_key_error(key):
                errors[CONF_LOCAL_KEY] = error
            elif any(s.unique_id == device_id for s in self._get_entry().subentries.values()):
                errors["base"] = "already_on_hub"
            else:
                plug = NewPlug(
                    device_id=device_id,
                    local_key=key,
                    host=str(user_input[CONF_HOST]).strip(),
                    version=version_from_option(user_input[CONF_PROTOCOL_VERSION]),
                    name=str(user_input.get(CONF_NAME) or DEFAULT_NAME).strip(),
                    port=int(user_input[CONF_PORT]),
                )
                try:
                    found = await (await self._hub()).async_add_plug_detected(plug)
                except PlugManagementError as err:
                    errors[CONF_LOCAL_KEY if err.reason in _KEY_ERRORS else "base"] = err.reason
                else:
                    return self.async_create_entry(
                        title=plug.name,
                        data={
                            CONF_DEVICE_ID: device_id,
                            CONF_PROTOCOL_VERSION: plug.version,
                            **found,
                        },
                        unique_id=device_id,
                    )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                add_hub_plug_schema(),
                {k: v for k, v in (user_input or {}).items() if k != CONF_LOCAL_KEY},
            ),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a plug's name, address, key, protocol version, layout, divisors, outlet names.

        A new name is Home Assistant's only; a new address alone is sent with the hub's
        ``host`` request; a new local key or version re-adds the plug on the hub (it has no
        "change" request), which needs the local key: the hub never reveals the stored one.
        A layout picked here wins over the detected one (``picked_profile`` in the subentry);
        when it changes the DPs the hub refreshes, the hub is given the new lists with its
        ``profile`` request (hub-protocol §7.3), or, by a firmware without it (0.2.0), the
        plug is re-added (local key needed: ``key_required_layout``).
        Outlet names (comma separated, blank keeps "Outlet n") go to the subentry's
        ``outlet_names``, as a direct plug's go to its options; they need nothing from the hub.
        """
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        device_id = subentry.data[CONF_DEVICE_ID]
        detected = _detected(subentry.data)
        picked = _picked(subentry.data)
        errors: dict[str, str] = {}
        current: dict[str, Any] = {
            CONF_NAME: subentry.title,
            CONF_PROTOCOL_VERSION: subentry.data[CONF_PROTOCOL_VERSION],
        }
        if user_input is not None:
            name = str(user_input.get(CONF_NAME) or subentry.title).strip()
            version = version_from_option(user_input[CONF_PROTOCOL_VERSION])
            host = str(user_input[CONF_HOST]).strip()
            key = str(user_input.get(CONF_LOCAL_KEY) or "").strip()
            try:
                chosen = _chosen(user_input, detected, picked)
                hub = await self._hub()
                state = hub.client.inventory.plugs.get(device_id) if hub.client.inventory else None
                # a plug still to be detected, or not recognised: the hub keeps asking for
                # every candidate meter (HubCoordinator.async_add_plug_detected)
                detecting = bool(
                    subentry.data.get(CONF_DETECT_PENDING) or subentry.data.get(CONF_UNMATCHED_DPS)
                )
                for_hub = None if detecting and chosen == detected else chosen
                refresh = hub_profile_lists(for_hub)[0]
                # another layout than the one in use that makes the hub refresh other DPs
                lists_change = (
                    chosen != (picked or detected)
                    and state is not None
                    and state.refresh is not None
                    and list(state.refresh) != refresh
                )
                if key:
                    if error := local_key_error(key):
                        raise PlugManagementError(error)
                    port = int(user_input[CONF_PORT])
                    await hub.async_replace_plug(
                        NewPlug(device_id, key, host, version, name, port), for_hub
                    )
                elif version != subentry.data[CONF_PROTOCOL_VERSION]:
                    raise PlugManagementError("key_required")
                else:
                    # the lists without the key (the hub's `profile` request); a firmware
                    # without it (0.2.0) gets them only with the plug again, local key and all
                    if lists_change and not await hub.async_set_plug_profile(device_id, for_hub):
                        raise PlugManagementError("key_required_layout")
                    if state is None or state.host != host:
                        await hub.async_set_plug_host(device_id, host)
            except PlugManagementError as err:
                errors[CONF_LOCAL_KEY if err.reason in _KEY_ERRORS else "base"] = err.reason
            else:
                data = {
                    k: v
                    for k, v in subentry.data.items()
                    if k not in (CONF_PICKED_PROFILE, CONF_OUTLET_NAMES)
                } | {CONF_PROTOCOL_VERSION: version}
                if chosen != detected:
                    data[CONF_PICKED_PROFILE] = chosen.to_wire()
                if names := outlet_names(user_input.get(CONF_OUTLET_NAMES, "")):
                    data[CONF_OUTLET_NAMES] = names
                return self.async_update_and_abort(entry, subentry, title=name, data=data)
            current = {**user_input}
        else:
            state = None
            if entry.state is ConfigEntryState.LOADED and entry.runtime_data.hub is not None:
                inventory = entry.runtime_data.hub.client.inventory
                state = inventory.plugs.get(device_id) if inventory is not None else None
            if state is not None:
                current |= {CONF_HOST: state.host, CONF_PORT: state.port}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                reconfigure_hub_plug_schema().extend(
                    _layout_fields(
                        picked or detected, picked, subentry.data.get(CONF_OUTLET_NAMES, [])
                    )
                ),
                with_option_version({k: v for k, v in current.items() if k != CONF_LOCAL_KEY}),
            ),
            description_placeholders={
                "name": subentry.title,
                "device_id": device_id,
                "layout": layout_summary(detected),
            },
            errors=errors,
        )


def _detected(data: Mapping[str, Any]) -> Profile:
    """The detected profile of a plug subentry (the fallback when none was stored)."""
    return subentry_profile({CONF_PROFILE: data.get(CONF_PROFILE)}) or fallback_profile(None)


def _picked(data: Mapping[str, Any]) -> Profile | None:
    """The layout picked before in the plug's reconfigure step, if any."""
    if data.get(CONF_PICKED_PROFILE) is None:
        return None
    return subentry_profile({CONF_PICKED_PROFILE: data[CONF_PICKED_PROFILE]})


def _layout_fields(shown: Profile, picked: Profile | None, names: list[str]) -> dict[Any, Any]:
    """The layout fields of a direct plug's options form (``flow_plug_options``).

    In the same order (the layout first, then the outlets, USB switch and divisors it
    governs, then the outlet names, ``names`` by default); the layout choice ``picked``,
    offered when there is one, keeps an earlier choice and is the default then.
    """
    layouts = [DETECTED, *BUILTIN_PROFILES, *([PICKED] if picked is not None else [])]
    fields: dict[Any, Any] = {
        vol.Required(CONF_LAYOUT, default=PICKED if picked is not None else DETECTED): (
            SelectSelector(
                SelectSelectorConfig(
                    options=layouts, mode=SelectSelectorMode.DROPDOWN, translation_key=CONF_LAYOUT
                )
            )
        )
    }
    fields.update(
        (marker, selector)
        for marker, selector in profile_schema(shown, names).schema.items()
        if marker != CONF_LAYOUT
    )
    return fields


def _chosen(user_input: Mapping[str, Any], detected: Profile, picked: Profile | None) -> Profile:
    """The profile the reconfigure form asks for: a layout with its divisors.

    Raises:
        PlugManagementError: ``invalid_layout``, a layout without that many outlets or USB.

    """
    layout = user_input.get(CONF_LAYOUT, PICKED if picked is not None else DETECTED)
    power = user_input.get(CONF_POWER_DIVISOR)
    voltage = user_input.get(CONF_VOLTAGE_DIVISOR)
    try:
        if layout == PICKED and picked is not None:
            base = picked
        elif layout in (DETECTED, PICKED):
            base = detected
        else:
            base = builtin_profile(
                layout,
                int(user_input.get(CONF_OUTLETS, len(detected.switches))),
                bool(user_input.get(CONF_USB, False)),
            )
        base = base.with_divisors(
            None if power is None else int(power), None if voltage is None else int(voltage)
        )
    except ProfileError as err:
        raise PlugManagementError("invalid_layout", str(err)) from err
    return base


#: Errors shown at the local key field rather than at the top of the form.
_KEY_ERRORS = frozenset(
    {"invalid_local_key", "key_required", "key_required_layout", "plug_key_refused"}
)

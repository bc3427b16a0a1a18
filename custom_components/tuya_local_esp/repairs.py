"""Repair flows: what the "Fix" button of this integration's repair issues does.

One job: turn a fixable repair issue into the flow that fixes it. The only fixable issue is
``hub_plug_key`` (the hub reports that a plug's frames fail to decrypt with the local key it
has, hub-protocol §7.1 ``fault``): its fix opens the plug subentry's reconfigure form, where the
new local key is entered and given to the hub (``flow_hub_plugs``). The issue itself goes away
when the hub reports the plug fine again, and comes back at the next push or poll if the key is
still wrong.
"""

from __future__ import annotations

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow, RepairsFlowResult
from homeassistant.components.repairs.const import FlowType
from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant

from .const import SUBENTRY_PLUG
from .hub_coordinator import plug_subentry_of


class PlugSettingsFlow(RepairsFlow):
    """Open the reconfigure form of a hub plug's subentry (the new local key goes there)."""

    def __init__(self, entry_id: str, device_id: str) -> None:
        """Fix the plug ``device_id`` of the hub entry ``entry_id``."""
        self._entry_id = entry_id
        self._device_id = device_id

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Start the subentry's reconfigure flow and hand over to it.

        Aborts with ``plug_gone`` when the entry or the plug's subentry no longer exists.
        """
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        subentry = plug_subentry_of(entry, self._device_id) if entry is not None else None
        if entry is None or subentry is None:
            return self.async_abort(reason="plug_gone")
        result = await self.hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_PLUG),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
        )
        return self.async_create_entry(
            data={}, next_flow=(FlowType.CONFIG_SUBENTRIES_FLOW, result["flow_id"])
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of ``issue_id`` (HA's repairs platform).

    A ``hub_plug_key`` issue's ``data`` names the hub entry (``entry_id``) and the plug
    (``device_id``, ``hub_coordinator.HubCoordinator._set_fault``). Any other issue would get
    HA's plain confirmation (none is fixable today).
    """
    entry_id = (data or {}).get("entry_id")
    device_id = (data or {}).get("device_id")
    if isinstance(entry_id, str) and isinstance(device_id, str):
        return PlugSettingsFlow(entry_id, device_id)
    return ConfirmRepairFlow()

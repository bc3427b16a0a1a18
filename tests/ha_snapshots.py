"""Snapshot helper: every device, entity registry entry and state of one config entry (syrupy)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props


def assert_entry_snapshot(
    hass: HomeAssistant,
    entry_id: str,
    snapshot: SnapshotAssertion,
    *,
    varying: frozenset[str] = frozenset(),
) -> None:
    """Compare the entry's devices, entity registry entries and states with the snapshot.

    ``varying`` names entities whose state value changes from run to run (e.g. a hub's uptime):
    their entry and attributes are compared, their state value is not.
    """
    snapshot = snapshot.use_extension(HomeAssistantSnapshotExtension)
    devices = sorted(
        dr.async_entries_for_config_entry(dr.async_get(hass), entry_id),
        key=lambda d: sorted(d.identifiers),
    )
    for device in devices:
        (_, ident) = next(iter(device.identifiers))
        assert device == snapshot(name=f"device-{ident}")
    entities = sorted(
        er.async_entries_for_config_entry(er.async_get(hass), entry_id), key=lambda e: e.entity_id
    )
    assert entities
    for entity in entities:
        assert entity == snapshot(name=f"{entity.entity_id}-entry")
        state = hass.states.get(entity.entity_id)
        if entity.disabled_by is not None:
            assert state is None
            continue
        assert state is not None
        exclude = props("state") if entity.entity_id in varying else None
        assert state == snapshot(name=f"{entity.entity_id}-state", exclude=exclude)

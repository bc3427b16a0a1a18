"""Repair issues of the glue: UDP discovery ports held by another program."""

from __future__ import annotations

import socket

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.tuya_local_esp import discovery
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.discovery import DISCOVERY, PORTS_ISSUE, TuyaDiscovery
from custom_components.tuya_local_esp.tuya.discovery_listener import DiscoveryListener

from .conftest import wait_until


async def test_a_taken_discovery_port_is_a_repair_issue(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program holds a discovery port exclusively (no SO_REUSEADDR): the other ports
    still listen, a translated repair issue names the taken one, and it goes away once the
    port can be bound again."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEADDR: exclusive
    holder.bind(("", 0))
    taken = int(holder.getsockname()[1])
    try:
        monkeypatch.setattr(discovery, "LISTEN_PORTS", (taken, 0, 0))
        assert await async_setup_component(hass, DOMAIN, {})
        listener = hass.data[DISCOVERY].listener
        assert listener.unbound_ports == [taken]
        assert len(listener.bound_ports) == 2  # the others listen
        issue = ir.async_get(hass).async_get_issue(DOMAIN, PORTS_ISSUE)
        assert issue is not None
        assert issue.translation_key == PORTS_ISSUE
        assert issue.translation_placeholders == {"ports": str(taken)}
        assert issue.severity is ir.IssueSeverity.WARNING
    finally:
        holder.close()
    # the other program is gone: the next start binds the port and clears the issue
    again = TuyaDiscovery(hass, DiscoveryListener(ports=(taken,), request_interval=None))
    await again.async_start()
    try:
        assert again.listener.bound_ports == [taken]
        await wait_until(lambda: ir.async_get(hass).async_get_issue(DOMAIN, PORTS_ISSUE) is None)
    finally:
        await again.async_stop()

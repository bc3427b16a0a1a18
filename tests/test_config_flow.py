"""Config flow: every branch, each error followed by a successful retry in the same test."""

from __future__ import annotations

import socket
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from tuya_sim import SimulatedPlug

from .conftest import DEVICE_ID, LOCAL_KEY, wait_for_state


def user_input(sim: SimulatedPlug, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "host": "127.0.0.1",
        "device_id": DEVICE_ID,
        "local_key": LOCAL_KEY,
        "protocol_version": sim.version.replace(".", "_"),  # selector option "3_3"
        "port": sim.port,
        "name": "Desk plug",
    }
    data.update(overrides)
    return data


async def start_plug_flow(hass: HomeAssistant) -> Any:
    """Open the user flow and pick "plug" in its menu."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["plug", "hub", "import_devices"]
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "plug"}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_user_flow_creates_entry(hass: HomeAssistant, plug_sim: SimulatedPlug) -> None:
    result = await start_plug_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "plug"
    assert result["errors"] == {}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(plug_sim, host=" 127.0.0.1 ")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Desk plug"
    data = result["data"]
    assert data["host"] == "127.0.0.1"
    assert data["transport"] == "direct"
    assert data["dp_ids"] == sorted(plug_sim.dps)
    assert result["result"].unique_id == DEVICE_ID
    await wait_for_state(hass, "switch.desk_plug", "on")


async def test_user_flow_cannot_connect_then_recovers(
    hass: HomeAssistant, plug_sim: SimulatedPlug
) -> None:
    result = await start_plug_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(plug_sim, port=free_port())
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(plug_sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_wrong_key_then_recovers(
    hass: HomeAssistant, plug_sim: SimulatedPlug
) -> None:
    result = await start_plug_flow(hass)
    with patch("custom_components.tuya_local_esp.flow_probes.REQUEST_TIMEOUT", 0.5):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], user_input(plug_sim, local_key="fedcba9876543210")
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert plug_sim.stats.bad_key >= 1
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(plug_sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_malformed_key_then_recovers(
    hass: HomeAssistant, plug_sim: SimulatedPlug
) -> None:
    result = await start_plug_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(plug_sim, local_key="tooshort")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"local_key": "invalid_local_key"}
    assert plug_sim.stats.accepted == 0  # nothing was sent to the plug
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(plug_sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_unknown_error_then_recovers(
    hass: HomeAssistant, plug_sim: SimulatedPlug
) -> None:
    result = await start_plug_flow(hass)
    with patch(
        "custom_components.tuya_local_esp.flow_probes.probe_plug", side_effect=RuntimeError("boom")
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], user_input(plug_sim)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(plug_sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_already_configured(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    mock_entry.add_to_hass(hass)
    result = await start_plug_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(plug_sim))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_flow(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    mock_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_entry.entry_id)
    await hass.async_block_till_done()
    result = await mock_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    new_input = {
        "host": "127.0.0.1",
        "local_key": LOCAL_KEY,
        "protocol_version": "3_3",
        "port": free_port(),
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    new_input["port"] = plug_sim.port
    new_input["host"] = "127.0.0.2"  # the plug "moved"; the simulator listens on 127.0.0.1 only
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new_input)
    assert result["errors"] == {"base": "cannot_connect"}
    new_input["host"] = "localhost"
    del new_input["local_key"]  # left empty: the stored key is kept
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new_input)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_entry.data["host"] == "localhost"
    assert mock_entry.data["protocol_version"] == "3.3"  # stored dotted, shown as "3_3"
    assert mock_entry.data["local_key"] == LOCAL_KEY
    assert mock_entry.data["device_id"] == DEVICE_ID
    await hass.async_block_till_done()


async def test_user_flow_detects_the_version(hass: HomeAssistant) -> None:
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version="3.5", dps={"1": True}
    ) as sim:
        result = await start_plug_flow(hass)
        schema_version = next(k for k in result["data_schema"].schema if k == "protocol_version")
        assert schema_version.default() == "auto"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], user_input(sim, protocol_version="auto")
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"]["protocol_version"] == "auto"
        assert result["data"]["detected_version"] == "3.5"
        entry = result["result"]
        await wait_for_state(hass, "switch.desk_plug", "on")
        # a firmware update changes the plug's version: the entry follows by itself
        coordinator = entry.runtime_data.source
        coordinator.device.reconnect_min = 0.05
        await sim.stop()
        sim.version = "3.4"
        await wait_for_state(hass, "switch.desk_plug", "unavailable")
        await sim.start()
        await wait_for_state(hass, "switch.desk_plug", "on", within=10)
        assert entry.data["detected_version"] == "3.4"
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_an_entry_that_is_not_loaded(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    mock_entry.add_to_hass(hass)  # e.g. disabled, or failed to load: nothing to release
    result = await mock_entry.start_reconfigure_flow(hass)
    new_input = {
        "host": "127.0.0.1",
        "local_key": LOCAL_KEY,
        "protocol_version": "auto",
        "port": free_port(),
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new_input)
    assert result["errors"] == {"base": "cannot_connect"}
    new_input["port"] = plug_sim.port
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new_input)
    assert result["reason"] == "reconfigure_successful"
    assert mock_entry.data["detected_version"] == "3.3"
    await hass.async_block_till_done()


async def test_reauth_flow_of_a_plug(
    hass: HomeAssistant, plug_sim: SimulatedPlug, mock_entry: MockConfigEntry
) -> None:
    """The new local key is checked with the plug, which the running entry releases for it."""
    mock_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_entry.entry_id)
    await wait_for_state(hass, "switch.desk_plug", "on")
    result = await mock_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    with patch("custom_components.tuya_local_esp.flow_probes.REQUEST_TIMEOUT", 0.5):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"local_key": "fedcba9876543210"}
        )
    assert result["errors"] == {"base": "invalid_auth"}
    await wait_for_state(hass, "switch.desk_plug", "on")  # taken again after the failed probe
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"local_key": LOCAL_KEY}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await wait_for_state(hass, "switch.desk_plug", "on")

"""Import of tinytuya's devices.json in the config flow: paste, pick, one entry per plug.

The file is the wizard-shaped fixture (tests/fixtures/profiles/devices_json/wizard.json) with its
addresses moved to loopback; a plug with no address in the file is heard on the LAN through a
real UDP broadcast to the integration's discovery listener.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_IMPORT, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.discovery import DISCOVERY, TuyaDiscovery
from custom_components.tuya_local_esp.profiles import Profile
from tuya_sim.udp import encode_broadcast

from .conftest import wait_until

WIZARD = Path(__file__).parent / "fixtures" / "profiles" / "devices_json" / "wizard.json"
KITCHEN = "bf1234567890abcdefgh"
STRIP = "bf2234567890abcdefgh"
MINI = "bf3234567890abcdefgh"
OLD = "0120015260091453a970"


def wizard_text(**ips: str) -> str:
    """The fixture with loopback addresses (``{device_id: ip}``)."""
    entries: list[dict[str, Any]] = json.loads(WIZARD.read_text())
    for entry in entries:
        if entry.get("ip"):
            entry["ip"] = "127.0.0." + entry["ip"].rsplit(".", 1)[1]
        if entry.get("id") in ips:
            entry["ip"] = ips[entry["id"]]
    return json.dumps(entries)


def announce(discovery: TuyaDiscovery, device_id: str, ip: str, version: str) -> None:
    """A plug's LAN broadcast to the listener's encrypted port."""
    info = {"ip": ip, "gwId": device_id, "active": 2, "encrypt": True, "version": version}
    port = discovery.listener.bound_ports[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode_broadcast(info, version), ("127.0.0.1", port))


async def start_import(hass: HomeAssistant) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "import_devices"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "import_devices"
    return result


def options_of(result: Any) -> list[str]:
    schema = result["data_schema"].schema
    selector = next(iter(schema.values()))
    return [o["value"] for o in selector.config["options"]]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("this is not json", "devices_json_not_json"),
        ('{"name": "x"}', "devices_json_not_a_list"),
        ("[1]", "devices_json_bad_entry"),
        (
            '[{"id": "bf5234567890abcdefgh", "name": "Gateway", "key": "0123456789abcdef",'
            ' "mapping": {}}]',
            "devices_json_no_plugs",
        ),
        ("x" * (4 * 1024 * 1024 + 1), "devices_json_too_large"),
    ],
)
async def test_bad_files_are_refused_whole_then_a_good_one_imports(
    hass: HomeAssistant, text: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await start_import(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"devices_json": text}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert hass.config_entries.async_entries(DOMAIN) == []
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"devices_json": wizard_text()}
    )
    assert result["step_id"] == "import_pick"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"plugs": [KITCHEN]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "KEYkitchen000001" not in caplog.text


async def test_import_picks_plugs_and_creates_one_entry_each(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await start_import(hass)
    discovery: TuyaDiscovery = hass.data[DISCOVERY]
    # the strip has no address in the file; it is heard on the LAN (with its version)
    announce(discovery, STRIP, "127.0.0.9", "3.4")
    await wait_until(lambda: any(d.device_id == STRIP for d in discovery.seen()))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"devices_json": wizard_text()}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "import_pick"
    assert options_of(result) == [KITCHEN, STRIP, MINI, OLD]
    labels = [
        o["label"] for o in next(iter(result["data_schema"].schema.values())).config["options"]
    ]
    assert labels[0] == f"Kitchen plug ({KITCHEN}, 127.0.0.21)"
    assert labels[1] == f"Desk strip ({STRIP}, 127.0.0.9)"
    assert labels[2] == f"Mini Smart Plug ({MINI}, address not known yet)"
    skipped = result["description_placeholders"]["skipped"]
    # reasons in words, not codes
    assert "Zigbee plug (a4c1380000000004): behind a gateway (Zigbee or Bluetooth)" in skipped
    assert "Hall light (bf6234567890abcdefgh): not a plug (no switch in its DP mapping)" in skipped
    assert "Plug without key (bf8234567890abcdefgh): no local key in the file" in skipped

    # a plug with no address anywhere: refused, nothing created
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"plugs": [KITCHEN, MINI]}
    )
    assert result["errors"] == {"base": "no_address"}
    assert result["description_placeholders"]["missing"] == "Mini Smart Plug"
    assert hass.config_entries.async_entries(DOMAIN) == []
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"plugs": []})
    assert result["errors"] == {"base": "none_selected"}
    assert hass.config_entries.async_entries(DOMAIN) == []

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"plugs": [KITCHEN, STRIP, OLD]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entries = {e.unique_id: e for e in hass.config_entries.async_entries(DOMAIN)}
    assert set(entries) == {KITCHEN, STRIP, OLD}
    assert entries[KITCHEN].source == SOURCE_USER
    assert entries[STRIP].source == SOURCE_IMPORT
    assert entries[OLD].source == SOURCE_IMPORT

    kitchen = entries[KITCHEN].data
    assert kitchen["host"] == "127.0.0.21"
    assert kitchen["local_key"] == "KEYkitchen000001"
    assert (kitchen["protocol_version"], kitchen["detected_version"]) == ("auto", "3.3")
    profile = Profile.from_wire(kitchen["profile"])
    assert profile.name == "standard"
    assert profile.power_on is not None
    assert profile.fault == "26"
    assert entries[KITCHEN].title == "Kitchen plug"

    strip = entries[STRIP].data
    assert (strip["host"], strip["detected_version"]) == ("127.0.0.9", "3.4")
    strip_profile = Profile.from_wire(strip["profile"])
    assert [o.dp for o in strip_profile.outlets] == ["1", "2", "3", "7"]
    # the cloud declared power scale 2 and voltage scale 0: the standard divisors are kept
    assert strip_profile.power is not None
    assert strip_profile.power.divisor == 10
    assert strip_profile.voltage is not None
    assert strip_profile.voltage.divisor == 10
    assert strip_profile.child_lock == "41"
    assert strip_profile.overcharge == "46"

    old = entries[OLD].data  # a code-keyed mapping: detected when it first connects
    assert "profile" not in old
    assert "dp_ids" not in old
    assert old["host"] == "127.0.0.27"
    for key in ("KEYkitchen000001", "KEYdeskstrip0002", strip["local_key"], old["local_key"]):
        assert key not in caplog.text

    # the same file again: only the plug left is offered, the others are listed as configured
    result = await start_import(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"devices_json": wizard_text(**{MINI: "127.0.0.3"})}
    )
    assert options_of(result) == [MINI]
    assert (
        f"Kitchen plug ({KITCHEN}): already added" in result["description_placeholders"]["skipped"]
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"plugs": [MINI]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["host"] == "127.0.0.3"
    # and once more: nothing left to import
    result = await start_import(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"devices_json": wizard_text()}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    for entry in hass.config_entries.async_entries(DOMAIN):
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_import_of_a_plug_configured_meanwhile_is_skipped(hass: HomeAssistant) -> None:
    """An import flow for a plug that got an entry in the meantime aborts (no duplicate)."""
    data = {
        "host": "127.0.0.21",
        "port": 6668,
        "device_id": KITCHEN,
        "local_key": "KEYkitchen000001",
        "protocol_version": "auto",
        "detected_version": "3.3",
        "name": "Kitchen plug",
        "transport": "direct",
    }
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_IMPORT}, data=data
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_IMPORT}, data=data
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    for entry in hass.config_entries.async_entries(DOMAIN):
        assert await hass.config_entries.async_unload(entry.entry_id)

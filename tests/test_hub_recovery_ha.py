"""What Home Assistant does when the hub path fails (issue 7): a hub that goes silent (Wi-Fi gone,
power cut, hung: no RST) makes its plugs unavailable within seconds and they come back when it
returns; a hub whose secret changed starts reauth at the first refused attempt (and a hub that
is merely unreachable never does); a plug the hub cannot use because of its local key or
another client gets a repair issue while that lasts.

Real TCP on loopback: the hub firmware on the MicroPython unix port behind the fault-injecting
proxy (``tests/faultproxy.py``, raw bytes), or stopped with SIGSTOP; for the plug ``fault``
member, which the firmware reports only from its next version on, the scriptable fake hub of
``tests/firmware/test_hub_client.py`` (the sans-I/O protocol, server side). Every wait is on a
condition with a generous bound; the measured times are in ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntryState,
)
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, STATE_UNAVAILABLE
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.diagnostics import async_get_config_entry_diagnostics
from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubConnectionError,
    HubError,
    HubTimeoutError,
)
from custom_components.tuya_local_esp.hub_coordinator import HubCoordinator
from custom_components.tuya_local_esp.profiles import CANDIDATE_METERING_DPS
from tests.faultproxy import FaultProxy
from tuya_sim import SimulatedPlug

from . import test_hub_ha
from .conftest import wait_for_state, wait_until
from .firmware.conftest import KEYS, SECRET, HubProcess, free_port
from .firmware.test_hub_client import HELLO, PLUG, FakeConn, answer_all, fake_hub, hub_tasks
from .firmware.test_hub_client import SECRET as FAKE_SECRET
from .test_hub_ha import entry_at, hub_plug_subentry

GONE = 40.0  # "unavailable within" (s): generous; the client drops a hub silent for 10 s
BACK = 30.0  # "back within" (s) after the hub returns
PLUG_0 = "switch.hub_plug_0"
PLUG_1 = "switch.hub_plug_1"
STRINGS = Path(__file__).parent.parent / "custom_components" / DOMAIN / "strings.json"

# fixtures: two simulated plugs, and the firmware serving them
plugs = test_hub_ha.plugs
hub = test_hub_ha.hub


def entry_for(
    port: int,
    plugs: list[tuple[str, str]],
    *,
    secret: str = SECRET,
    hub_id: str = "testhub",
) -> MockConfigEntry:
    """A hub entry at ``127.0.0.1:port`` with one subentry per ``(device id, name)``."""
    return entry_at(
        port,
        [hub_plug_subentry(device_id, name) for device_id, name in plugs],
        secret=secret,
        hub_id=hub_id,
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> HubCoordinator:
    await test_hub_ha.set_up_hub_entry(hass, entry)
    source = entry.runtime_data.source
    assert isinstance(source, HubCoordinator)
    return source


def reauth_flows(hass: HomeAssistant) -> list[Any]:
    return [
        f
        for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if f["context"]["source"] == "reauth"
    ]


# ------------------------------------------------------------------ a silent hub
@pytest.mark.parametrize("accepting", [True, False])
async def test_a_silent_hub_makes_its_plugs_unavailable_and_they_come_back(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug], accepting: bool
) -> None:
    """The hub goes silent on the open connection (no FIN, no RST), with new connections
    accepted but never answered or not completing at all; the plugs go unavailable without
    waiting for a slow ping, and they are back once the hub is heard again."""
    async with FaultProxy(hub.port, frames=False) as proxy:
        entry = entry_for(proxy.port, [(s.device_id, f"Hub plug {i}") for i, s in enumerate(plugs)])
        coordinator = await set_up(hass, entry)
        await wait_for_state(hass, PLUG_0, "on", within=BACK)
        await wait_for_state(hass, PLUG_1, "on", within=BACK)

        await proxy.blackhole(accepting=accepting)
        await wait_for_state(hass, PLUG_0, STATE_UNAVAILABLE, within=GONE)
        await wait_for_state(hass, PLUG_1, STATE_UNAVAILABLE, within=GONE)
        assert not coordinator.hub_connected
        error = coordinator.client.last_error
        assert isinstance(error, HubTimeoutError), error
        assert "silent" in str(error)
        assert reauth_flows(hass) == []  # silence is never taken for a wrong secret

        proxy.drop_all(reset=True)
        await proxy.power_on()
        await wait_for_state(hass, PLUG_0, "on", within=BACK)
        await wait_for_state(hass, PLUG_1, "on", within=BACK)
        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: PLUG_0}, blocking=True
        )
        assert plugs[0].dps["1"] is False
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hung_hub_process_is_noticed_and_followed_back(
    hass: HomeAssistant, hub: HubProcess, plugs: list[SimulatedPlug]
) -> None:
    """SIGSTOP: the hub's TCP stack still acknowledges (and even accepts new connections into
    its backlog) but nothing is answered; SIGCONT brings it back."""
    entry = entry_for(hub.port, [(s.device_id, f"Hub plug {i}") for i, s in enumerate(plugs)])
    coordinator = await set_up(hass, entry)
    await wait_for_state(hass, PLUG_0, "on", within=BACK)
    assert hub.proc is not None
    failures: list[HubError] = []
    unsubscribe = coordinator.client.subscribe_failure(failures.append)
    os.kill(hub.proc.pid, signal.SIGSTOP)
    try:
        await wait_for_state(hass, PLUG_0, STATE_UNAVAILABLE, within=GONE)
        assert isinstance(coordinator.client.last_error, HubTimeoutError)
        # reconnection attempts go on, and time out (the hub accepts but does not answer)
        await wait_until(lambda: bool(failures), within=GONE)
        assert all(not isinstance(f, HubAuthError) for f in failures)
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    await wait_for_state(hass, PLUG_0, "on", within=BACK)
    await wait_for_state(hass, PLUG_1, "on", within=BACK)
    assert reauth_flows(hass) == []
    unsubscribe()
    assert await hass.config_entries.async_unload(entry.entry_id)


# ------------------------------------------------------------------ reauth
async def test_a_refused_secret_starts_reauth_at_the_first_attempt(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """No poll needed: the first attempt the hub refuses (its proof does not match our secret)
    opens the reauth flow, once, even while the client keeps retrying."""
    hub = HubProcess(tmp_path, secret="the-new-hub-secret-0123456789ab")
    await hub.start()
    try:
        entry = entry_for(hub.port, [])  # configured with the old secret
        coordinator = await set_up(hass, entry)
        await wait_until(lambda: bool(reauth_flows(hass)), within=30)
        assert isinstance(coordinator.client.last_error, HubAuthError)
        # later refused attempts do not open a second flow
        failures: list[HubError] = []
        coordinator.client.subscribe_failure(failures.append)
        coordinator.client.wake()
        await wait_until(lambda: len(failures) >= 2, within=30)
        await hass.async_block_till_done()
        assert len(reauth_flows(hass)) == 1
        result = await hass.config_entries.flow.async_configure(
            reauth_flows(hass)[0]["flow_id"], {"secret": "the-new-hub-secret-0123456789ab"}
        )
        assert result["reason"] == "reauth_successful"
        await wait_for_state(hass, "binary_sensor.tuya_esp32_hub_testhub_connected", "on")
        hub.assert_no_secrets(["the-new-hub-secret-0123456789ab"])
    finally:
        hub.stop()


async def test_an_unreachable_hub_never_starts_reauth(hass: HomeAssistant) -> None:
    """Refused connections and handshakes that time out are no reason to ask for a secret."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers the handshake
        writer.close()

    # the silent server first: free_port() cannot then hand out the same port
    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        silent = await set_up(hass, entry_for(port, [], hub_id="silent"))
        refused = await set_up(hass, entry_for(free_port(), [], hub_id="refused"))
        failures: dict[str, list[HubError]] = {"refused": [], "silent": []}
        refused.client.subscribe_failure(failures["refused"].append)
        silent.client.subscribe_failure(failures["silent"].append)
        await wait_until(lambda: len(failures["refused"]) >= 3, within=30)
        await wait_until(lambda: len(failures["silent"]) >= 1, within=30)
        await hass.async_block_till_done()
        assert all(isinstance(f, HubConnectionError) for f in failures["refused"])
        assert isinstance(failures["silent"][0], HubTimeoutError)
        assert reauth_flows(hass) == []
        # the poll reports the hub unreachable, not a refused secret
        await refused.async_refresh()
        await silent.async_refresh()
        assert reauth_flows(hass) == []
        assert not refused.last_update_success
    finally:
        for entry in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(entry.entry_id)
        server.close()
        await server.wait_closed()


# ------------------------------------------------------------------ plug faults
def issue_text(key: str) -> str:
    """Title and description of an issue in strings.json (strings and en.json are equal)."""
    issue = json.loads(STRINGS.read_text())["issues"][key]
    return issue["title"] + issue["description"]


def fault_issue(hass: HomeAssistant, device_id: str = "p1") -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"hub_plug_fault_fake_{device_id}")


async def test_plug_faults_reported_by_the_hub_are_repair_issues(hass: HomeAssistant) -> None:
    """``fault`` in ``plug`` messages and ``state`` pushes (hub-protocol §7.1): ``key`` and
    ``busy`` raise a translated repair issue naming the plug within the push, a fault that
    clears removes it, ``unreachable`` is shown as the plug being unavailable only; every
    fault is in the diagnostics."""
    plug: dict[str, Any] = {**PLUG, "online": False, "fault": "key"}

    def inventory_as_pushed(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "inventory":  # the plug as last pushed (the poll reads it)
            conn.send(plug)
            conn.result(req, {k: v for k, v in HELLO.items() if k != "t"})
        else:
            answer_all(conn, req)

    def push(**state: Any) -> None:
        plug.update(state)
        if "fault" not in state:  # an older firmware's push: no member
            plug.pop("fault", None)
        # as the hub does: to every client connected (a reload may be replacing HA's one)
        for conn in fake.conns:
            if not conn.w.is_closing():
                conn.send({"t": "state", "id": "p1", "dps": {}, **state})

    async with fake_hub(inventory_as_pushed, hello=lambda _: [plug, HELLO]) as fake:
        entry = entry_for(
            fake.port, [("p1", "Desk lamp")], secret=FAKE_SECRET.decode(), hub_id="fake"
        )
        coordinator = await set_up(hass, entry)
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        issue = fault_issue(hass)
        assert issue is not None
        assert issue.translation_key == "hub_plug_key"
        assert issue.severity is ir.IssueSeverity.WARNING
        assert issue.translation_placeholders == {
            "name": "Desk lamp",
            "device_id": "p1",
            "host": "127.0.0.1",
            "hub": "Tuya ESP32 hub fake",
        }
        # every placeholder the text uses is given
        used = set(re.findall(r"{(\w+)}", issue_text("hub_plug_key")))
        assert used <= set(issue.translation_placeholders)
        assert hass.states.get("switch.desk_lamp").state == STATE_UNAVAILABLE
        diag = await async_get_config_entry_diagnostics(hass, entry)
        assert diag["hub"]["plug_faults"] == {"p1": "key"}

        # the key was fixed: the plug is online, the fault is gone (null)
        push(online=True, fault=None)
        await wait_until(lambda: fault_issue(hass) is None, within=10)
        await wait_for_state(hass, "switch.desk_lamp", "on")
        # another client takes the plug
        push(online=False, fault="busy")
        push(online=False, fault="busy")  # reported again: one issue, nothing changes
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        issue = fault_issue(hass)
        assert issue is not None
        assert issue.translation_key == "hub_plug_busy"
        used = set(re.findall(r"{(\w+)}", issue_text("hub_plug_busy")))
        assert used <= set(issue.translation_placeholders)
        await wait_for_state(hass, "switch.desk_lamp", STATE_UNAVAILABLE)
        # unreachable: unavailable, no issue (nothing for the user to fix but the plug)
        push(online=False, fault="unreachable")
        await wait_until(lambda: fault_issue(hass) is None, within=10)
        assert coordinator.faults == {"p1": "unreachable"}
        diag = await async_get_config_entry_diagnostics(hass, entry)
        assert diag["hub"]["plug_faults"] == {"p1": "unreachable"}
        # an older firmware's push (no member) means fine
        push(online=True, dps={"1": False})
        await wait_for_state(hass, "switch.desk_lamp", "off")
        assert coordinator.faults == {}
        # the issue goes with the entry
        push(online=False, fault="key")
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert fault_issue(hass) is None


async def test_a_plug_that_leaves_the_hub_takes_its_issue_along(hass: HomeAssistant) -> None:
    """The inventory no longer has the faulty plug (removed on the hub by other means)."""
    plug: dict[str, Any] = {**PLUG, "online": False, "fault": "busy"}
    on_hub = True

    def inventory(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "inventory":
            if on_hub:
                conn.send(plug)
            hello = {k: v for k, v in HELLO.items() if k != "t"}
            conn.result(req, {**hello, "plugs": int(on_hub)})
        else:
            answer_all(conn, req)

    async with fake_hub(inventory, hello=[plug, HELLO]) as fake:
        entry = entry_for(
            fake.port, [("p1", "Desk lamp")], secret=FAKE_SECRET.decode(), hub_id="fake"
        )
        coordinator = await set_up(hass, entry)
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        on_hub = False
        await coordinator.async_refresh_inventory()
        assert fault_issue(hass) is None
        assert coordinator.faults == {}
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_issue_left_by_an_earlier_load_goes_when_the_plug_is_fine(
    hass: HomeAssistant,
) -> None:
    """A reload starts with no faults known: an issue of this hub's plug that is still in the
    registry (the fault cleared while the entry was not loaded) goes at the first report of the
    plug without a fault; another hub's issue stays."""
    for issue_id in ("hub_plug_fault_fake_p1", "hub_plug_fault_other_p1"):
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="hub_plug_busy",
        )
    async with fake_hub() as fake:  # p1 online, no fault
        entry = entry_for(
            fake.port, [("p1", "Desk lamp")], secret=FAKE_SECRET.decode(), hub_id="fake"
        )
        coordinator = await set_up(hass, entry)
        await wait_until(lambda: fault_issue(hass) is None, within=10)
        await wait_for_state(hass, "switch.desk_lamp", "on")
        assert coordinator.faults == {}
        assert ir.async_get(hass).async_get_issue(DOMAIN, "hub_plug_fault_other_p1") is not None
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_fixing_a_wrong_key_opens_the_plugs_settings(hass: HomeAssistant) -> None:
    """The ``hub_plug_key`` issue is fixable: its fix hands over to the plug subentry's
    reconfigure form, where the new local key goes to the hub (the plug is re-added with it)."""
    plug: dict[str, Any] = {**PLUG, "online": False, "fault": "key"}

    def hub_with_plug(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "inventory":
            if plug:
                conn.send(plug)
            hello = {k: v for k, v in HELLO.items() if k != "t"}
            conn.result(req, {**hello, "plugs": 1 if plug else 0})
        elif req["t"] == "remove":
            plug.clear()
            answer_all(conn, req)
        elif req["t"] == "add":
            # the hub takes the new key and reaches the plug: no fault any more
            added = req["plug"]
            plug.update({**PLUG, "id": added["id"], "host": added["host"], "online": True})
            conn.send(plug)
            conn.result(req, {"id": added["id"]})
        else:
            answer_all(conn, req)

    assert await async_setup_component(hass, "repairs", {})
    async with fake_hub(hub_with_plug, hello=lambda _: [plug, HELLO]) as fake:
        entry = entry_for(
            fake.port, [("p1", "Desk lamp")], secret=FAKE_SECRET.decode(), hub_id="fake"
        )
        await set_up(hass, entry)
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        issue = fault_issue(hass)
        assert issue is not None
        assert issue.is_fixable
        assert issue.data == {"entry_id": entry.entry_id, "device_id": "p1"}

        repairs = hass.data["repairs"]["flow_manager"]
        result = await repairs.async_init(DOMAIN, data={"issue_id": issue.issue_id})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        flow_type, flow_id = result["next_flow"]
        assert flow_type == "config_subentries_flow"
        form = hass.config_entries.subentries.async_get(flow_id)
        assert form["step_id"] == "reconfigure"
        result = await hass.config_entries.subentries.async_configure(
            flow_id,
            {
                "name": "Desk lamp",
                "host": "127.0.0.1",
                "local_key": KEYS[1],
                "protocol_version": "3_3",
                "port": 6668,
            },
        )
        assert result["type"] is FlowResultType.ABORT, result.get("errors")
        assert result["reason"] == "reconfigure_successful"
        add = next(r for r in fake.requests if r["t"] == "add")
        assert add["plug"]["id"] == "p1"
        await hass.async_block_till_done()
        assert fault_issue(hass) is None
        await wait_for_state(hass, "switch.desk_lamp", "on", within=BACK)
        # still the wrong key after all: the next report brings the issue back
        plug["fault"] = "key"
        fake.conns[-1].send({"t": "state", "id": "p1", "online": False, "fault": "key"})
        await wait_until(lambda: fault_issue(hass) is not None, within=10)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_fix_flow_of_a_plug_that_is_gone(hass: HomeAssistant) -> None:
    """A fix started after the plug (or its hub entry) went away ends with a clear reason and
    leaves the issue; an issue without plug data gets HA's plain confirmation."""
    assert await async_setup_component(hass, "repairs", {})
    repairs = hass.data["repairs"]["flow_manager"]
    async with fake_hub() as fake:
        entry = entry_for(fake.port, [], secret=FAKE_SECRET.decode(), hub_id="fake")
        await set_up(hass, entry)
        gone = {"hub_plug_fault_gone_p9": "no-such-entry", "hub_plug_fault_fake_p8": entry.entry_id}
        for issue_id, entry_id in gone.items():
            ir.async_create_issue(
                hass,
                DOMAIN,
                issue_id,
                data={"entry_id": entry_id, "device_id": issue_id[-2:]},  # no such subentry
                is_fixable=True,
                severity=ir.IssueSeverity.WARNING,
                translation_key="hub_plug_key",
            )
            result = await repairs.async_init(DOMAIN, data={"issue_id": issue_id})
            assert result["type"] is FlowResultType.ABORT
            assert result["reason"] == "plug_gone"
            assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
        ir.async_create_issue(
            hass,
            DOMAIN,
            "plain",
            is_fixable=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key="hub_plug_busy",
        )
        result = await repairs.async_init(DOMAIN, data={"issue_id": "plain"})
        assert result["step_id"] == "confirm"
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_reload_during_shutdown_opens_no_connection(hass: HomeAssistant) -> None:
    """A reload that lands after Home Assistant's stop event (a subentry changed just before)
    must not start a connection: nothing would close it (it made a test flaky under load)."""
    async with fake_hub() as fake:
        entry = entry_for(fake.port, [], secret=FAKE_SECRET.decode(), hub_id="fake")
        entry.add_to_hass(hass)
        coordinator = HubCoordinator(hass, entry)
        hass.set_state(CoreState.stopping)
        try:
            await coordinator.async_start()
        finally:
            hass.set_state(CoreState.running)
        assert not coordinator.client.connected
        assert hub_tasks() == []  # no supervisor: nothing connects later either
        await coordinator.async_start()  # running again: it connects
        await coordinator.client.wait_connected(10)
        await coordinator.async_shutdown()


async def test_a_hub_that_fails_to_store_the_lists_loses_no_plug(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub refuses the `profile` request (``storage``: its flash write failed,
    hub-protocol §7.3): a plug waiting for detection is detected all the same (the hub keeps
    the lists it has, a warning says so), and the plug's reconfigure step shows the error
    and changes nothing."""
    plug: dict[str, Any] = {
        **PLUG,
        "dps": {"1": True, "18": 435, "19": 1000, "20": 2300},  # no energy: not settled yet
        "refresh": [18, 19, 20],
    }

    def refusing(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] == "profile":
            conn.error(req, "storage", "cannot write plug list")
        elif req["t"] == "inventory":
            conn.send(plug)
            conn.result(req, {k: v for k, v in HELLO.items() if k != "t"})
        else:
            answer_all(conn, req)

    async with fake_hub(refusing, hello=lambda _: [plug, HELLO]) as fake:
        entry = entry_at(
            fake.port,
            [hub_plug_subentry("p1", "Desk lamp", detect_pending=True)],
            secret=FAKE_SECRET.decode(),
            hub_id="fake",
        )
        await set_up(hass, entry)
        sub = next(iter(entry.subentries.values()))
        await wait_until(lambda: "profile" in entry.subentries[sub.subentry_id].data, within=20)
        await hass.async_block_till_done()
        data = dict(entry.subentries[sub.subentry_id].data)
        assert "detect_pending" not in data
        assert data["profile"]["name"] == "standard"
        tried = [r for r in fake.requests if r["t"] == "profile"]
        assert [r.get("refresh") for r in tried] == [list(CANDIDATE_METERING_DPS), [18, 19, 20]]
        assert caplog.text.count("did not take the lists of plug p1: storage") == 2

        await wait_until(lambda: entry.state is ConfigEntryState.LOADED, within=15)
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, "plug"),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": sub.subentry_id},
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                "name": "Desk lamp",
                "host": "127.0.0.1",
                "protocol_version": "3_3",
                "port": 6668,
                "layout": "vendor",
                "outlets": 1,
                "usb": False,
                "power_divisor": "10",
                "voltage_divisor": "10",
            },
        )
        assert result["errors"] == {"base": "cannot_connect"}
        assert fake.requests[-1]["t"] == "profile"
        assert fake.requests[-1]["refresh"] == [101, 102, 103, 104]
        assert dict(entry.subentries[sub.subentry_id].data) == data
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_push_right_behind_a_set_result_is_not_undone(hass: HomeAssistant) -> None:
    """The hub confirms a set (its state push, then the result) and at once pushes another
    change of the same DP (the plug switched back, e.g. by its button), all in one TCP
    segment: Home Assistant shows the later state, not the confirmation read before it."""

    def confirm_then_switch_back(conn: FakeConn, req: dict[str, Any]) -> None:
        if req["t"] != "set":
            answer_all(conn, req)
            return
        records = [
            {"t": "state", "id": "p1", "online": True, "dps": req["dps"], "ts": 7},
            {"t": "result", "rid": req["rid"], "ok": True, "data": {"id": "p1", "dps": req["dps"]}},
            {"t": "state", "id": "p1", "online": True, "dps": {"1": True}, "ts": 8},
        ]
        conn.w.write(b"".join(conn.ch.seal(m) for m in records))

    async with fake_hub(confirm_then_switch_back) as fake:
        coordinator = await set_up(
            hass, entry_for(fake.port, [("p1", "Desk lamp")], secret=FAKE_SECRET.decode())
        )
        await wait_for_state(hass, "switch.desk_lamp", "on")
        assert await coordinator.async_set_dps("p1", {"1": False}) == {"1": False}
        await hass.async_block_till_done()
        assert coordinator.plug_dps("p1")["1"] is True
        assert hass.states.get("switch.desk_lamp").state == "on"

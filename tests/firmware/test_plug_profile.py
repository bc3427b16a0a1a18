"""A plug's profile given to `add` (docs/hub-protocol.md §7.3): the DPs the hub refreshes with
UPDATEDPS and the DPs it queries on a "device22" plug, instead of the 18/19/20 layout.

Firmware on the MicroPython unix port, plugs from tuya_sim with the "legacy" layout (metering
on DPs 4/5/6: current mA, power W x 10, voltage V x 10; no 18/19/20)."""

from __future__ import annotations

import json

import pytest

from custom_components.tuya_local_esp.hub import HubCommandError, HubProtocolError, StateUpdate
from custom_components.tuya_local_esp.hub.models import apply_state, offline, parse_plug

from .conftest import plug_record, running_plugs, wait_for

LEGACY_METER = ("4", "5", "6")


def _add_args(rec: dict[str, object]) -> dict[str, object]:
    return {"version": rec["ver"], "name": rec["name"], "port": rec["port"]}


async def test_refresh_list_drives_updatedps_and_survives_restart(hub_factory) -> None:
    """A legacy plug that reports power only when asked (UPDATEDPS): after `add` with
    refresh=[4, 5, 6] the hub's state pushes carry fresh 4/5/6 values; the list is in the
    inventory, persisted in plugs.json and used again after a restart."""
    async with running_plugs(2, profile="legacy", power_needs_updatedps=True) as sims:
        hub = hub_factory(heartbeat_s=1, refresh_s=1)
        await hub.start()
        client = hub.client()
        updates: list[StateUpdate] = []
        client.subscribe(updates.append)
        legacy, default = sims
        try:
            await client.connect()
            # switched on at the plug: power flows, but the plug reports it only on UPDATEDPS
            legacy.set_dps_local({"1": True})
            default.set_dps_local({"1": True})
            rec = plug_record(legacy)
            await client.add_plug(
                legacy.device_id, rec["key"], "127.0.0.1", refresh=[4, 5, 6], **_add_args(rec)
            )
            rec2 = plug_record(default)
            await client.add_plug(default.device_id, rec2["key"], "127.0.0.1", **_add_args(rec2))
            dev = legacy.device_id
            await wait_for(lambda: dev in client.inventory.plugs)
            assert client.inventory.plugs[dev].refresh == (4, 5, 6)
            assert client.inventory.plugs[default.device_id].refresh == (18, 19, 20)
            # two refreshes with all three meter DPs pushed, power > 0 (W x 10)
            await wait_for(
                lambda: (
                    sum(
                        1
                        for u in updates
                        if u.device_id == dev and all(k in u.dps for k in LEGACY_METER)
                    )
                    >= 2
                ),
                within=10,
            )
            await wait_for(lambda: client.inventory.plugs[dev].dps.get("5", 0) > 0)
            for k in LEGACY_METER:
                await wait_for(lambda k=k: client.inventory.plugs[dev].dps.get(k) == legacy.dps[k])
            # the default list asks a legacy plug for 18/19/20, which it does not have: its
            # power never reaches HA (the case the profile fixes)
            assert 0x12 in default.stats.commands
            # (only the first query's full state, when it came online, carried DP 5)
            assert sum(1 for u in updates if u.device_id == default.device_id and "5" in u.dps) <= 1
            stored = json.loads(hub.plugs_path.read_text())["plugs"]
            by_id = {p["id"]: p for p in stored}
            assert by_id[dev]["refresh"] == [4, 5, 6]
            assert "refresh" not in by_id[default.device_id]
        finally:
            await client.close()

        # restart: the stored list is used again
        hub.stop()
        updates.clear()
        await hub.start()
        client = hub.client()
        client.subscribe(updates.append)
        try:
            inv = await client.connect()
            assert inv.plugs[dev].refresh == (4, 5, 6)
            legacy.set_dps_local({"1": True})
            await wait_for(
                lambda: any(
                    u.device_id == dev and all(k in u.dps for k in LEGACY_METER) for u in updates
                ),
                within=10,
            )
        finally:
            await client.close()


async def test_empty_refresh_sends_no_updatedps(hub_factory) -> None:
    """refresh=[]: the hub never sends UPDATEDPS to that plug (heartbeats go on)."""
    async with running_plugs(1, profile="legacy") as sims:
        hub = hub_factory(heartbeat_s=1, refresh_s=1)
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            rec = plug_record(sims[0])
            await client.add_plug(
                sims[0].device_id, rec["key"], "127.0.0.1", refresh=[], **_add_args(rec)
            )
            dev = sims[0].device_id
            await wait_for(
                lambda: dev in client.inventory.plugs and client.inventory.plugs[dev].online
            )
            assert client.inventory.plugs[dev].refresh == ()
            # three heartbeats (1 s apart) mean the tick passed the refresh point (2 s after
            # online, then every 1 s) several times
            await wait_for(lambda: sims[0].stats.commands.count(0x09) >= 4, within=10)
            assert 0x12 not in sims[0].stats.commands
        finally:
            await client.close()


async def test_device22_queries_the_profile_dps(hub_factory) -> None:
    """A "device22" plug (DP_QUERY refused) is polled with CONTROL_NEW and nulls for the
    profile's DPs: with dps=[1..7] the legacy plug's 3/4/5/6/7 reach HA; the default list
    (1/9/17/18/19/20) would only find DP 1."""
    async with running_plugs(1, profile="legacy", device22=True) as sims:
        hub = hub_factory(refresh_s=0)
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            rec = plug_record(sims[0])
            await client.add_plug(
                sims[0].device_id,
                rec["key"],
                "127.0.0.1",
                refresh=[4, 5, 6],
                dps=["1", "2", "3", "4", "5", "6", "7"],
                **_add_args(rec),
            )
            dev = sims[0].device_id
            await wait_for(
                lambda: dev in client.inventory.plugs and client.inventory.plugs[dev].online
            )
            await hub.wait_log("is a device22 plug")
            # the log line comes before the CONTROL_NEW answer reaches HA: wait for the DPs
            await wait_for(
                lambda: {"1", "3", "4", "5", "6", "7"} <= set(client.inventory.plugs[dev].dps),
                within=15,
            )
            got = client.inventory.plugs[dev].dps
            for k in ("3", "4", "6", "7"):
                assert got[k] == sims[0].dps[k]
        finally:
            await client.close()


BAD_PROFILES = [
    ("refresh", [4, "5"]),
    ("refresh", [0]),
    ("refresh", [256]),
    ("refresh", [True]),
    ("refresh", "4,5,6"),
    ("refresh", list(range(1, 34))),
    ("dps", [4]),
    ("dps", ["x"]),
    ("dps", ["300"]),
    ("dps", {"1": None}),
]


async def test_bad_profile_is_refused_and_changes_nothing(hub_factory) -> None:
    """A malformed profile member: `bad_request`, nothing stored, no plug started; the hub
    goes on serving and takes the same plug with a good profile."""
    async with running_plugs(1, profile="legacy") as sims:
        hub = hub_factory()
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            rec = plug_record(sims[0])
            for member, value in BAD_PROFILES:
                bad = {**rec, member: value}
                with pytest.raises(HubCommandError) as err:
                    await client.request("add", lambda d: d, plug=bad)
                assert err.value.code == "bad_request", (member, value)
                assert sims[0].device_id not in client.inventory.plugs
                assert not hub.plugs_path.exists()
            good = {**rec, "refresh": [4, 5, 6], "dps": ["1", "4", "5", "6"]}
            await client.request("add", lambda d: d, plug=good)
            await wait_for(lambda: sims[0].device_id in client.inventory.plugs)
            assert client.inventory.plugs[sims[0].device_id].refresh == (4, 5, 6)
        finally:
            await client.close()


@pytest.mark.parametrize("refresh", [[4, "5"], [0], [256], [True], "4,5,6", {"4": 1}, [4.0], 4])
def test_client_refuses_a_malformed_refresh_member(refresh: object) -> None:
    """HA side: a `plug` message whose `refresh` is not a list of DP ids 1-255 is a protocol
    error (hub/models.py parses every member strictly), as for every other member."""
    msg = {"t": "plug", "id": "dev1", "name": "n", "ver": "3.3", "host": "192.0.2.1",
           "port": 6668, "online": True, "dps": {}, "ts": None, "refresh": refresh}  # fmt: skip
    with pytest.raises(HubProtocolError, match="refresh"):
        parse_plug(msg)


def test_client_reads_refresh_and_keeps_it_across_updates() -> None:
    """`refresh` parsed as a tuple (absent or null: None), kept by state pushes and offline."""
    base = {"t": "plug", "id": "dev1", "host": "192.0.2.1", "online": True}
    assert parse_plug(base).refresh is None
    assert parse_plug({**base, "refresh": None}).refresh is None
    assert parse_plug({**base, "refresh": []}).refresh == ()
    p = parse_plug({**base, "refresh": [4, 5, 6]})
    assert p.refresh == (4, 5, 6)
    upd = apply_state(p, StateUpdate(device_id="dev1", online=True, dps={"5": 10}, timestamp=1))
    assert upd.refresh == (4, 5, 6)
    assert upd.dps == {"5": 10}
    assert offline(upd).refresh == (4, 5, 6)

"""The `profile` request (docs/hub-protocol.md §7.3): a plug's refresh/dps lists changed
without its local key, stored on flash, used by the running plug without reconnecting.

Firmware on the MicroPython unix port; plugs from tuya_sim with the "legacy" layout (metering
on DPs 4/5/6) that report their meters only when asked with UPDATEDPS, so a state push
carrying 4/5/6 is the simulator's evidence that the hub's UPDATEDPS asked for those DPs (the
simulator answers an UPDATEDPS with the DPs it lists only, tuya_sim/server.py `updatedps`)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import HubCommandError, StateUpdate

from .conftest import plug_record, running_plugs, wait_for
from .test_plug_profile import BAD_PROFILES, LEGACY_METER


def _add_args(rec: dict[str, Any]) -> dict[str, Any]:
    return {"version": rec["ver"], "name": rec["name"], "port": rec["port"]}


def _stored(hub: Any, dev: str) -> dict[str, Any]:
    plugs = json.loads(hub.plugs_path.read_text())["plugs"]
    found: dict[str, Any] = next(p for p in plugs if p["id"] == dev)
    return found


def _meter_reports(updates: list[StateUpdate], dev: str) -> int:
    return sum(1 for u in updates if u.device_id == dev and all(k in u.dps for k in LEGACY_METER))


async def test_profile_applies_to_the_running_plug_and_survives_restart(hub_factory) -> None:
    """A legacy plug added with the default lists (18/19/20, which it lacks) never reports
    its meters; `profile` with refresh=[4,5,6] makes the hub ask for them at once, on the same
    connection; both clients get the `plug` push with the new list; the lists are in
    plugs.json (with the key untouched) and used again after a restart."""
    async with running_plugs(1, profile="legacy", power_needs_updatedps=True) as sims:
        sim = sims[0]
        dev = sim.device_id
        hub = hub_factory(heartbeat_s=1, refresh_s=1)
        await hub.start()
        client, other = hub.client(), hub.client()
        updates: list[StateUpdate] = []
        client.subscribe(updates.append)
        try:
            await client.connect()
            await other.connect()
            sim.set_dps_local({"1": True})  # power flows; reported only when asked
            rec = plug_record(sim)
            await client.add_plug(dev, rec["key"], "127.0.0.1", **_add_args(rec))
            await wait_for(
                lambda: dev in client.inventory.plugs and client.inventory.plugs[dev].online
            )
            # the default refresh asked for 18/19/20 at least twice: no meter came back
            await wait_for(lambda: sim.stats.commands.count(0x12) >= 2, within=10)
            updates.clear()
            assert sim.stats.accepted == 1

            await client.set_plug_profile(dev, [4, 5, 6], ["1", "4", "5", "6"])
            assert client.inventory.plugs[dev].refresh == (4, 5, 6)
            await wait_for(lambda: other.inventory.plugs[dev].refresh == (4, 5, 6))
            await wait_for(lambda: _meter_reports(updates, dev) >= 2, within=10)
            for k in LEGACY_METER:
                await wait_for(lambda k=k: client.inventory.plugs[dev].dps.get(k) == sim.dps[k])
            assert sim.stats.accepted == 1  # never reconnected
            assert client.inventory.plugs[dev].online
            stored = _stored(hub, dev)
            assert stored["refresh"] == [4, 5, 6]
            assert stored["dps"] == ["1", "4", "5", "6"]
            assert stored["key"] == rec["key"]
            assert stored["host"] == "127.0.0.1"
        finally:
            await client.close()
            await other.close()

        hub.stop()
        updates.clear()
        await hub.start()
        client = hub.client()
        client.subscribe(updates.append)
        try:
            inv = await client.connect()
            assert inv.plugs[dev].refresh == (4, 5, 6)
            await wait_for(lambda: _meter_reports(updates, dev) >= 1, within=10)
        finally:
            await client.close()


async def test_profile_back_to_defaults_and_empty_refresh(hub_factory) -> None:
    """Without members the plug goes back to the defaults (nothing stored, 18/19/20);
    refresh=[] stops UPDATEDPS at once; the same lists again are accepted and change nothing."""
    async with running_plugs(1, profile="legacy") as sims:
        sim = sims[0]
        dev = sim.device_id
        hub = hub_factory(heartbeat_s=1, refresh_s=1)
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            rec = plug_record(sim)
            await client.add_plug(
                dev, rec["key"], "127.0.0.1", refresh=[4, 5, 6], dps=["1", "4"], **_add_args(rec)
            )
            await wait_for(
                lambda: dev in client.inventory.plugs and client.inventory.plugs[dev].online
            )
            await client.set_plug_profile(dev, None, None)
            assert client.inventory.plugs[dev].refresh == (18, 19, 20)
            stored = _stored(hub, dev)
            assert "refresh" not in stored
            assert "dps" not in stored

            await client.set_plug_profile(dev, [], None)
            assert client.inventory.plugs[dev].refresh == ()
            assert _stored(hub, dev)["refresh"] == []
            sent = sim.stats.commands.count(0x12)
            beats = sim.stats.commands.count(0x09)
            await wait_for(lambda: sim.stats.commands.count(0x09) >= beats + 3, within=10)
            assert sim.stats.commands.count(0x12) == sent

            before = hub.plugs_path.stat().st_mtime_ns, hub.plugs_path.read_bytes()
            await client.set_plug_profile(dev, [], None)
            assert (hub.plugs_path.stat().st_mtime_ns, hub.plugs_path.read_bytes()) == before
            assert sim.stats.accepted == 1
        finally:
            await client.close()


async def test_bad_profile_or_unknown_plug_is_refused_and_changes_nothing(hub_factory) -> None:
    """Malformed lists → bad_request, an unknown or non-string id → unknown_device, a failed
    flash write → storage: plugs.json and the plug's lists stay as they were, the hub goes on
    serving, and a good request afterwards works."""
    async with running_plugs(1, profile="legacy") as sims:
        sim = sims[0]
        dev = sim.device_id
        hub = hub_factory()
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            rec = plug_record(sim)
            await client.add_plug(dev, rec["key"], "127.0.0.1", refresh=[4], **_add_args(rec))
            await wait_for(lambda: dev in client.inventory.plugs)
            before = hub.plugs_path.read_bytes()
            for member, value in BAD_PROFILES:
                with pytest.raises(HubCommandError) as err:
                    await client.request("profile", lambda d: d, id=dev, **{member: value})
                assert err.value.code == "bad_request", (member, value)
                assert hub.plugs_path.read_bytes() == before
            for bad_id in ("bfnosuchplug0000000000", 7, None, ["x"]):
                with pytest.raises(HubCommandError) as err:
                    await client.request("profile", lambda d: d, id=bad_id, refresh=[4, 5])
                assert err.value.code == "unknown_device", bad_id
            # the flash write fails (the temporary file's name is taken by a directory)
            tmp = hub.plugs_path.with_name("plugs.json.tmp")
            tmp.mkdir()
            with pytest.raises(HubCommandError) as err:
                await client.set_plug_profile(dev, [4, 5, 6], None)
            assert err.value.code == "storage"
            shutil.rmtree(tmp)
            assert hub.plugs_path.read_bytes() == before
            await client.refresh_inventory()
            assert client.inventory.plugs[dev].refresh == (4,)
            assert (await client.ping()) >= 0

            await client.set_plug_profile(dev, [4, 5, 6], None)
            assert client.inventory.plugs[dev].refresh == (4, 5, 6)
            assert _stored(hub, dev)["refresh"] == [4, 5, 6]
        finally:
            await client.close()

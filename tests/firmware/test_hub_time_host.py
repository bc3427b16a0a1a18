"""Hub firmware (MicroPython unix port): the `time` request and optional NTP (the hub takes
HA's clock when NTP is absent or unreachable), and the `host` request (a plug moved to a new
address). docs/hub-protocol.md §7.3; /work/HUB-ADDITIONS.md."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tuya_sim import SimulatedPlug

from .conftest import KEYS, plug_record, running_plugs, wait_for
from .fake_ntp import FakeNtp
from .rawhub import RawHub


@pytest.fixture
def ntp() -> Iterator[FakeNtp]:
    server = FakeNtp()
    yield server
    server.close()


@pytest.mark.parametrize("ntp_mode", ["unreachable", "none"])
async def test_set_works_with_time_from_ha_alone(hub_factory, ntp: FakeNtp, ntp_mode: str) -> None:
    """No NTP answer (or none configured): `set` is refused with no_time until HA sends its
    time, then works; bad times are refused; HA's later times are taken."""
    async with running_plugs(1) as sims:
        cfg = {"ntp_host": None}
        if ntp_mode == "unreachable":
            ntp.silent = True
            cfg = {"ntp_host": "127.0.0.1", "ntp_port": ntp.port}
        hub = hub_factory(plugs=[plug_record(sims[0])], **cfg)
        await hub.start()
        if ntp_mode == "unreachable":
            assert ntp.requests >= 1
            assert "NTP 127.0.0.1: no time (TimeoutError)" in hub.log()
        dev = sims[0].device_id
        raw = await RawHub.connect(hub.port)
        try:
            assert raw.hello["time_source"] is None
            await wait_for(lambda: sims[0].connections == 1)
            health = (await raw.request("health"))["data"]
            assert health["time_synced"] is False
            assert health["time_source"] is None
            res = await raw.request("set", id=dev, dps={"1": True})
            assert res["ok"] is False
            assert res["err"] == "no_time"

            for bad in (1_600_000_000, "1800000000", True, None, 1.8e9):
                res = await raw.request("time", time=bad)
                assert (res["ok"], res["err"]) == (False, "bad_request"), bad

            now = int(time.time())
            res = await raw.request("time", time=now)
            assert res["ok"] is True
            assert res["data"]["source"] == "ha"
            assert abs(res["data"]["time"] - now) <= 2
            health = (await raw.request("health"))["data"]
            assert health["time_synced"] is True
            assert health["time_source"] == "ha"

            want = not sims[0].dps["1"]
            res = await raw.request("set", id=dev, dps={"1": want})
            assert res["ok"] is True, res
            assert res["data"]["dps"] == {"1": want}
            assert sims[0].dps["1"] is want

            # a clock set by HA follows HA's later times (e.g. HA's own clock was corrected)
            res = await raw.request("time", time=now + 1000)
            assert res["data"]["source"] == "ha"
            assert abs(res["data"]["time"] - (now + 1000)) <= 2
            ping = await raw.request("ping")
            assert abs(ping["data"]["time"] - (now + 1000)) <= 5
        finally:
            await raw.close()
        assert "time set by Home Assistant" in hub.log()


async def test_ntp_time_kept_over_ha_time(hub_factory, ntp: FakeNtp) -> None:
    """NTP answered less than 24 h ago: HA's `time` does not override it; a difference over
    60 s is logged once."""
    ntp.offset = 500  # an NTP clock 500 s ahead of the host's, so the source is visible
    hub = hub_factory(ntp_host="127.0.0.1", ntp_port=ntp.port)
    await hub.start()
    raw = await RawHub.connect(hub.port)
    try:
        assert raw.hello["time_source"] == "ntp"
        now = int(time.time())
        assert abs(raw.hello["time"] - (now + 500)) <= 5
        for _ in range(2):
            res = await raw.request("time", time=now)
            assert res["ok"] is True
            assert res["data"]["source"] == "ntp"
            assert abs(res["data"]["time"] - (now + 500)) <= 5
        health = (await raw.request("health"))["data"]
        assert (health["time_source"], health["time_synced"]) == ("ntp", True)
    finally:
        await raw.close()
    assert hub.log().count("differs from NTP") == 1


async def test_ntp_host_name_refused(hub_factory) -> None:
    """An NTP server given by name is refused at start with a clear log line (its lookup
    would block the event loop); the hub runs and takes HA's time."""
    hub = hub_factory(ntp_host="pool.ntp.org")
    await hub.start()
    assert "ntp_host pool.ntp.org is not an IPv4 address" in hub.log()
    raw = await RawHub.connect(hub.port)
    try:
        assert raw.hello["time_source"] is None
        res = await raw.request("time", time=int(time.time()))
        assert res["data"]["source"] == "ha"
    finally:
        await raw.close()


async def test_plug_moved_to_a_new_host(hub_factory) -> None:
    """`host`: the plug (same device id and key) now answers at 127.0.0.2 on the same port;
    the hub stores the new host, reconnects there at once and pushes the new `plug` record;
    the same host again is a no-op; bad requests are refused and change nothing."""
    async with running_plugs(1) as sims:
        old = sims[0]
        dev = old.device_id
        hub = hub_factory(plugs=[plug_record(old)])
        await hub.start()
        raw = await RawHub.connect(hub.port)
        other = await RawHub.connect(hub.port)  # a second client also gets the push
        moved = SimulatedPlug(
            device_id=dev, local_key=KEYS[0], version="3.3", host="127.0.0.2", port=old.port
        )
        try:
            await wait_for(lambda: old.connections == 1)
            await old.stop()  # the plug leaves its old address ...
            await moved.start()  # ... and comes back at a new one (DHCP)
            raw.pushes.clear()

            res = await raw.request("host", id=dev, host="127.0.0.2")
            assert res == {"t": "result", "rid": res["rid"], "ok": True, "data": {"id": dev}}
            stored = json.loads(hub.plugs_path.read_text())["plugs"]
            assert [(p["id"], p["host"], p["port"]) for p in stored] == [
                (dev, "127.0.0.2", old.port)
            ]
            assert stored[0]["key"] == KEYS[0]
            assert not (hub.workdir / "plugs.json.tmp").exists()
            push = next(m for m in raw.pushes if m["t"] == "plug")
            assert (push["id"], push["host"], push["port"]) == (dev, "127.0.0.2", old.port)
            assert "key" not in push
            await wait_for(lambda: moved.connections == 1, within=5)
            await raw.wait_push(lambda m: m["t"] == "state" and m["online"], within=5)
            # the other client heard of the move too
            await other.wait_push(lambda m: m["t"] == "plug" and m["host"] == "127.0.0.2")

            await raw.request("time", time=int(time.time()))
            res = await raw.request("set", id=dev, dps={"1": not moved.dps["1"]})
            assert res["ok"] is True, res
            assert moved.stats.accepted == 1

            # same host: ok, nothing happens (no new connection, no push)
            raw.pushes.clear()
            res = await raw.request("host", id=dev, host="127.0.0.2")
            assert res["ok"] is True
            assert (await raw.request("ping"))["ok"] is True
            assert not [m for m in raw.pushes if m["t"] == "plug"]
            assert moved.stats.accepted == 1

            for fields, err in (
                ({"id": "nosuchdevice", "host": "127.0.0.3"}, "unknown_device"),
                ({"id": dev, "host": "plug.local"}, "bad_request"),
                ({"id": dev, "host": "300.1.2.3"}, "bad_request"),
                ({"id": dev, "host": 17}, "bad_request"),
                ({"id": dev}, "bad_request"),
            ):
                res = await raw.request("host", **fields)
                assert (res["ok"], res["err"]) == (False, err), fields
            stored = json.loads(hub.plugs_path.read_text())["plugs"]
            assert stored[0]["host"] == "127.0.0.2"
            assert moved.stats.accepted == 1
        finally:
            await raw.close()
            await other.close()
            await moved.stop()

        # the new host survives a restart of the hub
        hub.stop()
        await hub.start()
        raw = await RawHub.connect(hub.port)
        try:
            plug = next(m for m in raw.pushes if m["t"] == "plug")
            assert plug["host"] == "127.0.0.2"
        finally:
            await raw.close()
    hub.assert_no_secrets([KEYS[0]])

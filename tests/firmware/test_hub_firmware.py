"""End-to-end: hub firmware under MicroPython <-> hub client library, plugs from tuya_sim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct

import pytest

from custom_components.tuya_local_esp.hub import (
    HubAuthError,
    HubCommandError,
    HubConnectionError,
    StateUpdate,
)
from custom_components.tuya_local_esp.hub.protocol import ClientHandshake, RecordReader

from .conftest import SECRET, plug_record, running_plugs, wait_for


async def test_inventory_state_push_and_set_dps(hub_factory) -> None:
    async with running_plugs(2) as sims:
        hub = hub_factory(plugs=[plug_record(s, name=f"Plug {i}") for i, s in enumerate(sims)])
        await hub.start()
        client = hub.client()
        updates: list[StateUpdate] = []
        client.subscribe(updates.append)
        try:
            inv = await client.connect()
            assert inv.hub_id == "testhub"
            assert inv.protocol == 1
            assert set(inv.plugs) == {s.device_id for s in sims}
            assert inv.plugs[sims[0].device_id].name == "Plug 0"
            await wait_for(lambda: all(p.online for p in client.inventory.plugs.values()))
            dev = sims[0].device_id
            assert client.inventory.plugs[dev].dps["1"] == sims[0].dps["1"]

            # set DPS: confirmed by the plug (ACK then STATUS), reflected in the simulator
            want = not sims[0].dps["1"]
            confirmed = await client.set_dps(dev, {"1": want})
            assert confirmed == {"1": want}
            assert sims[0].dps["1"] is want
            await wait_for(
                lambda: any(u.device_id == dev and u.dps.get("1") is want for u in updates)
            )
            assert client.inventory.plugs[dev].dps["1"] is want

            # the hub answers without Nagle delays (state push + result are back-to-back
            # writes; with Nagle the result would wait for the peer's ~40 ms delayed ACK): the
            # firmware sets TCP_NODELAY on the HA connection and on every plug connection and
            # logs that the socket accepted it (the latency itself is in benchmarks/bench_hub.py)
            log = hub.log()
            assert re.search(r"srv: 127\.0\.0\.1:\d+ nodelay True", log), log
            for s in sims:
                assert f"plug: {s.device_id} nodelay True" in log
            assert "nodelay False" not in log

            # a change on the device (button press) is pushed with the hub's timestamp
            updates.clear()
            sims[1].set_dps_local({"20": 2411})
            await wait_for(lambda: any(u.dps.get("20") == 2411 for u in updates))
            upd = next(u for u in updates if u.dps.get("20") == 2411)
            assert upd.device_id == sims[1].device_id
            assert upd.online
            assert abs(upd.timestamp - int(__import__("time").time())) < 5

            with pytest.raises(HubCommandError) as err:
                await client.set_dps("nosuchdevice", {"1": True})
            assert err.value.code == "unknown_device"
            with pytest.raises(HubCommandError) as err:
                await client.set_dps(dev, {})
            assert err.value.code == "bad_request"

            rtt = await client.ping()
            assert 0 <= rtt < 2
            health = await client.health()
            assert health.plugs == 2
            assert health.plugs_online == 2
            assert health.clients == 1
            assert health.heap_free > 0
            assert health.rssi is None  # unix port: no Wi-Fi
        finally:
            await client.close()
    hub.assert_no_secrets([s.key_bytes().decode() for s in sims])


async def test_plug_offline_and_back(hub_factory) -> None:
    async with running_plugs(1) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        client = hub.client()
        updates: list[StateUpdate] = []
        client.subscribe(updates.append)
        try:
            await client.connect()
            dev = sims[0].device_id
            await wait_for(lambda: client.inventory.plugs[dev].online)
            await sims[0].stop()  # plug unplugged
            await wait_for(lambda: not client.inventory.plugs[dev].online)
            with pytest.raises(HubCommandError) as err:
                await client.set_dps(dev, {"1": True})
            assert err.value.code == "offline"
            await sims[0].start()  # same port; the hub reconnects with backoff (1-2 s)
            await wait_for(lambda: client.inventory.plugs[dev].online, within=10)
            assert await client.set_dps(dev, {"1": False}) == {"1": False}
        finally:
            await client.close()


@pytest.mark.parametrize("version", ["3.1", "3.4", "3.5"])
async def test_other_protocol_versions(hub_factory, version: str) -> None:
    async with running_plugs(1, version=version) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            dev = sims[0].device_id
            await wait_for(lambda: client.inventory.plugs[dev].online)
            assert client.inventory.plugs[dev].version == version
            want = not sims[0].dps["1"]
            assert await client.set_dps(dev, {"1": want}) == {"1": want}
            assert sims[0].dps["1"] is want
        finally:
            await client.close()


async def test_heartbeat_keeps_link_and_updatedps_refreshes_power(hub_factory) -> None:
    """Plug drops clients idle for 2.5 s and reports power only when asked with UPDATEDPS."""
    async with running_plugs(1, idle_timeout=2.5, power_needs_updatedps=True) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])], heartbeat_s=1, refresh_s=1)
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            dev = sims[0].device_id
            await wait_for(lambda: client.inventory.plugs[dev].online)
            assert await client.set_dps(dev, {"1": True}) == {"1": True}
            # power (DP 19, W x 10) appears only through the periodic UPDATEDPS refresh
            await wait_for(lambda: client.inventory.plugs[dev].dps.get("19", 0) > 0, within=5)
            await asyncio.sleep(3)  # longer than the plug's idle timeout
            assert sims[0].stats.idle_drops == 0
            assert sims[0].stats.accepted == 1
            assert 0x12 in sims[0].stats.commands
            assert 0x09 in sims[0].stats.commands
        finally:
            await client.close()


async def test_wrong_local_key_stays_offline(hub_factory) -> None:
    async with running_plugs(1) as sims:
        rec = plug_record(sims[0])
        rec["key"] = "wrongkey12345678"
        hub = hub_factory(plugs=[rec])
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            dev = sims[0].device_id
            await hub.wait_log(f"{dev} connection ended", within=10)
            assert not client.inventory.plugs[dev].online
            with pytest.raises(HubCommandError) as err:
                await client.set_dps(dev, {"1": True})
            assert err.value.code == "offline"
        finally:
            await client.close()
        hub.assert_no_secrets(["wrongkey12345678"])


async def test_wrong_secret_rejected_and_slowed_down(hub_factory) -> None:
    hub = hub_factory()
    await hub.start()
    loop = asyncio.get_running_loop()
    for n in range(3):
        bad = hub.client(secret="not-the-right-secret-at-all")
        t0 = loop.time()
        with pytest.raises(HubAuthError):
            await bad.connect()
        # each attempt waits for the delay earned by the previous failures (0, 0.25, 0.5 s)
        if n:
            assert loop.time() - t0 >= 0.25 * 2 ** (n - 1) * 0.9
        await hub.wait_log(f"failures={n + 1}")
    assert "next delay 1000 ms" in hub.log()
    # the right secret still gets through, after the current delay (1 s, below the timeout)
    good = hub.client()
    t0 = loop.time()
    await good.connect()
    assert loop.time() - t0 >= 0.9
    await good.close()
    hub.assert_no_secrets(["not-the-right-secret-at-all"])


async def _raw_session(port: int):
    """Authenticate with the sans-I/O handshake over a raw stream; returns the pieces."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hs = ClientHandshake(SECRET)
    writer.write(hs.hello())
    records = RecordReader()
    body: list[bytes] = []
    while not body:
        body = records.feed(await asyncio.wait_for(reader.read(1024), 5))
    writer.write(hs.receive_server_hello(body[0]))
    assert hs.channel is not None
    pending: list[bytes] = []
    while not pending:
        pending = records.feed(await asyncio.wait_for(reader.read(8192), 5))
    assert hs.channel.open(pending[0])["t"] == "hello"
    return reader, writer, hs.channel, records


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(5):
            while True:
                data = await reader.read(4096)
                if not data:
                    return True
    except ConnectionResetError:
        return True


async def test_tampered_record_rejected(hub_factory) -> None:
    hub = hub_factory()
    await hub.start()
    reader, writer, ch, _ = await _raw_session(hub.port)
    rec = bytearray(ch.seal({"t": "ping", "rid": 1}))
    rec[20] ^= 0x01  # flip one ciphertext bit
    writer.write(bytes(rec))
    assert await _closed(reader)
    writer.close()
    await hub.wait_log("bad record mac")


async def test_replayed_and_reordered_records_rejected(hub_factory) -> None:
    hub = hub_factory()
    await hub.start()
    reader, writer, ch, records = await _raw_session(hub.port)
    rec = ch.seal({"t": "ping", "rid": 7})
    writer.write(rec)
    got: list[bytes] = []
    while not got:
        got = records.feed(await asyncio.wait_for(reader.read(4096), 5))
    reply = ch.open(got[0])
    assert reply["rid"] == 7
    assert reply["ok"] is True
    writer.write(rec)  # replay
    assert await _closed(reader)
    writer.close()
    await hub.wait_log("bad record mac")

    # reordering: two sealed records sent in the wrong order
    reader, writer, ch, _ = await _raw_session(hub.port)
    first = ch.seal({"t": "ping", "rid": 1})
    second = ch.seal({"t": "ping", "rid": 2})
    writer.write(second + first)
    assert await _closed(reader)
    writer.close()


async def test_oversized_record_rejected(hub_factory) -> None:
    hub = hub_factory()
    await hub.start()
    reader, writer, _, _ = await _raw_session(hub.port)
    writer.write(struct.pack(">H", 4097) + b"\x00" * 64)
    assert await _closed(reader)
    writer.close()
    await hub.wait_log("exceeds 4096")
    # an oversized handshake record is refused too
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(struct.pack(">H", 60000))
    assert await _closed(reader)
    writer.close()


async def test_add_remove_plug_persisted(hub_factory) -> None:
    async with running_plugs(3) as sims:
        hub = hub_factory(max_plugs=2)
        await hub.start()
        client = hub.client()
        try:
            inv = await client.connect()
            assert inv.plugs == {}
            assert inv.max_plugs == 2
            for s in sims[:2]:
                rec = plug_record(s)
                await client.add_plug(
                    rec["id"],
                    rec["key"],
                    "127.0.0.1",
                    version="3.3",
                    name="Added " + rec["id"][-4:],
                    port=s.port,
                )
            stored = json.loads(hub.plugs_path.read_text())
            assert [p["id"] for p in stored["plugs"]] == [s.device_id for s in sims[:2]]
            assert not (hub.workdir / "plugs.json.tmp").exists()
            await wait_for(lambda: len(client.inventory.plugs) == 2)
            await wait_for(lambda: all(p.online for p in client.inventory.plugs.values()))

            rec = plug_record(sims[2])
            with pytest.raises(HubCommandError) as err:  # socket budget
                await client.add_plug(rec["id"], rec["key"], "127.0.0.1", port=sims[2].port)
            assert err.value.code == "limit"
            with pytest.raises(HubCommandError) as err:
                await client.add_plug(sims[0].device_id, rec["key"], "127.0.0.1")
            assert err.value.code == "exists"
            with pytest.raises(HubCommandError) as err:
                await client.add_plug("x", "short", "127.0.0.1")
            assert err.value.code == "bad_request"

            await client.remove_plug(sims[0].device_id)
            stored = json.loads(hub.plugs_path.read_text())
            assert [p["id"] for p in stored["plugs"]] == [sims[1].device_id]
            await wait_for(lambda: sims[0].connections == 0)
            with pytest.raises(HubCommandError) as err:
                await client.remove_plug(sims[0].device_id)
            assert err.value.code == "unknown_device"
            inv = await client.refresh_inventory()
            assert set(inv.plugs) == {sims[1].device_id}
        finally:
            await client.close()

        # restart the hub: the plug list survives, and a started client reconnects by itself
        client = hub.client(ping_interval=1.0)
        try:
            await client.start()
            await client.wait_connected(5)
            hub.stop()
            await wait_for(lambda: not client.connected, within=5)
            await hub.start()
            inv = await client.wait_connected(10)
            assert set(inv.plugs) == {sims[1].device_id}
            assert inv.plugs[sims[1].device_id].name == "Added " + sims[1].device_id[-4:]
        finally:
            await client.close()


async def test_client_limit(hub_factory) -> None:
    hub = hub_factory(max_clients=1)
    await hub.start()
    first = hub.client()
    try:
        await first.connect()
        with pytest.raises(HubConnectionError):  # the connection is closed at once
            await hub.client().connect()
        await hub.wait_log("refused: too many connections")
        assert await first.ping() >= 0
    finally:
        await first.close()
    second = hub.client()
    await wait_for(lambda: "disconnected" in hub.log())
    await second.connect()
    await second.close()


async def test_plug_stalling_mid_frame_is_dropped(hub_factory) -> None:
    """A plug that sends half a frame and stalls: the hub must drop the connection (a frame
    cannot be resynchronised after a timeout) and connect again."""
    from pathlib import Path

    vectors = json.loads(
        (Path(__file__).parents[1] / "vectors" / "synthetic_tinytuya_generated.json").read_text()
    )
    reply = next(v for v in vectors["vectors"] if v["name"].startswith("3.3 device DP_QUERY"))
    frame = bytes.fromhex(reply["frame_hex"])
    connections = 0

    async def stalling_plug(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await r.read(1024)  # DP_QUERY
        w.write(frame)  # full answer: the plug is online
        await r.read(1024)  # heartbeat
        w.write(frame[:20])  # half a frame, then silence
        await r.read(1024)
        w.close()

    srv = await asyncio.start_server(stalling_plug, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    rec = {
        "id": vectors["dev_id"],
        "key": vectors["local_key_ascii"],
        "host": "127.0.0.1",
        "port": port,
        "ver": "3.3",
        "name": "staller",
    }
    hub = hub_factory(plugs=[rec], heartbeat_s=1, refresh_s=0)
    try:
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: client.inventory.plugs[rec["id"]].dps.get("20") == 2305)
            await hub.wait_log("frame stalled mid-way", within=10)
            await wait_for(lambda: connections >= 2, within=10)
        finally:
            await client.close()
    finally:
        hub.stop()  # ends the fake plug's open connection too
        srv.close()
        await srv.wait_closed()


async def test_plugs_served_while_ha_is_away(hub_factory) -> None:
    async with running_plugs(1) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        dev = sims[0].device_id
        client = hub.client()
        await client.connect()
        await wait_for(lambda: client.inventory.plugs[dev].online)
        await client.close()
        sims[0].set_dps_local({"19": 1234})  # the plug reports while HA is away
        # HA comes back (as often as it takes the hub to get the push): the hello snapshot
        # holds what the plug reported meanwhile
        async with asyncio.timeout(15):
            while True:
                client = hub.client()
                try:
                    inv = await client.connect()
                finally:
                    await client.close()
                if inv.plugs[dev].dps.get("19") == 1234:
                    break
                await asyncio.sleep(0.1)
        assert inv.plugs[dev].online
        assert sims[0].stats.accepted == 1  # the plug connection was never interrupted


async def test_device22_plug_detected_and_polled(hub_factory) -> None:
    async with running_plugs(1, device22=True) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        dev = sims[0].device_id
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: "20" in client.inventory.plugs[dev].dps)
            assert "device22" in hub.log()
            assert 0x0D in sims[0].stats.commands
            want = not sims[0].dps["1"]
            assert await client.set_dps(dev, {"1": want}) == {"1": want}
        finally:
            await client.close()


async def test_large_frames_grow_the_buffer(hub_factory) -> None:
    """A plug with many DPs answers with a frame far larger than the initial 256-byte buffer."""
    extra = {str(100 + i): f"value-{i:02d}-padding" for i in range(30)}
    async with running_plugs(1, dps=extra) as sims:
        hub = hub_factory(plugs=[plug_record(sims[0])])
        await hub.start()
        dev = sims[0].device_id
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: client.inventory.plugs[dev].dps.get("129") == extra["129"])
            assert await client.set_dps(dev, {"1": True}) == {"1": True}
        finally:
            await client.close()


async def test_garbage_connections_do_not_hurt_the_hub(hub_factory) -> None:
    import random

    rnd = random.Random(1234)
    hub = hub_factory()
    await hub.start()
    for i in range(12):
        _reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        size = rnd.choice([1, 2, 21, 40, 200])
        garbage = bytes(rnd.getrandbits(8) for _ in range(size))
        if i % 3 == 0:  # a plausible client hello length with random content
            garbage = struct.pack(">H", 21) + garbage[:21].ljust(21, b"\0")
        writer.write(garbage)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    # HA's client gets back in by itself: refused while garbage holds the connection slots,
    # then served after at most the capped (3 s) delay
    client = hub.client(backoff_max=1)
    try:
        await client.start()
        await client.wait_connected(15)
        assert await client.ping() >= 0
    finally:
        await client.close()
    assert "failures=" in hub.log()
    assert hub.proc is not None
    assert hub.proc.poll() is None

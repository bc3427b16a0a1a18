"""Firmware updates over the hub channel (hub-protocol §7.3.1), end to end on the unix port.

The hub runs ``esp32/main.py`` with its data directory (config.json, plugs.json, ota.json and
the update slots) in the test's temporary directory; the updates are bundles built by
``scripts/build_firmware.py`` (x64 .mpy, as the unix port loads them) and sent by the
integration's own ``hub/update.py``. On a board the hub resets after the commit; the unix port
has no reset, so the process ends and the test starts it again, as the board would boot.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import HubClient, HubCommandError, HubConnectionError
from custom_components.tuya_local_esp.hub.models import parse_reply_object
from custom_components.tuya_local_esp.hub.update import (
    FirmwareBundle,
    FirmwareFile,
    install,
    load_bundle,
)

from .conftest import (
    ESP32,
    MICROPYTHON,
    ROOT,
    HubProcess,
    load_script,
    plug_record,
    running_plugs,
    wait_for,
)

NEW = "9.9.9"
OLD = re.search(r'FW_VERSION = "([^"]+)"', (ESP32 / "app.py").read_text())[1]  # running


def build_module() -> ModuleType:
    return load_script("build_firmware")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good bundle (version 9.9.9) and one whose app.py crashes at import (9.9.8)."""
    build = build_module()
    root = tmp_path_factory.mktemp("bundles")
    good = root / "good"
    build.build(good, "x64", NEW)
    broken_src = root / "broken_src"
    shutil.copytree(ESP32, broken_src)
    app = broken_src / "app.py"
    app.write_text(app.read_text() + '\nraise RuntimeError("broken build")\n')
    broken = root / "broken"
    build.build(broken, "x64", "9.9.8", broken_src)
    return {"good": good, "broken": broken}


def boot_again(hub: HubProcess, base: Path = ESP32) -> None:
    """Start the firmware again in the same directory, as a board boots after a reset (the
    configuration is not rewritten); ``base``: the modules installed over USB."""
    hub._spawn([MICROPYTHON, str(base / "main.py"), str(hub.config_path)])


async def boot_ready(hub: HubProcess, base: Path = ESP32) -> None:
    """boot_again, then wait until the firmware is ready."""
    boot_again(hub, base)
    await hub.wait_log("ready", within=30, start=hub._log_offset)


async def running_firmware(hub: HubProcess) -> str:
    """The firmware version a new client is told in the hello."""
    client = hub.client()
    try:
        return (await client.connect()).firmware
    finally:
        await client.close()


async def wait_exit(hub: HubProcess, within: float = 60) -> int:
    proc = hub.proc
    assert proc is not None
    await wait_for(lambda: proc.poll() is not None, within=within)
    return int(proc.returncode)


def ota_state(hub: HubProcess) -> dict[str, Any]:
    return dict(json.loads((hub.workdir / "ota.json").read_text()))


async def test_good_update_switches_restarts_and_reports_new_version(hub_factory, bundles) -> None:
    """A bundle sent from the integration's client is written into a slot, switched at the
    commit, the hub restarts into it, reports 9.9.9 in hello.fw, serves the plug, and once HA
    is connected confirms it: later boots stay on it."""
    async with running_plugs(1) as sims:
        hub = hub_factory(ota_confirm_s=1, plugs=[plug_record(s) for s in sims])
        await hub.start()
        config_before = hub.config_path.read_bytes()
        client = hub.client()
        inv = await client.connect()
        assert inv.firmware == OLD
        bundle = load_bundle(bundles["good"])
        seen: list[tuple[int, int]] = []
        try:
            assert await install(client, bundle, lambda s, t: seen.append((s, t))) == NEW
        finally:
            await client.close()
        assert seen[-1] == (bundle.size, bundle.size)
        assert [s for s, _ in seen] == sorted(s for s, _ in seen)
        assert await wait_exit(hub) == 0  # the restart after the commit
        assert "firmware 9.9.9 installed in ota_a; restarting" in hub.log()
        assert ota_state(hub)["try"] == "ota_a"
        for f in bundle.files:
            assert (hub.workdir / "ota_a" / f.name).read_bytes() == f.data

        await boot_ready(hub)
        client = hub.client()
        try:
            inv = await client.connect()
            assert inv.firmware == NEW
            await wait_for(lambda: client.inventory.plugs[sims[0].device_id].online, within=10)
            await client.sync_time()
            assert await client.set_dps(sims[0].device_id, {"1": False}) == {"1": False}
            await hub.wait_log("firmware 9.9.9 confirmed", within=15)
        finally:
            await client.close()
        state = ota_state(hub)
        assert state["good"] == "ota_a"
        assert "try" not in state
        assert hub.config_path.read_bytes() == config_before

        # a later boot stays on the confirmed version
        hub.stop()
        await boot_ready(hub)
        assert await running_firmware(hub) == NEW


async def test_bad_hash_refused_old_version_keeps_running(hub_factory, bundles) -> None:
    """A file whose content does not match its SHA-256 is refused with bad_hash at its last
    chunk; the slot is removed, nothing is switched, the old firmware keeps serving, and a
    restart still boots it."""
    hub = hub_factory(ota_confirm_s=1)
    await hub.start()
    good = load_bundle(bundles["good"])
    files = list(good.files)
    victim = files[3]
    files[3] = FirmwareFile(victim.name, victim.data[:-1] + b"\x00", victim.sha256)
    tampered = FirmwareBundle(good.version, good.mpy, tuple(files))
    client = hub.client()
    try:
        await client.connect()
        with pytest.raises(HubCommandError) as err:
            await install(client, tampered)
        assert err.value.code == "bad_hash"
        assert victim.name in err.value.message
        # still connected to the same running hub, which serves as before
        await client.ping()
        assert (await client.refresh_inventory()).firmware == OLD
        # the update is over: a chunk now is refused
        with pytest.raises(HubCommandError) as err:
            await client.request(
                "update_chunk", parse_reply_object, name=victim.name, offset=0, data=""
            )
        assert err.value.code == "bad_request"
    finally:
        await client.close()
    assert not (hub.workdir / "ota_a").exists()
    assert "try" not in ota_state(hub)
    assert hub.proc is not None
    assert hub.proc.poll() is None
    hub.stop()
    await boot_ready(hub)
    assert await running_firmware(hub) == OLD


async def test_update_that_crashes_at_boot_is_rolled_back(hub_factory, bundles) -> None:
    """A new version that crashes at every boot gets two boots, then the loader switches back
    to the last good set: the old version runs with its configuration and plug list intact."""
    async with running_plugs(1) as sims:
        hub = hub_factory(ota_confirm_s=1, plugs=[plug_record(s) for s in sims])
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: client.inventory.plugs[sims[0].device_id].online, within=10)
            config_before = hub.config_path.read_bytes()
            plugs_before = hub.plugs_path.read_bytes()
            await install(client, load_bundle(bundles["broken"]))
        finally:
            await client.close()
        assert await wait_exit(hub) == 0
        for boot in (1, 2):  # the broken version crashes at each boot (the board resets)
            boot_again(hub)
            assert await wait_exit(hub) == 1
            tail = hub.log()[hub._log_offset :]
            assert f"ota: boot {boot} of ota_a (trial)" in tail
            assert "broken build" in tail
        await boot_ready(hub)
        assert "did not come up in 2 boots; rolled back to the base set" in hub.log()
        state = ota_state(hub)
        assert "try" not in state
        assert state["failed"] == "9.9.8"
        assert hub.config_path.read_bytes() == config_before
        assert hub.plugs_path.read_bytes() == plugs_before
        client = hub.client()
        try:
            inv = await client.connect()
            assert inv.firmware == OLD
            await wait_for(lambda: client.inventory.plugs[sims[0].device_id].online, within=10)
            await client.sync_time()
            assert await client.set_dps(sims[0].device_id, {"1": False}) == {"1": False}
        finally:
            await client.close()


async def _begin_partial(client: HubClient, bundle: FirmwareBundle) -> FirmwareFile:
    """update_begin, then the largest file up to half of it, in chunks of the hub's size."""
    begun = await client.request(
        "update_begin",
        parse_reply_object,
        version=bundle.version,
        files=len(bundle.files),
        size=bundle.size,
        mpy=bundle.mpy,
    )
    chunk = begun["chunk"]
    f = max(bundle.files, key=lambda f: len(f.data))
    await client.request(
        "update_file", parse_reply_object, name=f.name, size=len(f.data), sha256=f.sha256
    )
    for offset in range(0, len(f.data) // 2, chunk):
        await client.request(
            "update_chunk",
            parse_reply_object,
            name=f.name,
            offset=offset,
            data=base64.b64encode(f.data[offset : offset + chunk]).decode(),
        )
    return f


async def test_connection_dropped_mid_update(hub_factory, bundles) -> None:
    """HA's connection drops in the middle of a file: the hub abandons the update and keeps
    running its old version; the next update_begin cleans the slot and a full update then
    works."""
    hub = hub_factory(ota_confirm_s=1)
    await hub.start()
    bundle = load_bundle(bundles["good"])
    client = hub.client()
    await client.connect()
    f = await _begin_partial(client, bundle)
    assert (hub.workdir / "ota_a" / f.name).exists()
    await client.close()
    await hub.wait_log(f"update to {NEW} abandoned")
    assert hub.proc is not None
    assert hub.proc.poll() is None
    client = hub.client()
    try:
        assert (await client.connect()).firmware == OLD
        await client.request(
            "update_begin",
            parse_reply_object,
            version=NEW,
            files=len(bundle.files),
            size=bundle.size,
            mpy=bundle.mpy,
        )
        assert list((hub.workdir / "ota_a").iterdir()) == []  # the partial file is gone
        await client.request("update_abort", parse_reply_object)
        assert not (hub.workdir / "ota_a").exists()
        assert await install(client, bundle) == NEW
    finally:
        await client.close()
    assert await wait_exit(hub) == 0
    await boot_ready(hub)
    assert await running_firmware(hub) == NEW


async def test_second_client_during_update_gets_busy(hub_factory, bundles) -> None:
    """Only one update at a time: a second client's update_begin and chunks are refused with
    busy while it still gets every other answer; once the first client aborts it may update."""
    async with running_plugs(1) as sims:
        hub = hub_factory(ota_confirm_s=1, plugs=[plug_record(s) for s in sims])
        await hub.start()
        bundle = load_bundle(bundles["good"])
        first, second = hub.client(), hub.client()
        try:
            await first.connect()
            await second.connect()
            f = await _begin_partial(first, bundle)
            with pytest.raises(HubCommandError) as err:
                await install(second, bundle)
            assert err.value.code == "busy"
            with pytest.raises(HubCommandError) as err:
                await second.request(
                    "update_chunk", parse_reply_object, name=f.name, offset=0, data="AAAA"
                )
            assert err.value.code == "busy"
            # the second client is served otherwise, plugs included
            await wait_for(lambda: second.inventory.plugs[sims[0].device_id].online, within=10)
            await second.sync_time()
            assert await second.set_dps(sims[0].device_id, {"1": False}) == {"1": False}
            health = await second.health()
            print(f"\nheap during an update: free={health.heap_free} alloc={health.heap_alloc}")
            # the first client's update was not disturbed: it goes on from where it was
            assert (hub.workdir / "ota_a" / f.name).stat().st_size >= len(f.data) // 2
            await first.request("update_abort", parse_reply_object)
            await second.request(
                "update_begin",
                parse_reply_object,
                version=NEW,
                files=len(bundle.files),
                size=bundle.size,
                mpy=bundle.mpy,
            )
            await second.request("update_abort", parse_reply_object)
        finally:
            await first.close()
            await second.close()
        assert hub.proc is not None
        assert hub.proc.poll() is None


async def test_bad_requests_and_incompatible_modules(hub_factory, bundles) -> None:
    """Malformed update requests get bad_request and change nothing; modules built for
    another architecture (the xtensawin bundle shipped with the integration) are refused with
    incompatible before anything is written."""
    hub = hub_factory(ota_confirm_s=1)
    await hub.start()
    bundle = load_bundle(bundles["good"])
    shipped = load_bundle(ROOT / "custom_components" / "tuya_local_esp" / "firmware")
    client = hub.client()
    try:
        await client.connect()
        with pytest.raises(HubCommandError) as err:
            await install(client, shipped)
        assert err.value.code == "incompatible"
        assert not (hub.workdir / "ota_a").exists()
        for fields in (
            {"version": "", "files": 1, "size": 10},
            {"version": NEW, "files": 0, "size": 10},
            {"version": NEW, "files": 1, "size": -1},
            {"version": NEW, "files": 1, "size": 10, "mpy": "x"},
        ):
            with pytest.raises(HubCommandError) as err:
                await client.request("update_begin", parse_reply_object, **fields)
            assert err.value.code == "bad_request", fields
        with pytest.raises(HubCommandError) as err:
            await client.request("update_commit", parse_reply_object)
        assert err.value.code == "bad_request"
        await client.request(
            "update_begin", parse_reply_object, version=NEW, files=2, size=100, mpy=bundle.mpy
        )
        sha = hashlib.sha256(b"x").hexdigest()
        for name in ("../app.mpy", "main.py", "App.mpy", "app.txt", 5):
            with pytest.raises(HubCommandError) as err:
                await client.request(
                    "update_file", parse_reply_object, name=name, size=1, sha256=sha
                )
            assert err.value.code == "bad_request", name
        await client.request("update_file", parse_reply_object, name="x.py", size=1, sha256=sha)
        for chunk in (
            {"name": "x.py", "offset": 1, "data": "eA=="},
            {"name": "y.py", "offset": 0, "data": "eA=="},
            {"name": "x.py", "offset": 0, "data": "!!"},
            {"name": "x.py", "offset": 0, "data": "eHg="},  # 2 bytes for a 1-byte file
        ):
            with pytest.raises(HubCommandError) as err:
                await client.request("update_chunk", parse_reply_object, **chunk)
            assert err.value.code == "bad_request", chunk
        await client.request("update_chunk", parse_reply_object, name="x.py", offset=0, data="eA==")
        with pytest.raises(HubCommandError) as err:  # 1 of 2 files
            await client.request("update_commit", parse_reply_object)
        assert err.value.code == "bad_request"
        await client.ping()
        assert (await client.refresh_inventory()).firmware == OLD
    finally:
        await client.close()
    assert "try" not in ota_state(hub)


async def test_safe_mode_after_repeated_failed_boots(hub_factory) -> None:
    """A confirmed firmware that failed to stay up for 4 boots in a row starts in safe mode:
    it serves HA but starts no plug (one of them may be what crashes it); once it has run
    ota_confirm_s the count restarts and the next boot is normal again."""
    async with running_plugs(1) as sims:
        hub = hub_factory(ota_confirm_s=1, plugs=[plug_record(s) for s in sims])
        await hub.start()
        await hub.wait_log("ota: boot 1 of the base set")
        await wait_for(lambda: ota_state(hub)["boots"] == 0, within=15)
        hub.stop()
        (hub.workdir / "ota.json").write_text(json.dumps({**ota_state(hub), "boots": 4}))
        await boot_ready(hub)
        assert "ota: boot 5 of the base set (safe mode)" in hub.log()
        client = hub.client()
        try:
            assert len((await client.connect()).plugs) == 0
        finally:
            await client.close()
        await wait_for(lambda: ota_state(hub)["boots"] == 0, within=15)
        hub.stop()
        await boot_ready(hub)
        client = hub.client()
        try:
            await client.connect()
            await wait_for(lambda: client.inventory.plugs[sims[0].device_id].online, within=10)
        finally:
            await client.close()


async def test_unconfirmed_trial_restarts_and_rolls_back(hub_factory, bundles) -> None:
    """A new version that boots but never sees Home Assistant restarts after ota_trial_s (a
    failed boot); after two of them the loader goes back to the old version."""
    hub = hub_factory(ota_confirm_s=1, ota_trial_s=2)
    await hub.start()
    client = hub.client()
    try:
        await client.connect()
        await install(client, load_bundle(bundles["good"]))
    finally:
        await client.close()
    assert await wait_exit(hub) == 0
    for _ in range(2):
        boot_again(hub)
        assert await wait_exit(hub) == 1
        assert "new firmware not confirmed in 2 s; restarting" in hub.log()[hub._log_offset :]
    await boot_ready(hub)
    assert "rolled back to the base set" in hub.log()
    assert await running_firmware(hub) == OLD


async def test_usb_install_replaces_the_updates(hub_factory, bundles, tmp_path: Path) -> None:
    """Modules installed over USB (the base set next to main.py) win over an update installed
    from Home Assistant: the loader sees the base set changed and runs it."""
    base = tmp_path / "usb"
    shutil.copytree(ESP32, base)
    hub = hub_factory(ota_confirm_s=1)
    await hub.start()
    client = hub.client()
    try:
        await client.connect()
        await install(client, load_bundle(bundles["good"]))
    finally:
        await client.close()
    assert await wait_exit(hub) == 0
    await boot_ready(hub, base)  # the same base set: the update runs
    client = hub.client()
    try:
        assert (await client.connect()).firmware == NEW
        await hub.wait_log("firmware 9.9.9 confirmed", within=15)
    finally:
        await client.close()
    hub.stop()
    app = base / "app.py"  # a USB install of another version
    app.write_text(app.read_text().replace(f'FW_VERSION = "{OLD}"', 'FW_VERSION = "1.0.0-usb"'))
    await boot_ready(hub, base)
    assert "ota: modules installed over USB; they replace the updates" in hub.log()
    assert await running_firmware(hub) == "1.0.0-usb"
    assert "good" not in ota_state(hub)


async def test_update_in_the_memory_test_heap_with_eight_plugs(hub_factory, bundles) -> None:
    """The whole update runs in a 106 KiB heap at 64 bits (test_memory.py's 102 KiB plus
    4 KiB: firmware 0.2.0 failed there, 3 of 3 runs, and passed at 104 KiB, 2 of 2), 8 plugs
    online, modules precompiled as deployed, while the plugs keep pushing: no
    MemoryError, the commit succeeds, and the update module is gone from the heap when an
    update is abandoned (heap back to its level before the update).

    Measured before firmware 0.2.0, with 256-byte chunks: passes at 100 KiB (3 of 3 runs),
    fails at 98 KiB (3 of 3:
    a 464-533 byte allocation), where the steady state of test_memory.py still passes; with
    512-byte chunks it failed up to 106 KiB (the 685-byte base64 string of a chunk found no
    hole that large in the fragmented heap)."""
    async with running_plugs(8) as sims:
        hub = hub_factory(
            heapsize="106k",
            compiled=True,
            max_plugs=8,
            plugs=[plug_record(s) for s in sims],
            log_level="info",
        )
        await hub.start()
        bundle = load_bundle(bundles["good"])
        client = hub.client()
        try:
            await client.connect()
            await wait_for(
                lambda: sum(p.online for p in client.inventory.plugs.values()) == 8, within=15
            )
            before = await client.health()
            f = await _begin_partial(client, bundle)
            during = await client.health()
            for i, s in enumerate(sims):
                s.set_dps_local({"19": 500 + i})
            await client.request("update_abort", parse_reply_object)
            after = await client.health()
            print(
                f"\nheap alloc before an update {before.heap_alloc}, during {during.heap_alloc}"
                f" (file {f.name} half written), after abandoning it {after.heap_alloc}"
            )
            assert after.heap_alloc < before.heap_alloc + 2048
            assert await install(client, bundle) == NEW
        except Exception:
            print("HUBLOG", hub.log()[-2500:])
            raise
        finally:
            await client.close()
        assert await wait_exit(hub) == 0
        assert "MemoryError" not in hub.log()


@pytest.mark.parametrize("heap", ["94k", "97k"])
async def test_an_update_that_runs_out_of_memory_leaves_the_hub_serving(
    hub_factory, bundles, heap
) -> None:
    """Low memory in an update (8 plugs in a heap 10 or 7 KiB below what an update needs): the
    hub drops the updating connection cleanly (no silent, half-closed connection left behind:
    the clean-up does not need ota.py), keeps its plugs and its firmware, and lets HA back in.

    At 94 KiB the MemoryError strikes while ota.py (or otaboot.py) is being imported; at 97 KiB
    mostly mid-update, between chunks (the update is abandoned). In the import, MicroPython
    then keeps the half-loaded module in the heap (its sys.modules slot keeps the value), and
    at this heap that left no room for the next handshake: HA could not get back in (a zombie,
    1 run in 5) until board.unload freed it. HA's client retries by itself, as it does in
    Home Assistant, so the test waits for conditions: connected, inventory, plugs online, a
    command answered."""
    async with running_plugs(8) as sims:
        hub = hub_factory(
            heapsize=heap,
            compiled=True,
            max_plugs=8,
            plugs=[plug_record(s) for s in sims],
            log_level="info",
        )
        await hub.start()
        client = hub.client(backoff_max=1)
        try:
            # (at this heap even a first handshake may fail while the 8 plugs connect)
            await client.start()
            await client.wait_connected(within=30)
            await wait_for(
                lambda: sum(p.online for p in client.inventory.plugs.values()) == 8, within=30
            )
            with pytest.raises((HubConnectionError, HubCommandError)):
                await install(client, load_bundle(bundles["good"]))
        finally:
            await client.close()
        assert hub.proc is not None
        assert hub.proc.poll() is None, hub.log()[-2000:]
        assert "MemoryError" in hub.log()
        assert "Task exception wasn't retrieved" not in hub.log()
        again = hub.client(backoff_max=1)
        try:
            await again.start()
            inventory = await again.wait_connected(within=60)
            assert inventory.firmware == OLD
            await wait_for(
                lambda: sum(p.online for p in again.inventory.plugs.values()) == 8, within=30
            )
            assert await again.ping() >= 0
            assert await again.set_dps(sims[0].device_id, {"1": False}) == {"1": False}
        finally:
            await again.close()
        assert hub.proc.poll() is None, hub.log()[-2000:]  # served, not restarted
        assert "lost for lack of memory" not in hub.log()
        assert "firmware 9.9.9 installed" not in hub.log()


async def test_a_hub_whose_heap_can_no_longer_serve_ha_restarts(hub_factory) -> None:
    """The backstop behind the test above: when connection after connection is lost to
    MemoryError before HA is served (injected before the hello, every time), the hub stops
    feeding its watchdog once 8 or more in a row have spanned 20 s, and the watchdog ends it
    (exit 1, as a board resets) instead of leaving a process that runs but never lets HA in."""
    hub = hub_factory(test_hello_faults=1000, watchdog_ms=3000)
    await hub.start()
    client = hub.client(backoff_max=0.5)
    try:
        await client.start()
        assert await wait_exit(hub, within=90) == 1
    finally:
        await client.close()
    log = hub.log()
    assert re.search(r"E srv: \d+ connections in a row lost for lack of memory; the watchdog", log)
    assert "watchdog: not fed for 3000 ms" in log
    assert log.count("injected hello failure") >= 8


async def test_a_few_connections_lost_to_memory_errors_do_not_restart_the_hub(
    hub_factory,
) -> None:
    """Seven connections in a row lost to MemoryError (fewer than the backstop's 8): HA's client
    retries, the eighth gets in, the count starts again, and the watchdog keeps being fed: the
    hub is not restarted."""
    hub = hub_factory(test_hello_faults=7, watchdog_ms=3000)
    await hub.start()
    client = hub.client(backoff_max=0.5)
    try:
        await client.start()
        await client.wait_connected(within=60)
        assert await client.ping() >= 0
        assert hub.log().count("injected hello failure") == 7
        # the hub's own clock passes the watchdog's 3 s twice over: it is still fed
        up0 = (await client.health()).uptime_s
        async with asyncio.timeout(60):
            while (await client.health()).uptime_s < up0 + 6:  # noqa: ASYNC110 - polling the hub's uptime
                await asyncio.sleep(0.2)
    finally:
        await client.close()
    assert hub.proc is not None
    assert hub.proc.poll() is None
    assert "lost for lack of memory" not in hub.log()


async def test_health_reports_the_trial(hub_factory, bundles) -> None:
    """health.trial (hub-protocol §7.3.1): false on a confirmed firmware, true from the first
    boot of an update until the hub confirms it (update_begin is refused with busy meanwhile),
    then false again."""
    hub = hub_factory(ota_confirm_s=10)
    await hub.start()
    client = hub.client()
    try:
        await client.connect()
        assert (await client.health()).trial is False
        await install(client, load_bundle(bundles["good"]))
    finally:
        await client.close()
    assert await wait_exit(hub) == 0
    await boot_ready(hub)
    client = hub.client()
    try:
        assert (await client.connect()).firmware == NEW
        assert (await client.health()).trial is True
        with pytest.raises(HubCommandError) as err:
            await install(client, load_bundle(bundles["good"]))
        assert err.value.code == "busy"
        assert "on trial" in err.value.message
        await hub.wait_log("firmware 9.9.9 confirmed", within=60)
        assert (await client.health()).trial is False
    finally:
        await client.close()

"""Fault tests of the hub firmware's plug side and board (issue 8 items 2-3, issue 11 item 6).

The firmware runs on the MicroPython unix port; plugs are tuya_sim simulators or bare loopback
sockets that misbehave: a blackholed address (a listener with a full backlog that never accepts:
the SYN is dropped, so the connect hangs until the hub's timeout), a refused port, and a plug that
accepts and never answers. Faults inside the firmware come from its test-only hook (config
"test_faults", esp32/plug.py fault()): MemoryError in the tick, in one plug's tick and in a
connection task, and the tick task killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import HubError

from .conftest import (
    ESP32,
    MICROPYTHON,
    HubProcess,
    free_port,
    plug_record,
    running_plugs,
    wait_for,
)

FAST = {"plug_connect_ms": 300, "plug_reply_ms": 300, "plug_backoff_max_s": 1}


def open_sockets(pid: int) -> int:
    """Sockets the process holds open (Linux /proc/<pid>/fd)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed while we list
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return n


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port whose connects hang: listen(0) with one connection already queued and
    never accepted, so Linux drops further SYNs (accept queue full)."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = int(lsn.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        with pytest.raises(TimeoutError):  # the trick works on this kernel
            probe.connect(("127.0.0.1", port))
        yield port
    finally:
        probe.close()
        filler.close()
        lsn.close()


@contextlib.asynccontextmanager
async def silent_plug() -> AsyncIterator[tuple[int, list[int]]]:
    """Accepts connections, reads and discards everything, never answers; yields (port,
    [accepted count])."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while await reader.read(1024):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), accepted
    finally:
        server.close()


def fake_plug(dev: str, port: int) -> dict[str, object]:
    return {
        "id": dev,
        "key": "0123456789abcdef",
        "host": "127.0.0.1",
        "port": port,
        "ver": "3.3",
        "name": dev,
    }


def ended(hub: HubProcess, dev: str, why: str) -> int:
    """Connection attempts of `dev` that ended with `why` (a log line of plug.py)."""
    return len(re.findall(rf"{dev} connection ended: {why}", hub.log()))


async def test_plug_sockets_stay_within_budget(hub_factory: Any) -> None:
    """Unreachable, refusing and silent plugs over many connect cycles: the hub holds at most
    one socket per plug plus its listener and HA's connection, and every socket is closed when
    the plugs are removed (before the fix an unreachable plug leaked one socket per attempt)."""
    refused = free_port()
    with blackhole() as hole:
        async with silent_plug() as (quiet, accepted), running_plugs(1) as sims:
            plugs = [
                fake_plug("blackholed", hole),
                fake_plug("refusing", refused),
                fake_plug("silent", quiet),
                plug_record(sims[0]),
            ]
            hub = hub_factory(plugs=plugs, log_level="info", **FAST)
            await hub.start()
            assert hub.proc is not None
            pid = hub.proc.pid
            client = hub.client()
            try:
                await client.connect()
                dev = sims[0].device_id
                await wait_for(lambda: client.inventory.plugs[dev].online)
                budget = 1 + 1 + len(plugs)  # listener, HA, one per plug
                seen: list[int] = []

                def cycles_done() -> bool:
                    seen.append(open_sockets(pid))
                    return (
                        ended(hub, "blackholed", "TimeoutError connect") >= 6
                        and ended(hub, "refusing", "OSError") >= 6
                        and ended(hub, "silent", "TimeoutError no reply") >= 6
                        and accepted[0] >= 6
                    )

                await wait_for(cycles_done, within=60, interval=0.02)
                print(f"\nopen sockets over {len(seen)} samples: max {max(seen)}, budget {budget}")
                assert max(seen) <= budget, seen
                # the good plug and HA were served throughout
                assert client.inventory.plugs[dev].online
                assert await client.set_dps(dev, {"1": False}) == {"1": False}
                # removing the plugs (cancelling connects in flight) closes their sockets
                for p in plugs:
                    await client.remove_plug(str(p["id"]))
                await wait_for(lambda: open_sockets(pid) == 2, within=10)
            finally:
                await client.close()
            assert hub.proc.poll() is None
            assert "Traceback" not in hub.log()


async def test_tick_and_plugs_survive_injected_faults(hub_factory: Any) -> None:
    """MemoryError injected in the tick round, in one plug's tick and in connection tasks, and
    the tick task killed twice: the supervisor restarts the tick, HA keeps being served, the
    plugs reconnect and a plug that goes away comes back."""
    faults = {"tick": 3, "plug_tick": 4, "plug_rx": 3, "connect": 2, "kill_tick": 2}
    async with running_plugs(3) as sims:
        hub = hub_factory(
            plugs=[plug_record(s) for s in sims],
            log_level="info",
            test_faults=dict(faults),
            plug_backoff_max_s=1,
        )
        await hub.start()
        client = hub.client()
        try:
            await client.connect()
            # every fault fired (the hook logs each one) ...
            await wait_for(
                lambda: all(hub.log().count(f"injected at {k}") == n for k, n in faults.items()),
                within=30,
            )
            assert hub.log().count("task ended; restarting it") == faults["kill_tick"]
            # ... and afterwards all plugs are online, commands work, HA is still served
            await wait_for(
                lambda: all(p.online for p in client.inventory.plugs.values()), within=15
            )
            for s in sims:
                want = not s.dps["1"]
                assert await client.set_dps(s.device_id, {"1": want}) == {"1": want}
            assert (await client.health()).plugs_online == 3
            # the restarted tick still drives reconnections
            dev = sims[1].device_id
            await sims[1].stop()
            await wait_for(lambda: not client.inventory.plugs[dev].online)
            await sims[1].start()
            await wait_for(lambda: client.inventory.plugs[dev].online, within=15)
        finally:
            await client.close()
        assert hub.proc is not None
        assert hub.proc.poll() is None, hub.log()


async def test_health_reports_board_members(hub_factory: Any) -> None:
    """HUB-ADDITIONS item 3: reset cause and IDF heap are null on the unix port; the
    MicroPython heap's free bytes are reported, its largest block where readable (not here)."""
    hub = hub_factory()
    await hub.start()
    client = hub.client()
    try:
        await client.connect()
        health = await client.health()
    finally:
        await client.close()
    assert health.reset_cause is None
    assert health.idf_heap_free is None
    assert health.idf_heap_largest is None
    assert health.mp_heap_largest is None
    assert isinstance(health.mp_heap_free, int)
    assert health.mp_heap_free == health.heap_free > 0
    assert health.extra == {}


async def test_crash_in_run_exits_nonzero(tmp_path: Path) -> None:
    """The event loop dying (here: the HA port already taken, so the server cannot start) does
    not leave the process idle at a prompt: main.py logs it and exits with status 1 (a board
    resets instead)."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    hub = HubProcess(tmp_path, port=int(taken.getsockname()[1]))
    hub.config_path.write_text(json.dumps(hub.config))
    try:
        hub._spawn([MICROPYTHON, str(ESP32 / "main.py"), str(hub.config_path)])
        assert hub.proc is not None
        proc = hub.proc
        await wait_for(lambda: proc.poll() is not None, within=20)
        assert proc.returncode == 1
        assert "main: hub crashed: OSError" in hub.log()
    finally:
        hub.stop()
        taken.close()


async def test_bad_hub_id_refused_at_boot(tmp_path: Path) -> None:
    """A hub_id that would not fit the DHCP hostname (20 characters) is a configuration
    error with a clear message, not a silently missing hostname."""
    hub = HubProcess(tmp_path, hub_id="a" * 20)
    hub.config_path.write_text(json.dumps(hub.config))
    try:
        hub._spawn([MICROPYTHON, str(ESP32 / "main.py"), str(hub.config_path)])
        assert hub.proc is not None
        proc = hub.proc
        await wait_for(lambda: proc.poll() is not None, within=20)
        assert "hub_id must be 1-19 characters" in hub.log()
    finally:
        hub.stop()


async def _serves(hub: HubProcess, sims: list[Any]) -> bool:
    """One HA session: connect, every plug online, one command each. False on any failure."""
    client = hub.client(timeout=3)
    try:
        first = await client.connect()
        await wait_for(
            lambda: all(p.online for p in (client.inventory or first).plugs.values()), within=8
        )
        await asyncio.gather(*(client.set_dps(s.device_id, {"1": True}) for s in sims))
    except HubError, TimeoutError:
        return False
    finally:
        with contextlib.suppress(HubError):
            await client.close()
    return True


@pytest.mark.parametrize("squeeze_kb", [16, 24])
async def test_memory_pressure_never_leaves_a_zombie(hub_factory: Any, squeeze_kb: int) -> None:
    """Real allocation failures at random points: for 8 s the hub's tick holds `squeeze_kb`
    KiB of its 96 KiB heap (test hook plug.squeeze) while HA keeps connecting and commanding.
    Afterwards the hub serves again, or, if the pressure killed something it cannot restart
    (the accept loop), its watchdog ends it (exit 1, as a board resets) and the restarted hub
    serves: never a live process that no longer serves."""
    async with running_plugs(4) as sims:
        hub = hub_factory(
            heapsize="96k",
            compiled=True,
            plugs=[plug_record(s) for s in sims],
            log_level="info",
            plug_backoff_max_s=1,
            watchdog_ms=4000,
            test_faults={"squeeze": 16, "squeeze_kb": squeeze_kb},
        )
        await hub.start()
        assert hub.proc is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + 8
        while loop.time() < end and hub.proc.poll() is None:
            await _serves(hub, sims)  # failures expected while squeezed
        assert "MemoryError" in hub.log()  # the pressure did hit
        deadline = loop.time() + 30
        restarted = False
        while not await _serves(hub, sims):
            assert loop.time() < deadline, hub.log()[-3000:]
            if hub.proc.poll() is not None:
                # only the watchdog (or a crash report) may end it, never a silent death
                assert hub.proc.returncode == 1, hub.log()[-3000:]
                assert "main: hub crashed" in hub.log()
                assert not restarted
                restarted = True
                hub.config.pop("test_faults")
                await hub.start()  # the board after its reset
        print(f"\nsqueeze {squeeze_kb} KiB: served again, restarted={restarted}")
        assert hub.proc.poll() is None

"""Record conversations between the real client and the simulator into ``tests/vectors/recorded/``.

Run ``.venv/bin/python -m tests.record_conversations`` after a deliberate change of the simulator's
wire behaviour; ``tests/test_replay.py`` replays the files against the client. Each file holds the
message-level transcript of one connection (``SimulatedPlug(record=True)``) and the results the
client got (``expect``), so that a replay must give the client exactly the same results.

Scenario (one connection): connect (3.4/3.5 handshake, first status query), ``status()``,
``set_dps({"1": True})`` (ACK + STATUS), a button press on the plug (STATUS push),
``heartbeat()``, ``update_dps([18, 19, 20])`` (ACK + STATUS), close.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from custom_components.tuya_local_esp.tuya import TuyaDevice
from tuya_sim import SimulatedPlug

from .replay import RECORDED, Collector

DEVICE_ID = "bf7a3c9e2d14f8b6ac01"
LOCAL_KEY = "0123456789abcdef"
VERSIONS = ("3.1", "3.3", "3.4", "3.5")


async def record(version: str, *, seed: int = 11) -> dict[str, Any]:
    """Play the scenario against a recording simulator; return the recording."""
    expect: dict[str, Any] = {}
    pushes = Collector()
    async with SimulatedPlug(
        device_id=DEVICE_ID, local_key=LOCAL_KEY, version=version, seed=seed, record=True
    ) as plug:
        dev = TuyaDevice(
            "127.0.0.1",
            DEVICE_ID,
            LOCAL_KEY,
            version=version,
            port=plug.port,
            heartbeat_interval=3600,
        )
        async with asyncio.timeout(60):
            await dev.connect()
            try:
                dev.subscribe(pushes)
                expect["status"] = await dev.status()
                expect["set"] = await dev.set_dps({"1": True})
                plug.set_dps_local({"1": False})
                await pushes.wait_count(2)  # the STATUS after set_dps, then the button
                expect["button"] = pushes.items[-1]
                await dev.heartbeat()
                await dev.update_dps([18, 19, 20])
                await pushes.wait_count(3)
                expect["refresh"] = pushes.items[-1]
                expect["pushes"] = list(pushes.items)
            finally:
                await dev.close()
            await plug.wait_connections(0)
        steps = [dict(e) for e in plug.transcript]
    return {
        "_source": "recorded from tuya_sim by tests/record_conversations.py (real client)",
        "version": version,
        "device_id": DEVICE_ID,
        "local_key": LOCAL_KEY,
        "expect": expect,
        "steps": steps,
    }


async def _main(versions: tuple[str, ...]) -> None:
    RECORDED.mkdir(parents=True, exist_ok=True)
    for version in versions:
        data = await record(version)
        path = RECORDED / f"sim_v{version.replace('.', '')}.json"
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {path} ({len(data['steps'])} steps)")


if __name__ == "__main__":
    asyncio.run(_main(tuple(sys.argv[1:]) or VERSIONS))

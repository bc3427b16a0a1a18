"""Check a running Home Assistant with the demo entries of scripts/demo.py (check_ha_version.sh).

Run by the Python of the Home Assistant venv under test (it needs aiohttp, nothing of ours).
Through HA's REST and WebSocket APIs it: onboards an owner and gets an access token; waits until
every ``tuya_local_esp`` config entry is ``loaded`` and the hub has one subentry per plug behind
it; checks that every switch and sensor of the integration has a state (not ``unavailable``);
toggles the switch of a direct plug and of a plug behind the hub, waits for HA's state and reads
the plug's DP 1 from the simulator with tinytuya (an independent peer, run by
``--tinytuya-python``); toggles back; and fails on any WARNING/ERROR/CRITICAL record of
``custom_components.tuya_local_esp`` or any deprecation report naming the integration in
``home-assistant.log``. Exit status 0 = all passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

DOMAIN = "tuya_local_esp"
TIMEOUT = 240.0
FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILURES.append(what)


class WS:
    """A minimal WebSocket API client (one command at a time)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1

    async def call(self, msg_type: str, **kwargs: Any) -> Any:
        msg_id = self.next_id
        self.next_id += 1
        await self.ws.send_json({"id": msg_id, "type": msg_type, **kwargs})
        while True:
            reply = await self.ws.receive_json(timeout=60)
            if reply.get("id") == msg_id and reply.get("type") == "result":
                if not reply["success"]:
                    raise RuntimeError(f"{msg_type}: {reply.get('error')}")
                return reply["result"]


async def wait_for(what: str, probe: Any, limit: float = TIMEOUT) -> Any:
    """Poll the coroutine function ``probe`` until it returns a truthy value."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (aiohttp.ClientError, OSError, RuntimeError) as err:
            last = err
            if isinstance(last, aiohttp.ClientError | OSError):
                last = None
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(1)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


async def token(session: aiohttp.ClientSession, url: str) -> str:
    client_id = f"{url}/"

    async def up() -> bool:
        async with session.get(f"{url}/api/onboarding") as resp:
            return resp.status == 200

    await wait_for("HTTP server", up)
    async with session.post(
        f"{url}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": "Check",
            "username": "check",
            "password": "check-password-not-secret",
            "language": "en",
        },
    ) as resp:
        resp.raise_for_status()
        code = (await resp.json())["auth_code"]
    async with session.post(
        f"{url}/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
    ) as resp:
        resp.raise_for_status()
        return str((await resp.json())["access_token"])


def sim_dp1(python: str, plug: dict[str, Any]) -> bool | None:
    """DP 1 of a simulated plug, read by tinytuya (None when it cannot be read)."""
    code = (
        "import json, sys, tinytuya\n"
        "p = json.loads(sys.argv[1])\n"
        "d = tinytuya.OutletDevice(p['device_id'], p['host'], p['local_key'],"
        " version=float(p['version']), port=p['port'])\n"
        "d.set_socketTimeout(5)\n"
        "print(json.dumps(d.status()))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [python, "-c", code, json.dumps(plug)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        dps = json.loads(out.stdout.strip().splitlines()[-1]).get("dps", {})
    except ValueError, IndexError, AttributeError:
        return None
    value = dps.get("1")
    return value if isinstance(value, bool) else None


async def run(args: argparse.Namespace) -> None:
    demo = json.loads(await asyncio.to_thread(Path(args.demo).read_text))
    via_hub = [p for p in demo["plugs"] if p.get("via_hub")]
    direct = [p for p in demo["plugs"] if not p.get("via_hub")]
    async with aiohttp.ClientSession() as session:
        access = await token(session, args.url)
        headers = {"Authorization": f"Bearer {access}"}
        async with session.get(f"{args.url}/api/config", headers=headers) as resp:
            version = (await resp.json())["version"]
        check(version == args.version, f"Home Assistant reports version {version}")
        async with session.ws_connect(f"{args.url}/api/websocket") as raw:
            await raw.receive_json()
            await raw.send_json({"type": "auth", "access_token": access})
            auth = await raw.receive_json()
            if auth.get("type") != "auth_ok":
                raise RuntimeError(f"websocket auth failed: {auth}")
            ws = WS(raw)

            async def entries() -> list[dict[str, Any]]:
                got = await ws.call("config_entries/get", domain=DOMAIN)
                want = len(direct) + 1
                if len(got) == want and all(e["state"] == "loaded" for e in got):
                    return list(got)
                return []

            try:
                loaded = await wait_for("every entry loaded", entries)
            except TimeoutError as err:
                got = await ws.call("config_entries/get", domain=DOMAIN)
                for e in got:
                    print(f"     {e['title']}: {e['state']} {e.get('reason')}")
                check(False, str(err))
                return
            for e in loaded:
                check(True, f"entry {e['title']!r} ({e['entry_id']}): {e['state']}")
            hub = next(e for e in loaded if e["title"].startswith("Tuya ESP32 hub"))
            subs = await ws.call("config_entries/subentries/list", entry_id=hub["entry_id"])
            titles = sorted(s["title"] for s in subs)
            check(
                titles == sorted(p["name"] for p in via_hub),
                f"hub subentries: {titles}",
            )

            registry = [
                r
                for r in await ws.call("config/entity_registry/list")
                if r["platform"] == DOMAIN and r.get("disabled_by") is None
            ]
            for s in subs:
                mine = [r for r in registry if r.get("config_subentry_id") == s["subentry_id"]]
                check(bool(mine), f"subentry {s['title']!r} has {len(mine)} entities")

            wanted = {r["entity_id"] for r in registry}
            domains = ("switch.", "sensor.")

            async def states() -> dict[str, str]:
                got = {
                    s["entity_id"]: s["state"]
                    for s in await ws.call("get_states")
                    if s["entity_id"] in wanted
                }
                ready = [e for e, v in got.items() if e.startswith(domains) and v != "unavailable"]
                expected = [e for e in wanted if e.startswith(domains)]
                return got if len(ready) == len(expected) else {}

            try:
                current = await wait_for("every switch and sensor available", states)
            except TimeoutError as err:
                check(False, str(err))
                current = {
                    s["entity_id"]: s["state"]
                    for s in await ws.call("get_states")
                    if s["entity_id"] in wanted
                }
            for entity_id in sorted(current):
                print(f"     {entity_id} = {current[entity_id]}")
            switches = [e for e in current if e.startswith("switch.")]
            sensors = [e for e in current if e.startswith("sensor.")]
            check(
                len(switches) >= len(demo["plugs"]) and len(sensors) >= len(demo["plugs"]),
                f"{len(switches)} switches and {len(sensors)} sensors have states",
            )

            by_device: dict[str, str] = {}
            devices = await ws.call("config/device_registry/list")
            names = {d["id"]: d.get("name_by_user") or d.get("name") for d in devices}
            for r in registry:
                if r["entity_id"].startswith("switch.") and r.get("translation_key") is None:
                    by_device.setdefault(str(names.get(r["device_id"])), r["entity_id"])
            for r in registry:
                if r["entity_id"].startswith("switch."):
                    by_device.setdefault(str(names.get(r["device_id"])), r["entity_id"])
            for plug in (direct[0], via_hub[0]):
                entity_id = by_device.get(plug["name"])
                if entity_id is None:
                    check(False, f"no switch for {plug['name']!r} (devices: {sorted(by_device)})")
                    continue
                await toggle(ws, args, plug, entity_id)

    text = await asyncio.to_thread(Path(args.log).read_text, errors="replace")
    lines = text.splitlines()
    ours = [
        line
        for line in lines
        if (
            re.search(r"\b(WARNING|ERROR|CRITICAL)\b.*custom_components\.tuya_local_esp", line)
            or (
                re.search(r"deprecat|Detected that custom integration", line, re.I)
                and DOMAIN in line
            )
        )
    ]
    records = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)]
    mentions = [
        line for line in records if f"[custom_components.{DOMAIN}" in line or f" {DOMAIN} " in line
    ]
    mentions = [line for line in mentions if " DEBUG " not in line]
    others = [line for line in records if re.search(r" (WARNING|ERROR|CRITICAL) ", line)]
    print("     log lines naming the integration (not DEBUG):")
    for line in mentions:
        print(f"       {line}")
    print("     every WARNING/ERROR/CRITICAL record in the log:")
    for line in others:
        print(f"       {line[:240]}")
    check(not ours, f"no warning/error/deprecation of ours in the log ({len(ours)} found)")
    for line in ours:
        print(f"       {line}")


async def toggle(ws: WS, args: argparse.Namespace, plug: dict[str, Any], entity_id: str) -> None:
    async def state() -> str:
        got = [s for s in await ws.call("get_states") if s["entity_id"] == entity_id]
        return str(got[0]["state"]) if got else ""

    before = await state()
    for target in ("off", "on") if before == "on" else ("on", "off"):
        await ws.call(
            "call_service",
            domain="switch",
            service=f"turn_{target}",
            service_data={"entity_id": entity_id},
        )

        async def reached(target: str = target) -> bool:
            return await state() == target

        try:
            await wait_for(f"{entity_id} {target}", reached, limit=60)
            check(True, f"{entity_id} ({plug['name']}) turned {target} in HA")
        except TimeoutError as err:
            check(False, str(err))
            continue

        async def in_sim(target: str = target) -> bool:
            value = await asyncio.to_thread(sim_dp1, args.tinytuya_python, plug)
            return value is (target == "on")

        try:
            await wait_for(f"simulator DP 1 of {plug['name']}", in_sim, limit=60)
            check(True, f"simulated plug {plug['name']!r} DP 1 is {target == 'on'} (tinytuya)")
        except TimeoutError as err:
            check(False, str(err))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--demo", required=True, help="the demo JSON the entries came from")
    parser.add_argument("--log", required=True, help="home-assistant.log")
    parser.add_argument("--tinytuya-python", required=True, help="a python with tinytuya")
    parser.add_argument("--version", required=True, help="the expected HA version")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except Exception as err:  # report anything as a failure
        check(False, f"check aborted: {err!r}")
    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

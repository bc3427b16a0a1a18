"""Demo set-up for scripts/develop (not shipped): simulated plugs, a hub and config entries.

``python scripts/demo.py prepare DEMO_JSON CONFIG_DIR [--entries]`` writes
``CONFIG_DIR/demo/sim_plugs.json`` (every plug, for ``python -m tuya_sim --config``) and
``CONFIG_DIR/demo/hub/config.json`` (the hub firmware's configuration, with the plugs marked
``via_hub``). With ``--entries`` it also adds a config entry per direct plug and one for the hub
to ``CONFIG_DIR/.storage/core.config_entries`` (only those not configured yet), as if a user had
added them in the UI. Run it before Home Assistant starts: Home Assistant rewrites that file.

It also prepares the hub firmware update for the demo (:func:`prepare_firmware`): the demo
hub runs on the MicroPython unix port, which cannot load the ESP32 (xtensawin) bundle the
integration ships. So ``CONFIG_DIR/demo/firmware`` gets an x64 build of the firmware as
version ``<next patch>-demo`` (newer than the sources' ``FW_VERSION``), and
``CONFIG_DIR/custom_components/tuya_local_esp`` is a directory of links to the integration's
files whose ``firmware`` link points at that build: the demo's Home Assistant offers it, while
the integration itself (what a real install ships) is untouched. The hub's update state is
reset, so each run starts the hub from the ``esp32/`` sources and can show the update again.

``python scripts/demo.py hub HUB_DIR`` runs the hub firmware (``esp32/main.py`` with
``HUB_DIR/config.json``, every boot's log in ``HUB_DIR/hub.log``) and starts it again whenever it
exits, as a board boots again after a reset: after an update's commit, a crash or a failed
trial. SIGTERM or SIGINT stops the hub and the runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DOMAIN = "tuya_local_esp"
SIM_KEYS = {"name", "via_hub"}
ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / DOMAIN
ESP32 = ROOT / "esp32"
#: A reset of the demo hub takes this long before it boots again (a board takes about as long).
RESTART_DELAY_S = 1.0


def write_sim_config(plugs: list[dict[str, Any]], demo_dir: Path) -> None:
    demo_dir.mkdir(parents=True, exist_ok=True)
    sim = [{k: v for k, v in p.items() if k not in SIM_KEYS} for p in plugs]
    (demo_dir / "sim_plugs.json").write_text(json.dumps(sim, indent=1))


def write_hub_config(hub: dict[str, Any], plugs: list[dict[str, Any]], demo_dir: Path) -> None:
    hub_dir = demo_dir / "hub"
    hub_dir.mkdir(parents=True, exist_ok=True)
    config = {
        **hub,
        "heartbeat_s": 10,
        "refresh_s": 10,
        "log_level": "info",
        "plugs": [
            {
                "id": p["device_id"],
                "key": p["local_key"],
                "host": p["host"],
                "port": p["port"],
                "ver": p["version"],
                "name": p["name"],
            }
            for p in plugs
            if p.get("via_hub")
        ],
    }
    (hub_dir / "config.json").write_text(json.dumps(config, indent=1))


def _entry(title: str, unique_id: str, data: dict[str, Any], now: str) -> dict[str, Any]:
    return {
        "created_at": now,
        "data": data,
        "discovery_keys": {},
        "disabled_by": None,
        "domain": DOMAIN,
        "entry_id": uuid.uuid4().hex[:26].upper(),
        "minor_version": 1,
        "modified_at": now,
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "subentries": [],
        "title": title,
        "unique_id": unique_id,
        "version": 1,
    }


def add_entries(demo: dict[str, Any], config_dir: Path) -> None:
    path = config_dir / ".storage" / "core.config_entries"
    if path.exists():
        store = json.loads(path.read_text())
    else:
        store = {
            "version": 1,
            "minor_version": 5,
            "key": "core.config_entries",
            "data": {"entries": []},
        }
    entries = store["data"]["entries"]
    known = {e.get("unique_id") for e in entries if e["domain"] == DOMAIN}
    now = datetime.now(UTC).isoformat()
    added = []
    for plug in demo["plugs"]:
        if plug.get("via_hub") or plug["device_id"] in known:
            continue
        data = {
            "transport": "direct",
            "host": plug["host"],
            "port": plug["port"],
            "device_id": plug["device_id"],
            "local_key": plug["local_key"],
            "protocol_version": "auto",
            "detected_version": plug["version"],
            "name": plug["name"],
        }
        entries.append(_entry(plug["name"], plug["device_id"], data, now))
        added.append(plug["name"])
    hub = demo["hub"]
    if hub["hub_id"] not in known:
        data = {
            "transport": "hub",
            "host": hub["bind"],
            "port": hub["port"],
            "secret": hub["secret"],
            "hub_id": hub["hub_id"],
            "plugs": [
                {"id": p["device_id"], "name": p["name"], "ver": p["version"]}
                for p in demo["plugs"]
                if p.get("via_hub")
            ],
        }
        title = f"Tuya ESP32 hub {hub['hub_id']}"
        entries.append(_entry(title, hub["hub_id"], data, now))
        added.append(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=2))
    print(f"demo: config entries added: {', '.join(added) or 'none (already there)'}")


def demo_version(version: str) -> str:
    """The demo build's version: the next patch release as a pre-release, ``0.2.0`` ->
    ``0.2.1-demo``, which Home Assistant's version comparison ranks above ``version``."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        return f"{version}.1-demo"
    major, minor, patch = (int(g) for g in match.groups())
    return f"{major}.{minor}.{patch + 1}-demo"


def prepare_firmware(config_dir: Path) -> str:
    """Build the demo's x64 firmware bundle, point the demo's integration at it, and reset
    the demo hub's update state (module docstring). Returns the demo version."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_firmware  # noqa: PLC0415 - a sibling script, not a package
    finally:
        sys.path.pop(0)
    running = build_firmware.firmware_version()
    version = demo_version(running)
    notes = build_firmware.release_notes(running) or ""
    notes = (
        f"Demo build of the hub firmware {running} for the MicroPython unix port "
        f"(`scripts/develop`): the same modules, compiled for x64.\n\n{notes}"
    ).strip()
    firmware = config_dir / "demo" / "firmware"
    build_firmware.build(firmware, "x64", version, notes=notes)
    link_integration(config_dir / "custom_components" / DOMAIN, firmware)
    hub_dir = config_dir / "demo" / "hub"
    for name in ("ota_a", "ota_b"):
        shutil.rmtree(hub_dir / name, ignore_errors=True)
    for name in ("ota.json", "ota.json.tmp"):
        (hub_dir / name).unlink(missing_ok=True)
    print(f"demo: hub firmware {version} (x64) offered to the demo hub, which runs {running}")
    return version


def link_integration(target: Path, firmware: Path) -> None:
    """Make ``target`` a directory of links to the integration's files, its ``firmware`` a
    link to ``firmware`` (an earlier link of the whole integration is replaced)."""
    if target.is_symlink():
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in sorted(INTEGRATION.iterdir()):
        if item.name in ("__pycache__", "firmware"):
            continue
        (target / item.name).symlink_to(os.path.relpath(item, target))
    (target / "firmware").symlink_to(os.path.relpath(firmware, target))


def run_hub(hub_dir: Path, micropython: str) -> int:
    """Run the hub in ``hub_dir`` until SIGTERM/SIGINT, starting it again whenever it exits."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    (hub_dir / "hub.log").write_bytes(b"")  # one log per run, with every boot of the run
    while not stopping:
        with (hub_dir / "hub.log").open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - the firmware of this repository
                [micropython, str(ESP32 / "main.py"), "config.json"],
                cwd=hub_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if stopping:  # the signal came while it started
            child.terminate()
        print(f"demo hub: started (pid {child.pid})", flush=True)
        code = child.wait()
        if stopping:
            break
        print(f"demo hub: exited with status {code}; booting again", flush=True)
        time.sleep(RESTART_DELAY_S)  # the board's reset, and no busy loop on a crash at boot
    print("demo hub: stopped", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["hub"] and len(argv) == 2:
        micropython = str(Path(sys.executable).parent / "micropython")
        return run_hub(Path(argv[1]), micropython)
    if len(argv) not in (3, 4) or argv[0] != "prepare" or argv[3:] not in ([], ["--entries"]):
        print(__doc__, file=sys.stderr)
        return 2
    demo = json.loads(Path(argv[1]).read_text())
    config_dir = Path(argv[2])
    write_sim_config(demo["plugs"], config_dir / "demo")
    write_hub_config(demo["hub"], demo["plugs"], config_dir / "demo")
    prepare_firmware(config_dir)
    if argv[3:] == ["--entries"]:
        add_entries(demo, config_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

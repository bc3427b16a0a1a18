"""Demo set-up for scripts/develop (not shipped): simulated plugs, a hub and config entries.

``python scripts/demo.py prepare DEMO_JSON CONFIG_DIR [--entries]`` writes
``CONFIG_DIR/demo/sim_plugs.json`` (every plug, for ``python -m tuya_sim --config``) and
``CONFIG_DIR/demo/hub/config.json`` (the hub firmware's configuration, with the plugs marked
``via_hub``). With ``--entries`` it also adds a config entry per direct plug and one for the hub
to ``CONFIG_DIR/.storage/core.config_entries`` (only those not configured yet), as if a user had
added them in the UI. Run it before Home Assistant starts: Home Assistant rewrites that file.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DOMAIN = "tuya_local_esp"
SIM_KEYS = {"name", "via_hub"}


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


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] != "prepare" or argv[3:] not in ([], ["--entries"]):
        print(__doc__, file=sys.stderr)
        return 2
    demo = json.loads(Path(argv[1]).read_text())
    config_dir = Path(argv[2])
    write_sim_config(demo["plugs"], config_dir / "demo")
    write_hub_config(demo["hub"], demo["plugs"], config_dir / "demo")
    if argv[3:] == ["--entries"]:
        add_entries(demo, config_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

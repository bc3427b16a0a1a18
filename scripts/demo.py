"""Demo helpers for scripts/develop (not shipped).

``python scripts/demo.py sim-config PLUGS OUT``: write the simulator's plug list (without names).
``python scripts/demo.py entries PLUGS CONFIG_DIR``: add one config entry per demo plug to
``CONFIG_DIR/.storage/core.config_entries`` (only plugs not configured yet), so that Home
Assistant starts with them, as if a user had added them in the UI. Run it before Home Assistant
starts: Home Assistant rewrites that file while it runs.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DOMAIN = "tuya_local_esp"


def sim_config(plugs: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([{k: v for k, v in p.items() if k != "name"} for p in plugs]))


def add_entries(plugs: list[dict[str, Any]], config_dir: Path) -> None:
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
    known = {(e["domain"], e.get("unique_id")) for e in entries}
    now = datetime.now(UTC).isoformat()
    added = []
    for plug in plugs:
        if (DOMAIN, plug["device_id"]) in known:
            continue
        entries.append(
            {
                "created_at": now,
                "data": {
                    "host": plug.get("host", "127.0.0.1"),
                    "port": plug["port"],
                    "device_id": plug["device_id"],
                    "local_key": plug["local_key"],
                    "protocol_version": plug["version"],
                    "name": plug["name"],
                    "transport": "direct",
                },
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
                "title": plug["name"],
                "unique_id": plug["device_id"],
                "version": 1,
            }
        )
        added.append(plug["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=2))
    print(f"demo: config entries added: {', '.join(added) or 'none (already there)'}")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("sim-config", "entries"):
        print(__doc__, file=sys.stderr)
        return 2
    plugs = json.loads(Path(argv[1]).read_text())
    if argv[0] == "sim-config":
        sim_config(plugs, Path(argv[2]))
    else:
        add_entries(plugs, Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

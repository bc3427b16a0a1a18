#!/usr/bin/env bash
# scripts/check_ha_version.sh VERSION [PORT]
#
# Prove the integration loads and works on Home Assistant VERSION, installed as HACS does
# (custom_components/tuya_local_esp/ copied into a fresh config dir), against the demo of
# scripts/develop --demo (simulated plugs + the hub firmware on the MicroPython unix port).
#   1. a venv outside the repo (HA_CHECK_DIR, default /tmp/ha-check-VERSION) with the private
#      CPython 3.14 (PY314, default ~/.cache/tuya_local_esp/py314/root/usr/bin/python3.14) and
#      `pip install homeassistant==VERSION` (needs PyPI: not run by CI);
#   2. the simulated plugs (shared .venv's python -m tuya_sim) and the hub firmware
#      (.venv/bin/micropython esp32/main.py), on their own loopback addresses and hub port so
#      that they do not collide with a running scripts/develop; HA on PORT (default 8131);
#   3. scripts/ha_check.py (run by the new venv's python) checks through HA's REST/WebSocket
#      API: every entry loaded, hub subentries, entity states, a switch toggled (seen in the
#      simulator by tinytuya), and no warning/error/deprecation of ours in home-assistant.log.
# Non-interactive; exits non-zero on any failure; stops everything it started.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 VERSION [PORT]" >&2; exit 2; }
VERSION=$1
PORT=${2:-8131}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${HA_CHECK_DIR:-/tmp/ha-check-$VERSION}
PY314=${PY314:-$HOME/.cache/tuya_local_esp/py314/root/usr/bin/python3.14}
SHARED_PY=$REPO/.venv/bin/python
MP=$REPO/.venv/bin/micropython
VENV=$WORK/venv
CONF=$WORK/config

log() { printf '[check_ha %s] %s\n' "$VERSION" "$*" >&2; }

# 1. venv with Home Assistant VERSION (reused if it already has that version)
mkdir -p "$WORK"
if ! "$VENV/bin/python" -c "import sys; from homeassistant.const import __version__ as v; sys.exit(v != '$VERSION')" 2>/dev/null; then
  log "creating $VENV with $("$PY314" --version) and homeassistant==$VERSION"
  "$PY314" -m venv "$VENV"
  if ! { "$VENV/bin/pip" install -q --upgrade pip &&
    "$VENV/bin/pip" install -q "homeassistant==$VERSION"; } >"$WORK/pip.log" 2>&1; then
    tail -20 "$WORK/pip.log" >&2
    log "FAIL: pip install homeassistant==$VERSION (log $WORK/pip.log)"
    exit 1
  fi
fi

# 2. fresh config dir, integration copied as HACS does, demo entries on private addresses
rm -rf "$CONF"
mkdir -p "$CONF/custom_components"
cp -r "$REPO/custom_components/tuya_local_esp" "$CONF/custom_components/"
find "$CONF/custom_components" -name __pycache__ -prune -exec rm -rf {} +
cat >"$CONF/configuration.yaml" <<EOF
homeassistant:
  name: tuya_local_esp on HA $VERSION
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: $PORT
api:
config:
onboarding:
websocket_api:
logger:
  default: warning
  logs:
    custom_components.tuya_local_esp: debug
EOF
"$SHARED_PY" - "$REPO/scripts/demo_plugs.json" "$WORK/demo_plugs.json" <<'PY'
import json, sys
demo = json.load(open(sys.argv[1]))
for i, plug in enumerate(demo["plugs"]):
    plug["host"] = f"127.0.0.{61 + i}"  # not the addresses of scripts/develop
demo["hub"]["port"] = 16691
json.dump(demo, open(sys.argv[2], "w"), indent=1)
PY
"$SHARED_PY" "$REPO/scripts/demo.py" prepare "$WORK/demo_plugs.json" "$CONF" --entries

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# no --broadcast: the entries are configured already, and broadcasts would reach the discovery
# of any other Home Assistant on this machine. Two connections per plug: HA (or the hub) + tinytuya.
PYTHONPATH=$REPO "$SHARED_PY" -m tuya_sim --config "$CONF/demo/sim_plugs.json" --log-level INFO \
  --max-connections 2 >"$WORK/tuya_sim.out" 2>"$WORK/tuya_sim.log" &
pids+=($!)
(cd "$CONF/demo/hub" && exec "$MP" "$REPO/esp32/main.py" config.json >"$WORK/hub.log" 2>&1) &
pids+=($!)
TUYA_LOCAL_ESP_DISCOVERY_TARGETS=127.0.0.61 "$VENV/bin/hass" -c "$CONF" \
  --log-file "$CONF/home-assistant.log" >"$WORK/hass.out" 2>&1 &
pids+=($!)
log "HA $VERSION starting on http://127.0.0.1:$PORT (log $CONF/home-assistant.log)"

# 3. the checks
rc=0
"$VENV/bin/python" "$REPO/scripts/ha_check.py" --url "http://127.0.0.1:$PORT" \
  --demo "$WORK/demo_plugs.json" --log "$CONF/home-assistant.log" \
  --tinytuya-python "$SHARED_PY" --version "$VERSION" || rc=$?
if [ "$rc" -eq 0 ]; then log "PASS"; else log "FAIL (rc $rc)"; fi
exit "$rc"

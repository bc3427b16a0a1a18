#!/usr/bin/env bash
# benchmarks/build_frozen32.sh MP_TREE [REV]
#
# Build a 32-bit MicroPython unix port with the hub firmware (esp32/*.py of git revision REV,
# default HEAD, without main.py and boot.py) frozen into the image, to measure what freezing
# saves (benchmarks/bench_firmware_heap32.py --exe ... --frozen; docs/benchmarks.md,
# "Firmware heap at 32 bits"). MP_TREE is a MicroPython source tree with its mbedtls and
# micropython-lib submodules unpacked, as /work/shared/tools/mp32/build.sh prepares it (v1.27.0).
# Needs gcc-multilib. Result: MP_TREE/ports/unix/build-32f/micropython32f.
# On an ESP32 the same manifest line (freeze("esp32")) goes into the board's manifest and the
# image is built with ESP-IDF, which is not obtainable through pip or apt (see the docs).
set -euo pipefail
tree=$(cd "${1:?MicroPython source tree}" && pwd)
rev=${2:-HEAD}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive "$rev" esp32 | tar x -C "$work"
rm -f "$work/esp32/main.py" "$work/esp32/boot.py"
cat > "$work/manifest.py" <<MANIFEST
include("\$(PORT_DIR)/variants/standard/manifest.py")
freeze("$work/esp32")
MANIFEST
make -C "$tree/mpy-cross" -j2 >/dev/null
make -C "$tree/ports/unix" -j2 MICROPY_FORCE_32BIT=1 MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 \
  BUILD=build-32f PROG=micropython32f FROZEN_MANIFEST="$work/manifest.py" \
  MPY_CROSS_FLAGS=-march=x86 >/dev/null
echo "$tree/ports/unix/build-32f/micropython32f"

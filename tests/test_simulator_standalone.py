"""The simulator runs without Home Assistant and without the integration (issue 11 item 4).

``python -m tuya_sim`` is started in a subprocess with ``-I -S`` (no site-packages, no user site, no
PYTHONPATH, no current directory on the path) and a temporary directory that holds only links to
``tuya_sim/``, ``cryptography`` and the distributions ``cryptography`` needs at run time (found from
its metadata). Importing Home Assistant or the integration is impossible there, so the tests prove
that the simulator stands on its own; they also check ``sys.modules`` explicitly.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from custom_components.tuya_local_esp.tuya import TuyaDevice

ROOT = Path(__file__).resolve().parent.parent

_RUNNER = """
import runpy, sys
sys.path.insert(0, sys.argv[1])
sys.argv = ["tuya_sim", *sys.argv[2:]]
try:
    runpy.run_module("tuya_sim", run_name="__main__")
finally:
    banned = ("homeassistant", "custom_components")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in banned)
    print("LEAKED=" + ",".join(leaked), file=sys.stderr, flush=True)
"""


def _requirements(name: str, seen: set[str]) -> None:
    """Add ``name`` and, recursively, its unconditional run-time requirements to ``seen``."""
    key = name.lower().replace("_", "-")
    if key in seen:
        return
    seen.add(key)
    for req in metadata.requires(name) or []:
        if "extra ==" in req:
            continue
        marker_ok = True
        if ";" in req:
            from packaging.markers import Marker

            marker_ok = Marker(req.split(";", 1)[1]).evaluate()
        if marker_ok:
            _requirements(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0], seen)


@pytest.fixture(scope="module")
def isolated_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with links to ``tuya_sim`` and ``cryptography`` (plus its dependencies) only."""
    root = tmp_path_factory.mktemp("standalone")
    (root / "tuya_sim").symlink_to(ROOT / "tuya_sim", target_is_directory=True)
    names: set[str] = set()
    _requirements("cryptography", names)
    for name in names:
        dist = metadata.distribution(name)
        tops = {
            Path(str(f)).parts[0]
            for f in dist.files or []
            if not str(f).startswith("..") and ".dist-info" not in str(f)
        }
        for top in tops - {"__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (root / top).exists():
                (root / top).symlink_to(source, target_is_directory=source.is_dir())
    assert not (root / "homeassistant").exists()
    assert not (root / "custom_components").exists()
    return root


def _command(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _RUNNER, str(path), *args]


def test_help_runs_without_home_assistant(isolated_path: Path) -> None:
    """``python -m tuya_sim --help`` works with only tuya_sim and cryptography importable."""
    # the isolation is real: Home Assistant cannot be imported there
    probe = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import homeassistant",
            str(isolated_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode != 0
    assert "No module named 'homeassistant'" in probe.stderr
    done = subprocess.run(
        _command(isolated_path, "--help"), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--version" in done.stdout
    assert "--profile" in done.stdout
    assert "LEAKED=\n" in done.stderr or done.stderr.rstrip().endswith("LEAKED=")


async def test_plug_runs_without_home_assistant_and_answers(isolated_path: Path) -> None:
    """A standalone plug process starts, prints its details and is driven by the real client."""
    proc = await asyncio.create_subprocess_exec(
        *_command(
            isolated_path, "--port", "0", "--version", "3.4", "--seed", "3", "--profile", "standard"
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        info = json.loads(line)
        assert info["version"] == "3.4"
        async with (
            asyncio.timeout(60),
            TuyaDevice(
                "127.0.0.1", info["device_id"], info["local_key"], version="3.4", port=info["port"]
            ) as dev,
        ):
            dps = await dev.status()
            assert dps["1"] is False
            assert (await dev.set_dps({"1": True}))["1"] is True
    finally:
        proc.terminate()
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "LEAKED=\n" in err.decode() or err.decode().rstrip().endswith("LEAKED=")

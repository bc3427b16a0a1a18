"""The demo's hub firmware update (``scripts/demo.py``, run by ``scripts/develop``).

``prepare`` builds an x64 bundle the unix-port hub can run and points the demo's integration
at it without touching the integration's own (shipped) bundle; the ``hub`` runner boots the
firmware again after it resets, as a board does, so an update from Home Assistant ends with
the hub running the new version. Real processes: the firmware on the MicroPython unix port,
the runner as ``scripts/develop`` starts it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from awesomeversion import AwesomeVersion

from custom_components.tuya_local_esp import update as update_platform
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.hub.update import install, load_bundle

from .firmware.conftest import ROOT, HubProcess, load_script, wait_for
from .firmware.test_ota import OLD, running_firmware

INTEGRATION = ROOT / "custom_components" / DOMAIN


def test_demo_version_is_newer() -> None:
    demo = load_script("demo")
    assert demo.demo_version("0.2.0") == "0.2.1-demo"
    assert AwesomeVersion(demo.demo_version("0.2.0")) > "0.2.0"
    assert AwesomeVersion(demo.demo_version("1.0")) > "1.0"


def test_prepare_offers_an_x64_build_and_leaves_the_shipped_bundle(tmp_path: Path) -> None:
    """After ``prepare`` the demo's Home Assistant (config dir on its path) finds the update
    platform's bundle in the demo's x64 build, newer than the sources, with release notes; the
    shipped bundle is unchanged; an earlier run's link and hub update state are replaced."""
    shipped = {p.name: p.read_bytes() for p in update_platform.FIRMWARE_DIR.iterdir()}
    config = tmp_path / "config"
    hub_dir = config / "demo" / "hub"
    (hub_dir / "ota_a").mkdir(parents=True)
    (hub_dir / "ota_a" / "app.mpy").write_bytes(b"an earlier update")
    (hub_dir / "ota.json").write_text('{"good": "ota_a"}')
    (config / "custom_components").mkdir()
    (config / "custom_components" / DOMAIN).symlink_to(INTEGRATION)  # as develop did before
    demo = load_script("demo")
    assert demo.main(["prepare", str(ROOT / "scripts" / "demo_plugs.json"), str(config)]) == 0
    linked = config / "custom_components" / DOMAIN
    assert not linked.is_symlink()
    assert (linked / "update.py").resolve() == INTEGRATION / "update.py"
    assert (linked / "hub").resolve() == INTEGRATION / "hub"
    bundle = load_bundle(linked / "firmware")
    assert bundle.version == demo.demo_version(OLD)
    assert json.loads((linked / "firmware" / "manifest.json").read_text())["march"] == "x64"
    assert bundle.notes is not None
    assert bundle.notes.startswith(f"Demo build of the hub firmware {OLD}")
    assert load_script("build_firmware").release_notes(OLD) in bundle.notes
    assert not (hub_dir / "ota_a").exists()
    assert not (hub_dir / "ota.json").exists()
    assert json.loads((hub_dir / "config.json").read_text())["hub_id"] == "demohub"
    assert {p.name: p.read_bytes() for p in update_platform.FIRMWARE_DIR.iterdir()} == shipped

    # Home Assistant imports the integration from the config dir (its loader puts the config
    # dir first on sys.path): its firmware is the demo's, but only without the checkout on
    # PYTHONPATH, where the checkout's custom_components package wins (found in a UI walk)
    def firmware_dir(pythonpath: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "from custom_components.tuya_local_esp import update; "
                "print(update.FIRMWARE_DIR.resolve())",
                str(config),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return probe.stdout.strip()

    assert firmware_dir(None) == str((config / "demo" / "firmware").resolve())
    assert firmware_dir(str(ROOT)) == str(update_platform.FIRMWARE_DIR.resolve())
    develop = (ROOT / "scripts" / "develop").read_text()
    assert "env -u PYTHONPATH .venv/bin/hass -c config" in develop  # so develop starts HA
    assert "export PYTHONPATH" not in develop
    # a second run is fine (the links are made again)
    assert demo.main(["prepare", str(ROOT / "scripts" / "demo_plugs.json"), str(config)]) == 0
    assert load_bundle(linked / "firmware").version == bundle.version


def start_runner(hub_dir: Path) -> subprocess.Popen[str]:
    """The hub runner, as scripts/develop starts it."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "hub", str(hub_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )


def stop_runner(runner: subprocess.Popen[str]) -> str:
    """SIGTERM, as scripts/develop's clean-up sends it; returns the runner's output."""
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=30)
    return out


def gone(pid: int) -> bool:
    """No such process (or only its exit status left)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "zombie" in status


async def test_demo_hub_runner_boots_the_hub_again_after_an_update(tmp_path: Path) -> None:
    """The runner of ``scripts/develop`` starts the firmware again after the update's commit
    (the unix port exits where a board resets): the hub comes back with the demo version; on
    SIGTERM the runner stops the hub and exits."""
    config = tmp_path / "config"
    demo = load_script("demo")
    version = demo.prepare_firmware(config)
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    hub = HubProcess(hub_dir)
    hub.config_path.write_text(json.dumps(hub.config))
    runner = start_runner(hub_dir)
    try:
        await wait_for(lambda: "ready" in hub.log(), within=30)
        client = hub.client()
        try:
            assert (await client.connect()).firmware == OLD
            assert await install(client, load_bundle(config / "demo" / "firmware")) == version
        finally:
            await client.close()
        # the runner boots it again, into the update
        await wait_for(lambda: "ready" in hub.log().partition("(trial)")[2], within=60)
        assert await running_firmware(hub) == version
    finally:
        out = stop_runner(runner)
    assert runner.returncode == 0
    pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", out)]
    assert len(pids) >= 2, out
    assert "exited with status 0; booting again" in out
    assert out.rstrip().endswith("demo hub: stopped")
    assert all(gone(pid) for pid in pids)  # no hub left running
    assert f"firmware {version} installed in ota_a" in hub.log()
    hub.assert_no_secrets()

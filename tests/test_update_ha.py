"""The hub's firmware update entity in Home Assistant, against the real firmware (MicroPython
unix port) over loopback: install with progress, the hub restarting into the new version, a
refused update reported as a translated error, and the shipped bundle matching the sources."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_UPDATE_PERCENTAGE,
    SERVICE_INSTALL,
    UpdateEntityFeature,
)
from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, ATTR_SUPPORTED_FEATURES
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_state_change_event
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.tuya_local_esp import update as update_platform
from custom_components.tuya_local_esp.const import DOMAIN
from custom_components.tuya_local_esp.hub.update import (
    FirmwareBundleError,
    install,
    load_bundle,
)
from tuya_sim import SimulatedPlug

from .conftest import wait_for_state, wait_until
from .firmware.conftest import ESP32, KEYS, HubProcess, plug_record
from .firmware.test_ota import OLD, boot_again, boot_ready, build_module, ota_state, wait_exit
from .test_hub_ha import hub_entry

ENTITY = "update.tuya_esp32_hub_testhub_firmware"
NEW = "9.9.9"


@pytest.fixture
async def plug() -> AsyncIterator[SimulatedPlug]:
    sim = SimulatedPlug(device_id="bfupdateplug00abcdefgh", local_key=KEYS[0], dps={"1": True})
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def hub(tmp_path: Path, plug: SimulatedPlug) -> AsyncIterator[HubProcess]:
    proc = HubProcess(tmp_path, ota_confirm_s=1, plugs=[plug_record(plug, name="Update plug")])
    await proc.start()
    yield proc
    proc.stop()
    proc.assert_no_secrets()


async def setup_hub(hass: HomeAssistant, hub: HubProcess, plug: SimulatedPlug) -> None:
    entry = hub_entry(hub, [{"id": plug.device_id, "name": "Update plug", "ver": "3.3"}])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for_state(hass, "switch.update_plug", "on", within=15)


def shown(hass: HomeAssistant, attr: str) -> Any:
    state = hass.states.get(ENTITY)
    assert state is not None
    return state.attributes.get(attr)


def update_entity(hass: HomeAssistant) -> Any:
    """The update entity itself, to call ``async_install`` on it as HA's service would; the
    service only passes a version with SPECIFIC_VERSION, and refuses while in progress."""
    return hass.data["entity_components"][UPDATE_DOMAIN].get_entity(ENTITY)


@pytest.fixture
async def trial_hub(tmp_path: Path, plug: SimulatedPlug) -> AsyncIterator[HubProcess]:
    """A hub that confirms a new firmware only after 20 s with a client connected, so Home
    Assistant sees the trial (hub-protocol §7.3.1) well before it ends."""
    proc = HubProcess(tmp_path, ota_confirm_s=20, plugs=[plug_record(plug, name="Update plug")])
    await proc.start()
    yield proc
    proc.stop()
    proc.assert_no_secrets()


NOTES = "- Faster plugs.\n- A **bold** fix."


async def test_install_from_home_assistant(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    trial_hub: HubProcess,
    plug: SimulatedPlug,
    tmp_path: Path,
) -> None:
    """The entity offers the bundled 9.9.9 over the hub's running version, with its release
    notes; install sends it with progress, then the install stays in progress while the hub
    restarts (started again here, as a board boots) and while it runs 9.9.9 on trial: the
    install is not offered then and the hub refuses one as busy (a translated error). Once the
    hub confirms 9.9.9 the entity shows it installed with no update left; the plug switches."""
    hub = trial_hub
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW, notes=NOTES)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    await wait_for_state(hass, ENTITY, "on", within=10)
    assert shown(hass, ATTR_INSTALLED_VERSION) == OLD
    assert shown(hass, ATTR_LATEST_VERSION) == NEW
    assert shown(hass, ATTR_IN_PROGRESS) is False
    assert shown(hass, ATTR_SUPPORTED_FEATURES) & UpdateEntityFeature.RELEASE_NOTES
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id({"type": "update/release_notes", "entity_id": ENTITY})
    answer = await ws.receive_json()
    assert answer["success"]
    assert answer["result"] == NOTES
    progress: list[Any] = []

    @callback
    def on_change(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.attributes.get(ATTR_IN_PROGRESS):
            progress.append(new.attributes.get(ATTR_UPDATE_PERCENTAGE))

    unsub = async_track_state_change_event(hass, ENTITY, on_change)
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
    )
    unsub()
    assert progress[0] == 0
    assert 100 in progress
    sent = [p for p in progress if p is not None]
    assert sent == sorted(sent)
    assert len(set(sent)) > 10
    # committed: the hub restarts into the new firmware; the install stays in progress
    assert await wait_exit(hub, within=20) == 0
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY).state == "on"  # available, still 0.2.0 installed
    assert shown(hass, ATTR_IN_PROGRESS) is True
    assert shown(hass, ATTR_UPDATE_PERCENTAGE) is None
    with pytest.raises(HomeAssistantError) as err:  # Home Assistant's own refusal
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
        )
    assert err.value.translation_key == "update_in_progress"
    boot_again(hub)
    # back on 9.9.9, on trial: in progress, nothing offered
    await wait_until(lambda: shown(hass, ATTR_INSTALLED_VERSION) == NEW, within=30)
    assert ota_state(hub).get("try") == "ota_a"  # the hub has not confirmed it yet
    assert shown(hass, ATTR_IN_PROGRESS) is True
    assert hass.states.get(ENTITY).state == "off"
    # the hub refuses an update during its trial: busy, as a translated error
    entity = update_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_install(None, backup=False)
    assert err.value.translation_key == "firmware_update_busy"
    assert "busy" not in str(err.value)
    assert "trying out the firmware" in str(err.value)
    # confirmed after 20 s with Home Assistant connected: the entity follows by its health poll
    await wait_until(lambda: shown(hass, ATTR_IN_PROGRESS) is False, within=60)
    assert "firmware 9.9.9 confirmed" in hub.log()
    assert "try" not in ota_state(hub)
    assert shown(hass, ATTR_INSTALLED_VERSION) == NEW
    assert hass.states.get(ENTITY).state == "off"
    await wait_for_state(hass, "switch.update_plug", "on", within=15)
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.update_plug"}, blocking=True
    )
    await wait_until(lambda: plug.dps["1"] is False, within=15)


async def test_trial_of_an_update_by_another_client(
    hass: HomeAssistant, trial_hub: HubProcess, plug: SimulatedPlug, tmp_path: Path
) -> None:
    """Another client (another Home Assistant) installed 9.9.9: set up while the hub tries it
    out, the entity shows the install in progress from the hub's health (trial) and offers
    nothing; once the hub confirms it, the entity shows 9.9.9 installed."""
    hub = trial_hub
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW)
    client = hub.client()
    try:
        await client.connect()
        assert await install(client, load_bundle(bundle_dir)) == NEW
    finally:
        await client.close()
    assert await wait_exit(hub, within=20) == 0
    await boot_ready(hub)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    assert ota_state(hub).get("try") == "ota_a"  # still on trial
    # the hello (version) comes before the first health report (trial)
    await wait_until(lambda: shown(hass, ATTR_IN_PROGRESS) is True, within=10)
    assert shown(hass, ATTR_INSTALLED_VERSION) == NEW
    assert hass.states.get(ENTITY).state == "off"
    await wait_until(lambda: shown(hass, ATTR_IN_PROGRESS) is False, within=60)
    assert "firmware 9.9.9 confirmed" in hub.log()
    assert hass.states.get(ENTITY).state == "off"


async def test_update_that_does_not_come_up_is_rolled_back(
    hass: HomeAssistant,
    hub: HubProcess,
    plug: SimulatedPlug,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A firmware that crashes at every boot: the install stays in progress through the hub's
    failed boots; once the hub has rolled back and reports its old version off trial, the
    install ends with a warning and the update is offered again."""
    broken_src = tmp_path / "broken_src"
    shutil.copytree(ESP32, broken_src)
    app = broken_src / "app.py"
    app.write_text(app.read_text() + '\nraise RuntimeError("broken build")\n')
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", "9.9.8", broken_src)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    await wait_for_state(hass, ENTITY, "on", within=10)
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
    )
    for code in (0, 1, 1):  # the commit's restart, then two boots that crash (board resets)
        assert await wait_exit(hub, within=30) == code
        assert shown(hass, ATTR_IN_PROGRESS) is True
        boot_again(hub)
    await hub.wait_log("rolled back to the base set", within=30, start=hub._log_offset)
    await wait_until(lambda: shown(hass, ATTR_IN_PROGRESS) is False, within=30)
    assert shown(hass, ATTR_INSTALLED_VERSION) == OLD
    assert hass.states.get(ENTITY).state == "on"
    assert "firmware 9.9.8 did not come up; the hub rolled back to " + OLD in caplog.text


async def test_hub_lost_mid_update(
    hass: HomeAssistant, hub: HubProcess, plug: SimulatedPlug, tmp_path: Path
) -> None:
    """The hub dies while the modules are sent: the install fails with the translated error,
    nothing stays in progress, and the hub, booted again, runs its old firmware, offered the
    update again."""
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    await wait_for_state(hass, ENTITY, "on", within=10)
    install = hass.async_create_task(
        hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
        )
    )
    await wait_until(lambda: (shown(hass, ATTR_UPDATE_PERCENTAGE) or 0) >= 10, within=30)
    proc = hub.proc
    assert proc is not None
    proc.kill()  # a power cut mid-update
    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "firmware_update_failed"
    assert "keeps running its previous firmware" in str(err.value)
    entity = update_entity(hass)
    assert entity.in_progress is False
    await wait_for_state(hass, ENTITY, "unavailable", within=20)  # like the hub
    boot_again(hub)
    await wait_for_state(hass, ENTITY, "on", within=30)
    assert shown(hass, ATTR_INSTALLED_VERSION) == OLD
    assert shown(hass, ATTR_IN_PROGRESS) is False
    assert "try" not in ota_state(hub)


async def test_hub_that_does_not_come_back_after_the_commit(
    hass: HomeAssistant,
    hub: HubProcess,
    plug: SimulatedPlug,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hub restarts after the commit and never comes back: the install stays in progress
    (the entity available) until RESTART_WAIT, then ends with a warning and the entity is
    unavailable like the hub."""
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    await wait_for_state(hass, ENTITY, "on", within=10)
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
    )
    await wait_exit(hub, within=20)
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    await wait_until(lambda: not entry.runtime_data.hub.hub_connected, within=20)
    await hass.async_block_till_done()
    assert shown(hass, ATTR_IN_PROGRESS) is True
    assert hass.states.get(ENTITY).state == "on"  # available while the hub is away
    # RESTART_WAIT shortened only now, so nothing can end the install before the checks above
    with patch.object(update_platform, "RESTART_WAIT", 3.0):
        await wait_for_state(hass, ENTITY, "unavailable", within=30)
    assert f"did not report firmware {NEW} within 3 s" in caplog.text


async def test_refused_update_is_a_translated_error(
    hass: HomeAssistant, hub: HubProcess, plug: SimulatedPlug, tmp_path: Path
) -> None:
    """A bundle of ESP32 (xtensawin) modules, as shipped with the integration: the unix-port
    hub refuses it as incompatible before writing anything; the user gets the translated
    error and the hub keeps running its firmware, still connected."""
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "xtensawin", NEW)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
    await wait_for_state(hass, ENTITY, "on", within=10)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: ENTITY}, blocking=True
        )
    assert err.value.translation_key == "firmware_update_failed"
    placeholders = err.value.translation_placeholders
    assert placeholders is not None
    assert placeholders["hub_id"] == "testhub"
    # the hub's code with its explanation, not the bare code
    assert placeholders["error"].startswith("incompatible: modules for mpy ")
    assert "keeps running its previous firmware" in str(err.value)
    assert shown(hass, ATTR_IN_PROGRESS) is False
    assert shown(hass, ATTR_INSTALLED_VERSION) == OLD
    assert hass.states.get(ENTITY).state == "on"
    assert not (hub.workdir / "ota_a").exists()
    assert hub.proc is not None
    assert hub.proc.poll() is None
    # another version than the bundled one cannot be installed (HA's service only asks for
    # one with SPECIFIC_VERSION, which the entity does not offer: called on the entity here)
    entity = update_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_install("0.0.1", backup=False)
    assert err.value.translation_key == "firmware_unavailable"


async def test_missing_bundle_offers_nothing(
    hass: HomeAssistant, hub: HubProcess, plug: SimulatedPlug, tmp_path: Path
) -> None:
    """Without a usable bundle the entity shows the installed version and offers nothing."""
    empty = tmp_path / "nothing"
    empty.mkdir()
    with patch.object(update_platform, "FIRMWARE_DIR", empty):
        await setup_hub(hass, hub, plug)
    await wait_until(
        lambda: (
            (s := hass.states.get(ENTITY)) is not None
            and s.attributes.get(ATTR_INSTALLED_VERSION) == OLD
        ),
        within=10,
    )
    assert shown(hass, ATTR_LATEST_VERSION) is None
    assert hass.states.get(ENTITY).state == "unknown"
    entity = update_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_install(None, backup=False)
    assert err.value.translation_key == "firmware_unavailable"


async def test_the_bundle_is_read_once_per_run(
    hass: HomeAssistant, hub: HubProcess, plug: SimulatedPlug, tmp_path: Path
) -> None:
    """A hub entry is set up again at every change of its plug subentries: the bundle (read and
    hashed in full) is not read again then; here it is gone before the reload and still
    offered after it."""
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW)
    with patch.object(update_platform, "FIRMWARE_DIR", bundle_dir):
        await setup_hub(hass, hub, plug)
        await wait_for_state(hass, ENTITY, "on", within=10)
        shutil.rmtree(bundle_dir)
        (entry,) = hass.config_entries.async_entries(DOMAIN)
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for_state(hass, ENTITY, "on", within=10)
    assert shown(hass, ATTR_LATEST_VERSION) == NEW
    assert shown(hass, ATTR_INSTALLED_VERSION) == OLD
    # a bundle without release notes offers none
    assert not shown(hass, ATTR_SUPPORTED_FEATURES) & UpdateEntityFeature.RELEASE_NOTES


def test_shipped_bundle_matches_the_firmware_sources(tmp_path: Path) -> None:
    """The bundle under custom_components/.../firmware/ is what scripts/build_firmware.py builds
    from the current esp32/ sources and CHANGELOG.md (run it after changing them), byte for
    byte, is intact, and carries the firmware's release notes."""
    bundle_dir = update_platform.FIRMWARE_DIR
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    build = build_module()
    assert manifest["version"] == build.firmware_version()
    assert manifest["march"] == "xtensawin"
    sources = {
        p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ESP32.glob("*.py")
        if p.name not in build.LOADER_ONLY
    }
    built = {f["name"].removesuffix(".mpy"): f["source_sha256"] for f in manifest["files"]}
    assert built == sources, "stale firmware bundle: run scripts/build_firmware.py"
    bundle = load_bundle(bundle_dir)  # every file matches its SHA-256
    assert {f.name for f in bundle.files} == {f"{m}.mpy" for m in sources}
    assert bundle.mpy is not None
    assert bundle.mpy >> 10 == 10  # xtensawin (MicroPython docs, "MicroPython .mpy files")
    # release notes: the "### Hub firmware <version>" section of CHANGELOG.md
    notes = build.release_notes(manifest["version"])
    assert notes
    assert notes.startswith("- ")
    assert bundle.notes == notes
    # reproducible: building again gives the shipped manifest and modules exactly
    again = tmp_path / "again"
    assert build.build(again) == manifest
    assert (again / "manifest.json").read_bytes() == (bundle_dir / "manifest.json").read_bytes()
    for f in bundle.files:
        assert (again / f.name).read_bytes() == f.data


def test_release_notes_from_the_changelog(tmp_path: Path) -> None:
    """build_firmware.release_notes takes one version's section, up to the next heading; none
    for a version without a section (the bundle then has no notes, and the entity offers
    none)."""
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(
        "# Changelog\n\n## 1.0.0\n- integration\n\n### Hub firmware 1.2.0\n\n- new\n"
        "  second line\n\n### Hub firmware 1.1.0\n- old\n## 0.9.0\n- older\n"
    )
    build = build_module()
    assert build.release_notes("1.2.0", changelog) == "- new\n  second line"
    assert build.release_notes("1.1.0", changelog) == "- old"
    assert build.release_notes("1.0.0", changelog) is None
    bundle_dir = tmp_path / "bundle"
    assert build.build(bundle_dir, "x64", "7.7.7")["notes"] is None
    assert load_bundle(bundle_dir).notes is None


def test_damaged_bundles_are_refused(tmp_path: Path) -> None:
    """A bundle whose file differs from its manifest, or whose manifest is malformed, is not
    offered (FirmwareBundleError, logged by the entity's set-up)."""
    bundle_dir = tmp_path / "bundle"
    build_module().build(bundle_dir, "x64", NEW)
    assert load_bundle(bundle_dir).version == NEW
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    (bundle_dir / "manifest.json").write_text(json.dumps({**manifest, "notes": ["no"]}))
    with pytest.raises(FirmwareBundleError, match="malformed manifest"):  # notes: text or null
        load_bundle(bundle_dir)
    victim = bundle_dir / "app.mpy"
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(FirmwareBundleError, match=r"app\.mpy: content does not match"):
        load_bundle(bundle_dir)
    (bundle_dir / "manifest.json").write_text(json.dumps({"version": 1, "files": []}))
    with pytest.raises(FirmwareBundleError, match="malformed manifest"):
        load_bundle(bundle_dir)
    (bundle_dir / "manifest.json").write_text("{")
    with pytest.raises(FirmwareBundleError):
        load_bundle(bundle_dir)

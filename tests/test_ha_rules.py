"""The offline hassfest/HACS rule check (scripts/check_ha_rules.py) on this repository."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_ha_rules", ROOT / "scripts/check_ha_rules.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_this_repository_passes() -> None:
    assert _checker().check(ROOT) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the files the checker reads."""
    (tmp_path / "custom_components").mkdir()
    shutil.copytree(
        ROOT / "custom_components/tuya_local_esp",
        tmp_path / "custom_components/tuya_local_esp",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("hacs.json", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_each_broken_rule_is_reported(copy: Path) -> None:
    integ = copy / "custom_components/tuya_local_esp"
    strings = json.loads((integ / "strings.json").read_text())
    strings["selector"]["protocol_version"]["options"]["3.3"] = "Three point three"
    (integ / "strings.json").write_text(json.dumps(strings))
    manifest = json.loads((integ / "manifest.json").read_text())
    manifest["iot_class"] = "local_magic"
    (integ / "manifest.json").write_text(json.dumps(manifest))
    (integ / "brand/icon.png").unlink()
    (copy / "LICENSE").write_text("all rights reserved")
    qs = (integ / "quality_scale.yaml").read_text().replace("  brands: done\n", "")
    (integ / "quality_scale.yaml").write_text(qs)
    problems = _checker().check(copy)
    assert "manifest.json: invalid iot_class" in problems
    assert "translations/en.json differs from strings.json" in problems
    assert "strings.json: selector.protocol_version option key '3.3' is not [a-z0-9-_]+" in problems
    assert "brand/icon.png: missing" in problems
    assert "LICENSE: missing or not the MIT licence text" in problems
    assert "quality_scale.yaml: bronze rule 'brands' missing" in problems


def test_wrong_image_size_and_exempt_without_comment(copy: Path) -> None:
    from PIL import Image

    integ = copy / "custom_components/tuya_local_esp"
    Image.new("RGBA", (100, 100)).save(integ / "brand/dark_icon@2x.png")
    qs = (integ / "quality_scale.yaml").read_text()
    qs = qs.replace("  brands: done\n", "  brands:\n    status: exempt\n")
    qs = qs.replace("  entity-category: done\n", "  entity-category: todo\n")
    (integ / "quality_scale.yaml").write_text(qs)
    (integ / "icons.json").write_text('{"entity": {"sensor": {"nope": {"default": "x"}}}}')
    problems = _checker().check(copy)
    assert "brand/dark_icon@2x.png: size (100, 100), want (512, 512)" in problems
    assert "quality_scale.yaml: brands: exempt needs a comment" in problems
    assert "quality_scale.yaml: entity-category: status 'todo', want done or exempt" in problems
    assert "icons.json: entity.sensor.nope has no translation in strings.json" in problems
    assert "icons.json: entity.sensor.nope: 'x' is not an mdi icon" in problems

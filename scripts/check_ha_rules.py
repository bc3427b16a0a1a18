"""Offline check of the rules hassfest and HACS validation apply to this integration.

Neither hassfest (it lives in Home Assistant core's ``script/`` folder, not in the wheel) nor
HACS's validation action can run without the internet, so this checks the same rules locally,
each with its source:

* manifest (hassfest ``manifest.py``): required keys, ``domain`` then ``name`` then the rest in
  alphabetical order, a valid ``iot_class`` and ``integration_type``, a version for a custom
  integration;
* HACS (hacs.xyz "Integration requirements"): ``hacs.json`` with ``name``, one integration under
  ``custom_components/``, a LICENSE file, brand images;
* brand images (developers.home-assistant.io "Brand images", HA 2026.3 local ``brand/``):
  ``icon.png`` 256 x 256, ``icon@2x.png`` 512 x 512, logos with the shortest side 128-256 (1x) and
  256-512 (2x), PNG; dark variants follow the same sizes;
* translations (hassfest ``translations.py``): ``strings.json`` equal to ``translations/en.json``;
  selector option keys, entity, issue and exception translation keys match ``[a-z0-9-_]+``;
* icons (hassfest ``icons.py``): every entity translation key of ``icons.json`` exists in
  ``strings.json`` and every icon is ``mdi:``;
* quality scale (hassfest ``quality_scale.py``): every Bronze, Silver and Gold rule is listed,
  ``done`` or ``exempt`` with a ``comment``.

Run: ``.venv/bin/python scripts/check_ha_rules.py [REPO_ROOT]``; exit 1 and one line per problem.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

DOMAIN = "tuya_local_esp"
KEY_RE = re.compile(r"^[a-z0-9-_]+$")
IOT_CLASSES = {
    "assumed_state", "calculated", "cloud_polling", "cloud_push", "local_polling", "local_push",
}  # fmt: skip
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
MANIFEST_REQUIRED = (
    "domain", "name", "codeowners", "config_flow", "documentation", "integration_type",
    "iot_class", "issue_tracker", "requirements", "version",
)  # fmt: skip
#: hassfest quality_scale.py ALL_RULES, Bronze to Gold (Platinum rules are optional here).
RULES = {
    "bronze": (
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions",
        "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "entity-event-setup", "entity-unique-id", "has-entity-name",
        "runtime-data", "test-before-configure", "test-before-setup", "unique-config-entry",
    ),
    "silver": (
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ),
    "gold": (
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    ),
}  # fmt: skip
ICON_SIZES = {"icon.png": (256, 256), "icon@2x.png": (512, 512)}
LOGO_SHORT_SIDE = {"logo.png": (128, 256), "logo@2x.png": (256, 512)}


def check_manifest(integ: Path) -> Iterator[str]:
    """Manifest keys, order and values (hassfest manifest.py)."""
    manifest = json.loads((integ / "manifest.json").read_text())
    for key in MANIFEST_REQUIRED:
        if key not in manifest:
            yield f"manifest.json: missing {key!r}"
    keys = list(manifest)
    if keys[:2] != ["domain", "name"] or keys[2:] != sorted(keys[2:]):
        yield "manifest.json: keys must be domain, name, then alphabetical"
    if manifest.get("domain") != DOMAIN:
        yield f"manifest.json: domain must be {DOMAIN!r}"
    if manifest.get("iot_class") not in IOT_CLASSES:
        yield "manifest.json: invalid iot_class"
    if manifest.get("integration_type") not in INTEGRATION_TYPES:
        yield "manifest.json: invalid integration_type"
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(manifest.get("version", ""))):
        yield "manifest.json: version must be X.Y.Z"


def check_hacs(root: Path) -> Iterator[str]:
    """hacs.json, a single integration folder and a LICENSE (HACS integration requirements)."""
    hacs_file = root / "hacs.json"
    if not hacs_file.is_file():
        yield "hacs.json: missing"
        return
    hacs = json.loads(hacs_file.read_text())
    if not hacs.get("name"):
        yield "hacs.json: missing name"
    unknown = set(hacs) - {
        "name", "content_in_root", "zip_release", "filename", "hide_default_branch", "country",
        "homeassistant", "hacs", "persistent_directory", "render_readme",
    }  # fmt: skip
    if unknown:
        yield f"hacs.json: unknown keys {sorted(unknown)}"
    integrations = [p for p in (root / "custom_components").iterdir() if p.is_dir()]
    if [p.name for p in integrations if not p.name.startswith("__")] != [DOMAIN]:
        yield "custom_components/ must hold exactly one integration"
    license_file = root / "LICENSE"
    if not license_file.is_file() or "MIT License" not in license_file.read_text():
        yield "LICENSE: missing or not the MIT licence text"


def check_brand(integ: Path) -> Iterator[str]:
    """Brand images: names, PNG, sizes (HA brand image rules)."""
    brand = integ / "brand"
    for prefix in ("", "dark_"):
        for name, size in ICON_SIZES.items():
            yield from _image(brand / f"{prefix}{name}", lambda w, h, s=size: (w, h) == s, size)
        for name, (low, high) in LOGO_SHORT_SIDE.items():
            yield from _image(
                brand / f"{prefix}{name}",
                lambda w, h, lo=low, hi=high: lo <= min(w, h) <= hi,
                f"shortest side {low}-{high}",
            )


def _image(path: Path, ok: Any, want: object) -> Iterator[str]:
    if not path.is_file():
        yield f"brand/{path.name}: missing"
        return
    with Image.open(path) as img:
        if img.format != "PNG":
            yield f"brand/{path.name}: not a PNG"
        elif not ok(*img.size):
            yield f"brand/{path.name}: size {img.size}, want {want}"


def check_translations(integ: Path) -> Iterator[str]:
    """strings.json == translations/en.json; translation keys hassfest accepts."""
    strings = json.loads((integ / "strings.json").read_text())
    english = json.loads((integ / "translations" / "en.json").read_text())
    if strings != english:
        yield "translations/en.json differs from strings.json"
    for name, options in strings.get("selector", {}).items():
        if not KEY_RE.match(name):
            yield f"strings.json: selector key {name!r} is not [a-z0-9-_]+"
        for key in options.get("options", {}):
            if not KEY_RE.match(key):
                yield f"strings.json: selector.{name} option key {key!r} is not [a-z0-9-_]+"
    for section in ("issues", "exceptions"):
        for key in strings.get(section, {}):
            if not KEY_RE.match(key):
                yield f"strings.json: {section} key {key!r} is not [a-z0-9-_]+"
    for platform, entities in strings.get("entity", {}).items():
        for key, entity in entities.items():
            if not KEY_RE.match(key):
                yield f"strings.json: entity.{platform} key {key!r} is not [a-z0-9-_]+"
            for state in entity.get("state", {}):
                if not KEY_RE.match(state):
                    yield f"strings.json: entity.{platform}.{key} state {state!r} is not valid"


def check_icons(integ: Path) -> Iterator[str]:
    """icons.json refers to existing entity translation keys and uses mdi icons."""
    path = integ / "icons.json"
    if not path.is_file():
        yield "icons.json: missing"
        return
    icons = json.loads(path.read_text())
    strings = json.loads((integ / "strings.json").read_text())
    for platform, entities in icons.get("entity", {}).items():
        for key, spec in entities.items():
            if key not in strings.get("entity", {}).get(platform, {}):
                yield f"icons.json: entity.{platform}.{key} has no translation in strings.json"
            for icon in _icons(spec):
                if not icon.startswith("mdi:"):
                    yield f"icons.json: entity.{platform}.{key}: {icon!r} is not an mdi icon"


def _icons(spec: Any) -> Iterator[str]:
    if isinstance(spec, str):
        yield spec
    elif isinstance(spec, dict):
        for value in spec.values():
            yield from _icons(value)


def check_quality_scale(integ: Path) -> Iterator[str]:
    """Every Bronze-Gold rule listed; done, or exempt with a comment (hassfest quality_scale)."""
    path = integ / "quality_scale.yaml"
    if not path.is_file():
        yield "quality_scale.yaml: missing"
        return
    rules = (yaml.safe_load(path.read_text()) or {}).get("rules", {})
    for tier, names in RULES.items():
        for name in names:
            if name not in rules:
                yield f"quality_scale.yaml: {tier} rule {name!r} missing"
                continue
            rule = rules[name]
            status = rule if isinstance(rule, str) else rule.get("status")
            if status not in ("done", "exempt"):
                yield f"quality_scale.yaml: {name}: status {status!r}, want done or exempt"
            if status == "exempt" and not (isinstance(rule, dict) and rule.get("comment")):
                yield f"quality_scale.yaml: {name}: exempt needs a comment"


def check(root: Path) -> list[str]:
    """Every problem found under ``root`` (the repository), one line each."""
    integ = root / "custom_components" / DOMAIN
    problems: list[str] = []
    for checker in (
        check_manifest,
        check_brand,
        check_translations,
        check_icons,
        check_quality_scale,
    ):
        problems.extend(checker(integ))
    problems.extend(check_hacs(root))
    return problems


def main(argv: list[str]) -> int:
    """Print the problems; exit 1 when there is any."""
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = check(root)
    for line in problems:
        print(line)
    print(f"HA/HACS rules: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

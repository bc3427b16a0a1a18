"""The firmware's modules import each other without a cycle (issue 11 item 6).

Every ``import``/``from ... import`` in ``esp32/*.py`` counts, including the ones inside
functions (the firmware imports 3.1/3.4/3.5 codecs and ``config`` on demand): a cycle through a
lazy import still makes the two modules depend on each other's load order."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ESP32


def _imports(path: Path, local: set[str]) -> set[str]:
    """Firmware modules imported anywhere in the module at ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return (found & local) - {path.stem}


def firmware_graph(folder: Path = ESP32) -> dict[str, set[str]]:
    """Module name -> firmware modules it imports."""
    files = sorted(folder.glob("*.py"))
    local = {f.stem for f in files}
    return {f.stem: _imports(f, local) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_cycle_finder_sees_lazy_and_direct_cycles(tmp_path: Path) -> None:
    # the shape the firmware had: tuya.make_codec imported tuya31 inside a function, and
    # tuya31 imported tuya at the top
    (tmp_path / "tuya.py").write_text("def make():\n    from tuya31 import C\n    return C\n")
    (tmp_path / "tuya31.py").write_text("from tuya import pad\nimport json\n")
    (tmp_path / "plug.py").write_text("import tuya\nimport asyncio.core\n")
    graph = firmware_graph(tmp_path)
    assert graph == {"plug": {"tuya"}, "tuya": {"tuya31"}, "tuya31": {"tuya"}}
    assert find_cycle(graph) == ["tuya", "tuya31", "tuya"]
    (tmp_path / "tuya.py").write_text("import json\n")
    assert find_cycle(firmware_graph(tmp_path)) is None


def test_firmware_has_no_import_cycle() -> None:
    graph = firmware_graph()
    assert {"plug", "tuya", "tuya31", "tuya34", "tuya35", "app", "server"} <= set(graph)
    # the codec registry lives with its caller: plug imports the codecs, they import tuya
    assert "tuya" in graph["tuya35"]
    assert graph["tuya"] & {"tuya31", "tuya34", "tuya35", "plug"} == set()
    assert {"tuya31", "tuya34", "tuya35"} <= graph["plug"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"

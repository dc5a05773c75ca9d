"""Imports point down the layers (ARCHITECTURE.md): checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "retold"

# package -> retold packages it must never import
FORBIDDEN = {
    "authoring": {"runtime", "engine", "stores", "client"},
    "runtime": {"engine", "stores", "client"},
    "history": {"runtime", "engine", "stores", "client", "authoring"},
    "stores": {"runtime", "engine", "client", "authoring"},
}


def retold_imports(path: Path) -> set[str]:
    """The retold subpackages a module imports, resolved from relative imports."""
    package = path.relative_to(SRC).parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("retold."):
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add(parts[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("retold."))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    for path in sorted((SRC / layer).rglob("*.py")):
        bad = retold_imports(path) & FORBIDDEN[layer]
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"

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


# The faces (and the demo, a program like any user's) speak only the public client API.
FACES = {"http": {"http"}, "cli": {"cli", "http", "_demo", "_worker"}, "_demo.py": set()}
# The faces check input at the edge by the rules the engine applies: the
# rule of ids (retold.history.ids) and exact JSON numbers (retold.history.codec).
PUBLIC_MODULES = {"retold", "retold.client", "retold.history.export", "retold.history.ids", "retold.history.codec",
                  "retold.testing"}


def imported_modules(path: Path) -> set[str]:
    """Every retold module a file imports, as a dotted name (``from . import x`` resolved)."""
    package = ["retold", *path.relative_to(SRC).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                found.add(".".join(base + (node.module.split(".") if node.module else [])))
            elif node.module and (node.module == "retold" or node.module.startswith("retold.")):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "retold" or a.name.startswith("retold."))
    return found


@pytest.mark.parametrize("face", sorted(FACES))
def test_faces_use_only_the_public_client_api(face: str) -> None:
    paths = [SRC / face] if face.endswith(".py") else sorted((SRC / face).rglob("*.py"))
    assert paths
    for path in paths:
        for module in imported_modules(path):
            own = module.split(".")[1] if "." in module else ""
            allowed = module in PUBLIC_MODULES or own in FACES[face]
            assert allowed, f"{path.relative_to(SRC)} imports {module}: faces use only {sorted(PUBLIC_MODULES)}"


def test_the_faces_rule_sees_relative_and_absolute_imports() -> None:
    assert imported_modules(SRC / "cli" / "__init__.py") >= {"retold.cli._common", "retold._demo"}
    assert imported_modules(SRC / "http" / "_sse.py") >= {"retold", "retold.history.export"}
    assert imported_modules(SRC / "engine" / "_engine.py") >= {"retold.stores._protocol", "retold.client"}

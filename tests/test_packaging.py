"""Packaging: the license, the version, and extras for users apart from the project's own."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import retold

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEV_TOOLS = {"mypy", "ruff", "nox", "schemathesis", "pytest-timeout", "httpx", "httpx-sse", "fastapi", "pydantic"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_license_is_mit_by_the_retold_authors() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "retold authors" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_version_comes_from_the_package_metadata() -> None:
    assert retold.__version__ == importlib.metadata.version("retold") == PYPROJECT["project"]["version"]
    assert "__version__" not in retold.__all__  # a module attribute, not an export


def test_user_extras_hold_only_what_their_feature_needs() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert names(extras["http"]) == {"starlette", "uvicorn"}
    assert names(extras["postgres"]) == {"psycopg"}
    assert names(extras["testing"]) == {"hypothesis", "pytest", "trio"}
    assert names(extras["otel"]) == {"opentelemetry-api"}  # the SDK and exporters are the application's choice
    for extra in ("http", "postgres", "testing", "otel"):
        assert not names(extras[extra]) & DEV_TOOLS, f"the {extra} extra pulls in development tools"


def test_the_development_extra_installs_every_user_extra_and_the_suites_tools() -> None:
    test = PYPROJECT["project"]["optional-dependencies"]["test"]
    assert "retold[http,postgres,testing,otel,nats]" in test
    assert names(test) >= DEV_TOOLS


def test_the_dashboard_files_ship_in_the_wheel() -> None:
    # hatchling puts every file of the package directory in the wheel (checked by building
    # one: `pip wheel . --no-deps`), unless a setting leaves some out: there must be none.
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel == {"packages": ["src/retold"]}
    assert "exclude" not in PYPROJECT["tool"]["hatch"].get("build", {})
    assets = ROOT / "src" / "retold" / "http" / "_dashboard"
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in assets.iterdir()}
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8") if (ROOT / ".gitignore").exists() else ""
    assert not any(line.strip() in ("*.js", "*.css", "*.html", "_dashboard/") for line in ignored.splitlines())

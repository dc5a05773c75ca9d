"""What the crash tests share: a store several processes open at once, and worker processes to kill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres", "nats"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes open at once: a SQLite file, PostgreSQL, NATS JetStream."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


def spawn(module: str, url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    """Start ``python -m MODULE URL FOLDER NAME`` from the repository root, its stderr in ``FOLDER/stderr-NAME.txt``."""
    with (folder / f"stderr-{name}.txt").open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", module, url, str(folder), name], cwd=ROOT, stderr=stderr)

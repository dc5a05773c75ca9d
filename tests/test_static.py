"""The code base stays mypy --strict and ruff clean (run as part of the suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_mypy_strict() -> None:
    done = run("mypy", "--strict")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff() -> None:
    done = run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")
    assert done.returncode == 0, done.stdout + done.stderr

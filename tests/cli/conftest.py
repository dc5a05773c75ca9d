"""Run ``python -m retold`` as a subprocess against a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

Retold = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(db: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI process: the store in RETOLD_URL, the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETOLD_")}
    env.update(RETOLD_URL=f"sqlite:///{db}", PYTHONPATH=str(ROOT), **extra)
    return env


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "retold.db"


@pytest.fixture
def retold(db: Path) -> Retold:
    """``retold(*args)``: run the command line; returns the finished process (text)."""

    def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "retold", *args], cwd=ROOT, env=cli_env(db, **env),
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    return run


class Background:
    """A long-running ``retold`` process (worker, serve) and its stderr."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retold", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        """Read stderr until a line containing ``text``."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if text in line:
                return line
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError(f"no {text!r} from {self.proc.args!r}; exit {self.proc.poll()}")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and the rest of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"{self.proc.args!r} did not stop on SIGTERM") from None
        return self.proc.returncode, err


@pytest.fixture
def background(db: Path) -> Iterator[Callable[..., Background]]:
    started: list[Background] = []

    def start(*args: str, **env: Any) -> Background:
        proc = Background(list(args), cli_env(db, **env))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.communicate()

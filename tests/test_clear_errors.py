"""Common slips get one clear error naming the mistake and the fix: store URLs, missing extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import retold


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("sqlite://x.db", "sqlite:///x.db"),
        ("sqlite://data/shop.db", "sqlite:///data/shop.db"),
        ("sqlite:/x.db", "sqlite:///path/to/file.db"),
    ],
)
def test_a_malformed_sqlite_url_names_the_right_form(
    url: str, suggestion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(retold.ConfigurationError) as caught:
        retold.Engine(url)
    message = str(caught.value)
    assert repr(url) in message
    assert suggestion in message
    assert "memory://" in message
    assert list(tmp_path.iterdir()) == [], "nothing is created for a rejected URL"


def test_a_malformed_postgresql_url_names_the_right_form() -> None:
    with pytest.raises(retold.ConfigurationError, match=r"postgresql\+psycopg://user:password@host:5432/dbname"):
        retold.Engine("postgresql://user@host:port/db")


def without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``modules`` are not installed."""
    prelude = textwrap.dedent(f"""
        import importlib.abc, sys

        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {modules!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, NotInstalled())
    """)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_without_hypothesis_the_property_runner_names_the_testing_extra() -> None:
    proc = without(["hypothesis"], """
        import retold
        from retold.testing import WorkflowEnvironment, assert_deterministic, replay   # still importable
        import retold.testing.pytest_plugin                                           # the plugin loads

        @retold.workflow
        async def noop() -> None:
            return None

        try:
            assert_deterministic(noop, cross_process=False)
        except ModuleNotFoundError as exc:
            print("ERROR 1:", exc)
        try:
            import retold.testing.strategies
        except ModuleNotFoundError as exc:
            print("ERROR 2:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    for n in (1, 2):
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"ERROR {n}:"))
        assert "hypothesis" in line
        assert "pip install 'retold[testing]'" in line


def test_without_starlette_the_http_app_names_the_http_extra() -> None:
    proc = without(["starlette"], """
        try:
            import retold.http
        except ImportError as exc:
            print("ERROR:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'retold[http]'" in proc.stdout, proc.stdout


def test_without_psycopg_a_postgresql_url_names_the_postgres_extra() -> None:
    proc = without(["psycopg", "psycopg_binary", "psycopg_c"], """
        import retold
        try:
            retold.Engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        except retold.RetoldError as exc:
            print("ERROR:", type(exc).__name__, exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR:" in proc.stdout, proc.stdout
    assert "pip install 'retold[postgres]'" in proc.stdout, proc.stdout

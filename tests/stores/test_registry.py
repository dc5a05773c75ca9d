"""Stores from URLs: retold's own schemes, and third-party stores found through entry points.

The plugin tests install a real (tiny) distribution: a package and a
``.dist-info`` with ``entry_points.txt`` in a directory put on ``sys.path``,
where ``importlib.metadata`` finds it as it would an installed one.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import retold
from retold.stores import open_store, store_schemes
from retold.stores.memory import MemoryStore
from retold.stores.sql import SqlStore

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """Install a distribution named ``dist`` with ``module``'s source and these ``retold.stores`` entry points."""
    count = 0

    def install_(dist: str, module: str, source: str, entry_points: dict[str, str]) -> Path:
        nonlocal count
        count += 1
        site = tmp_path / f"site-{count}"
        (site / module).mkdir(parents=True)
        (site / module / "__init__.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"  # as a wheel names it
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[retold.stores]\n{lines}")
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.delitem(sys.modules, module, raising=False)
        return site

    return install_


# A third-party store: here SQLite in memory, recording how it was opened.
PLUGIN = """
    from retold.stores.sql import SqlStore

    OPENED = []

    class LabStore(SqlStore):
        def __init__(self, url, **options):
            OPENED.append((url, sorted(options)))
            super().__init__("sqlite://", **options)

    def not_a_store(url, **options):
        return object()
"""


def test_retold_schemes_open_retold_stores(tmp_path: Path) -> None:
    assert {"sqlite", "memory", "postgresql", "postgres"} <= set(store_schemes())
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a.db'}"), SqlStore)
    assert isinstance(open_store("sqlite://"), SqlStore)  # SQLite in memory
    assert isinstance(open_store("memory://"), MemoryStore)  # the pure one
    store = open_store("postgresql+psycopg://u@db.example/app")  # by its base scheme; no connection yet
    assert isinstance(store, SqlStore)
    assert store.dialect == "postgresql"
    clock = open_store("memory://", clock=lambda: 42.0)
    assert clock.now() == 42.0  # options go to the store


def test_an_unknown_scheme_is_refused_with_the_known_ones() -> None:
    with pytest.raises(retold.StoreError, match=r"no store is known for the scheme 'redis'; known schemes are "
                                                r"memory, nats, postgres, postgresql, sqlite, tls"):
        open_store("redis://cache:6379/0")
    with pytest.raises(retold.StoreError, match=r"'retold\.db': it has no scheme; write sqlite:///path\.db"):
        open_store("retold.db")
    with pytest.raises(retold.StoreError, match=r"unsupported store URL 'mysql://nowhere'"):
        retold.Engine("mysql://nowhere")


@retold.workflow
async def double(n: int) -> int:
    return 2 * n


@pytest.mark.anyio
async def test_a_plugin_store_is_found_by_its_scheme(install: Install) -> None:
    install("retold-lab", "retold_lab", PLUGIN, {"lab": "retold_lab:LabStore"})
    import retold_lab  # type: ignore[import-not-found]

    assert "lab" in store_schemes()
    async with retold.Engine("lab://bench-1", workflows=[double], poll_interval=0.05) as engine:
        run = await engine.start(double, 21)
        assert await run.result(timeout=30) == 42
    assert retold_lab.OPENED == [("lab://bench-1", [])]
    store = open_store("lab+fast://bench-2", pool_size=2)  # a driver suffix: found by the base scheme
    assert type(store).__name__ == "LabStore"
    assert retold_lab.OPENED[-1] == ("lab+fast://bench-2", ["pool_size"])
    async with retold.Client("lab://bench-3") as client:
        assert await client.list_runs() == []


def test_a_plugin_cannot_take_a_builtin_scheme(install: Install, caplog: pytest.LogCaptureFixture) -> None:
    install("retold-rogue", "retold_rogue", PLUGIN, {"sqlite": "retold_rogue:LabStore"})
    caplog.set_level(logging.WARNING, logger="retold.stores")
    assert store_schemes().count("sqlite") == 1
    assert "ignoring the retold.stores entry point 'sqlite' (retold_rogue:LabStore)" in caplog.text
    assert isinstance(open_store("sqlite://"), SqlStore)


def test_two_plugins_may_not_claim_one_scheme(install: Install) -> None:
    install("retold-lab", "retold_lab", PLUGIN, {"lab": "retold_lab:LabStore"})
    install("retold-lab2", "retold_lab2", PLUGIN, {"lab": "retold_lab2:LabStore"})
    with pytest.raises(retold.ConfigurationError, match=r"two retold\.stores entry points claim the scheme 'lab'"):
        open_store("lab://x")


def test_a_broken_plugin_is_named(install: Install) -> None:
    install("retold-broken", "retold_broken", "raise ImportError('no module named redis')\n",
            {"broken": "retold_broken:Store"})
    with pytest.raises(retold.ConfigurationError,
                       match=r"the store for broken:// cannot be loaded from retold_broken:Store \(entry point "
                             r"'broken' of retold\.stores\): ImportError: no module named redis"):
        open_store("broken://x")


def test_a_plugin_must_make_a_store(install: Install) -> None:
    install("retold-odd", "retold_odd", PLUGIN, {"odd": "retold_odd:not_a_store", "const": "retold_odd:OPENED"})
    with pytest.raises(retold.ConfigurationError, match=r"made object for 'odd://x', which is not a retold store"):
        open_store("odd://x")
    with pytest.raises(retold.ConfigurationError, match=r"the store for const:// from retold_odd:OPENED .* is not "
                                                        r"callable"):
        open_store("const://x")

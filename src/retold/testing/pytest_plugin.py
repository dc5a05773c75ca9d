"""The retold pytest plugin (loaded automatically through the ``pytest11`` entry point).

- ``retold_env``: an async fixture giving a started
  :class:`~retold.testing.WorkflowEnvironment`; say what it hosts with
  ``@pytest.mark.retold(workflows=[...], activities=[...], fakes={...})``
  (any other keyword goes to the environment).
- ``@pytest.mark.retold_backends``: run an async test under asyncio and
  under trio (through anyio's pytest plugin).

Example::

    @pytest.mark.retold_backends
    @pytest.mark.retold(workflows=[onboard], activities=[send_email])
    async def test_onboarding(retold_env):
        run = await retold_env.start(onboard, "ada@example.com", 3600.0)
        assert (await run.result()).confirmed is False
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ._env import WorkflowEnvironment

__all__ = ["pytest_configure", "pytest_generate_tests", "pytest_pycollect_makeitem", "retold_env"]

BACKENDS = ("asyncio", "trio")


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    config.addinivalue_line(
        "markers", "retold(workflows=..., activities=..., fakes=..., **options): what retold_env hosts"
    )
    config.addinivalue_line("markers", "retold_backends: run this async test under asyncio and trio")


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``retold_backends`` tests over asyncio and trio.

    The test's closure holds ``anyio_backend`` (a ``usefixtures`` mark added at collection,
    :func:`pytest_pycollect_makeitem`), so anyio's plugin runs the
    test and its async fixtures on the backend chosen here. A project that parametrizes
    its own ``anyio_backend`` fixture keeps its choice.
    """
    if metafunc.definition.get_closest_marker("retold_backends") is None:
        return
    if "anyio_backend" not in metafunc.fixturenames:  # pragma: no cover - added at collection
        return
    definitions = metafunc._arg2fixturedefs.get("anyio_backend", ())
    if definitions and definitions[-1].params and not _is_anyio_default(definitions[-1]):
        return
    trio_missing = importlib.util.find_spec("trio") is None
    # A parametrize mark (not metafunc.parametrize): pytest then gives it precedence
    # over the params of anyio's own fixture instead of parametrizing twice.
    metafunc.definition.add_marker(pytest.mark.parametrize(
        "anyio_backend",
        [
            pytest.param("asyncio", id="asyncio"),
            pytest.param(
                "trio", id="trio",
                marks=pytest.mark.skipif(trio_missing, reason="trio is not installed: pip install trio"),
            ),
        ],
    ))


def _is_anyio_default(definition: Any) -> bool:
    """Whether this ``anyio_backend`` fixture is anyio's own (not one the project defines)."""
    return str(getattr(definition.func, "__module__", "")).startswith("anyio")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> None:
    """Put ``anyio_backend`` in every ``retold_backends`` test's closure, so anyio's plugin runs it."""
    if not collector.istestfunction(obj, name):
        return
    own = getattr(obj, "pytestmark", ())
    if collector.get_closest_marker("retold_backends") is not None or any(
        getattr(m, "name", None) == "retold_backends" for m in own
    ):
        pytest.mark.usefixtures("anyio_backend")(obj)


@pytest.fixture
async def retold_env(request: pytest.FixtureRequest, anyio_backend: Any) -> AsyncIterator[WorkflowEnvironment]:
    """A started WorkflowEnvironment configured by the test's ``retold`` marker.

    It depends on ``anyio_backend``, so a test that uses it runs under anyio's
    plugin even without a marker (on the backends anyio's fixture names).
    """
    marker = request.node.get_closest_marker("retold")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    async with WorkflowEnvironment(**options) as env:
        yield env

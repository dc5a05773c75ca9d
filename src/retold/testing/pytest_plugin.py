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

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ._env import WorkflowEnvironment

__all__ = ["pytest_configure", "pytest_generate_tests", "retold_env"]

BACKENDS = ("asyncio", "trio")


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    config.addinivalue_line(
        "markers", "retold(workflows=..., activities=..., fakes=..., **options): what retold_env hosts"
    )
    config.addinivalue_line("markers", "retold_backends: run this async test under asyncio and trio")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``retold_backends`` tests over the anyio backends."""
    if metafunc.definition.get_closest_marker("retold_backends") is None:
        return
    if "anyio_backend" not in metafunc.fixturenames:
        metafunc.fixturenames.append("anyio_backend")
    # Recent anyio versions parametrize their anyio_backend fixture over every
    # installed backend already (as may a project's own fixture): keep those.
    definitions = metafunc._arg2fixturedefs.get("anyio_backend", ())
    if any(getattr(d, "params", None) for d in definitions):
        return
    metafunc.parametrize("anyio_backend", BACKENDS, ids=BACKENDS)


@pytest.fixture
async def retold_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """A started WorkflowEnvironment configured by the test's ``retold`` marker."""
    marker = request.node.get_closest_marker("retold")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    async with WorkflowEnvironment(**options) as env:
        yield env

"""The pytest11 plugin, as a user's test suite sees it (run in a separate pytest process)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
from datetime import timedelta

import pytest

import retold


@retold.activity
async def send(to: str) -> str:
    raise AssertionError("faked in the test")


@retold.workflow
async def reminder(to: str) -> str:
    await retold.sleep(timedelta(days=3))
    return await retold.execute(send, to)


def fake_send(to: str) -> str:
    return "sent to " + to


@pytest.mark.retold_backends
@pytest.mark.retold(workflows=[reminder], activities=[send], fakes={send: fake_send})
async def test_reminder(retold_env, anyio_backend):
    run = await retold_env.start(reminder, "ada")
    assert await run.result(timeout=10) == "sent to ada"
    assert retold_env.skipped >= 3 * 86400 - 5
    print("backend:", anyio_backend)
'''


def test_fixture_and_backends_marker_work_in_a_user_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-v", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*backend: asyncio*"])
    result.stdout.fnmatch_lines(["*backend: trio*"])

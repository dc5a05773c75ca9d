"""The pytest11 plugin, as a user's test suite sees it (run in a separate pytest process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.retold(workflows=[reminder], activities=[send], fakes={send: fake_send})
async def test_fixture_without_a_backend_marker(retold_env):
    run = await retold_env.start(reminder, "bob")
    assert await run.result(timeout=10) == "sent to bob"
'''


def test_fixture_and_backends_marker_work_in_a_user_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-v", "-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*backend: asyncio*"])
    result.stdout.fnmatch_lines(["*backend: trio*"])


DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def docs_block(containing: str) -> str:
    """The python code block of docs/testing.md that contains ``containing``, exactly as written."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.S | re.M)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"expected one code block with {containing!r} in {DOCS}, found {len(found)}"
    return str(found[0])


def test_the_documented_plugin_examples_run_as_written(tmp_path: Path) -> None:
    """docs/testing.md's code, in a project of its own with no conftest, ini file or other plugin configured."""
    source = "\n".join(
        [
            docs_block("async def onboard("),
            docs_block("async def test_reminder_after_a_week("),
            docs_block("async def test_onboarding(retold_env)"),
        ]
    )
    (tmp_path / "test_onboarding.py").write_text(source, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-W", "error", "test_onboarding.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for test in ("test_reminder_after_a_week", "test_onboarding"):
        for backend in ("asyncio", "trio"):
            assert f"test_onboarding.py::{test}[{backend}] PASSED" in output, output
    assert "4 passed" in output, output

"""examples/fastapi_app.py in a real browser: headless Chromium shows a run's events live."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._ports import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"


@pytest.fixture
def browser() -> str:
    """The browser, or a skip (a failure when RETOLD_TEST_REQUIRE_BROWSER is set, as in CI)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("RETOLD_TEST_REQUIRE_BROWSER"):
        pytest.fail("chromium is not installed and RETOLD_TEST_REQUIRE_BROWSER is set")
    pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it and never skips")


@pytest.fixture
def example_app(tmp_path: Path) -> Iterator[str]:
    """The example, run as its README says, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--db", str(tmp_path / "shop.db"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(base + "/retold/workflows", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "Traceback" not in output, output


def dump_dom(browser: str, url: str) -> str:
    """Load ``url`` in headless Chromium and return the DOM once the page is idle."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_page_shows_a_runs_events_as_they_happen(browser: str, example_app: str) -> None:
    # The example's own route starts a run; the page follows it over SSE.
    placed = httpx.post(example_app + "/orders", json={"id": "7", "items": ["tea"]}, timeout=10)
    assert placed.status_code == 201
    assert placed.json()["page"] == "/?run=order-7"
    # ?order= makes the page place an order itself and follow it from its first
    # event: all but WorkflowStarted reach it while it is open.
    dom = dump_dom(browser, example_app + "/?order=42")
    items = re.findall(r'<li data-type="(\w+)"[^>]*>#(\d+) ([^<]*)</li>', dom)
    assert [(kind, int(seq)) for kind, seq, _ in items] == list(zip([
        "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled", "ActivityCompleted",
        "ActivityScheduled", "ActivityCompleted", "TimerStarted", "TimerFired", "ActivityScheduled",
        "ActivityCompleted", "WorkflowCompleted",
    ], range(1, 13), strict=True))
    assert items[2][2] == 'ActivityCompleted "book packed"'
    assert items[-1][2] == 'WorkflowCompleted "tracking-42"'
    assert '<p id="status">finished: WorkflowCompleted</p>' in dom
    # The run the route started, followed with ?run=, shows its whole history too.
    dom = dump_dom(browser, example_app + "/?run=order-7")
    assert re.findall(r'data-type="(\w+)"', dom)[-1] == "WorkflowCompleted"
    assert "tracking-7" in dom
    # retold's dashboard, mounted with the API, lists the run.
    dom = dump_dom(browser, example_app + "/retold/#/runs")
    assert re.search(r'<tr[^>]*data-workflow-id="order-7"[^>]*data-status="completed"', dom), dom[-3000:]

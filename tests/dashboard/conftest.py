"""The dashboard in headless Chromium, against a real ``retold serve`` on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests._ports import free_port

from .browser import Browser, Page, find_chromium

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "dashboard-test-token"


@dataclass
class Served:
    """A running ``retold serve``: its URL and an API client holding the token."""

    url: str
    api: httpx.Client

    def wait_status(self, ident: str, status: str, timeout: float = 30) -> dict[str, object]:
        """Poll the API until the run has ``status``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, object] = self.api.get(f"/runs/{ident}").json()
            if run.get("status") == status:
                return run
            assert time.monotonic() < deadline, f"run {ident} is {run.get('status')}, not {status}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, or a skip (a failure when RETOLD_TEST_REQUIRE_BROWSER is set, as in CI)."""
    found = find_chromium()
    if found:
        return found
    if os.environ.get("RETOLD_TEST_REQUIRE_BROWSER"):
        pytest.fail("chromium is not installed and RETOLD_TEST_REQUIRE_BROWSER is set")
    pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it and never skips")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    running = Browser(chromium)
    try:
        yield running
    finally:
        running.close()


@contextmanager
def serve(db: Path, **env_extra: str) -> Iterator[Served]:
    """``retold serve --app tests.dashboard.workflows`` with a token, on the SQLite file ``db``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETOLD_")}
    env.update(PYTHONPATH=str(ROOT), RETOLD_TOKENS=TOKEN, **env_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "retold", "serve", "--app", "tests.dashboard.workflows", "--url", f"sqlite:///{db}",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                api.get("/workflows").raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "retold serve did not start"
                time.sleep(0.1)
        yield Served(url, api)
    finally:
        api.close()
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Served]:
    """One server for the module's tests, on a fresh SQLite file."""
    with serve(tmp_path_factory.mktemp("dashboard") / "retold.db") as running:
        yield running


def sign_in(page: Page, url: str, token: str = TOKEN) -> None:
    """Open the dashboard and sign in with ``token`` (the tab keeps it)."""
    page.goto(url + "/")
    page.wait_for("!!document.querySelector('#login')")
    page.fill("#token", token)
    page.eval("document.querySelector('#login').requestSubmit()")


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A signed-in tab at 1280 px, on the runs page; no script errors allowed."""
    tab = browser.new_page()
    sign_in(tab, served.url)
    tab.wait_for("document.querySelector('#live')?.textContent.startsWith('Live')")
    before = len(browser.console)
    yield tab
    tab.close()
    assert browser.console[before:] == [], browser.console[before:]

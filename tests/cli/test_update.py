"""``retold update``: validated here through --app, answered by the worker that hosts the run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from tests.cli.conftest import Background, Retold


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_retold_update_prints_the_reply_reports_a_rejection_and_says_how_to_wait_again(
    retold: Retold, background: Callable[..., Background],
) -> None:
    worker = background("worker", "tests.test_updates")
    worker.wait_for_line("retold worker: cart")
    app = ["--app", "tests.test_updates"]
    ok(retold("start", "cart", *app, "--id", "c-1", "--input", '["ann"]'))
    assert ok(retold("update", "c-1", "add", "--args", '["apple"]', "--id", "u-1", *app)).strip() == "5"
    assert ok(retold("update", "c-1", "add", "--args", '["apple"]', "--id", "u-1", *app)).strip() == "5"
    rejected = retold("update", "c-1", "add", "--args", '["apple"]', *app)
    assert rejected.returncode == 1
    assert "rejected by its validator: ValueError: apple is already in the cart" in rejected.stderr
    pending = retold("update", "c-1", "add", "--args", '["slow"]', "--id", "u-slow", "--wait", "0.5", *app)
    assert pending.returncode == 1
    assert "again with --id u-slow" in pending.stderr
    assert retold("update", "c-1", "add", "--args", "{}", *app).returncode == 2
    history = ok(retold("history", "c-1", "--json"))
    assert history.count('"UpdateAccepted"') == 2

"""`retold show` says what a run waits for, and a worker logs work nobody hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cli.conftest import Background, Retold
from tests.cli.test_commands import ok, poll

NOT_HOSTED = "waiting for activity 'email' on queue 'default': no running worker hosts it"


def test_show_names_an_activity_no_worker_hosts(retold: Retold, background: Callable[..., Background]) -> None:
    # Before any worker: the run waits for its first step, and nothing hosts its workflow.
    ok(retold("start", "greet", "--app", "tests.shop", "--input", '["ada"]', "--id", "g-1"))
    shown = orjson_show(retold, "g-1")
    assert shown["pending"]["waiting_for"] == [
        "waiting for workflow 'greet' to take its next step: no running worker hosts it"]
    # A worker that hosts the workflow but not its activity: the run schedules it and waits.
    worker = background("worker", "tests.shop:greet")
    worker.wait_for_line("retold worker: greet; 0 activities")
    shown = poll(retold, lambda v: bool(v["pending"]["activities"]), "show", "g-1")
    [activity] = shown["pending"]["activities"]
    assert (activity["activity"], activity["queue"], activity["attempt"], activity["hosted"]) == (
        "email", "default", 1, False)
    assert shown["pending"]["waiting_for"] == [NOT_HOSTED]
    # The worker that scheduled it said so once, on its stderr, with no logging set up.
    line = worker.wait_for_line("no running worker hosts it")
    assert "activity 'email' on queue 'default'" in line
    assert shown["run_id"] in line
    text = ok(retold("show", "g-1"))
    assert "activity 'email' on queue 'default': no running worker hosts it" in text
    assert "NOT HOSTED by any running worker" in text  # the pending table's row
    # Once a worker hosting it runs, the run finishes and nothing is pending.
    background("worker", "tests.shop")
    done = poll(retold, lambda v: v["status"] == "completed", "show", "g-1")
    assert done["pending"] == {"activities": [], "timers": [], "children": [], "signals": [], "waiting_for": []}


def orjson_show(retold: Retold, ident: str) -> Any:
    return poll(retold, lambda v: True, "show", ident)

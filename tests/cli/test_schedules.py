"""``retold schedule ...`` as a user runs it, on a real SQLite file; a worker fires what it creates."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tests.cli.conftest import Background, Retold
from tests.cli.test_commands import ok, one_line_error, poll


def test_bad_cron_or_time_zone_is_one_line_and_writes_nothing(retold: Retold) -> None:
    one_line_error(retold("schedule", "create", "s", "greet", "--input", '["ann"]', "--cron", "61 * * * *",
                          "--app", "tests.shop"), 1, "cron expression '61 * * * *' is not valid")
    one_line_error(retold("schedule", "create", "s", "greet", "--input", '["ann"]', "--cron", "0 2 * * *",
                          "--timezone", "Nowhere/City", "--app", "tests.shop"), 1, "'Nowhere/City' is not a known")
    one_line_error(retold("schedule", "create", "s", "greet", "--input", "[42]", "--every", "5",
                          "--app", "tests.shop"), 1, "name")
    assert ok(retold("schedule", "list")).strip() == "no schedules"


def test_create_describe_pause_trigger_resume_and_delete(
    retold: Retold, background: Callable[..., Background],
) -> None:
    created = orjson.loads(ok(retold("schedule", "create", "nightly", "greet", "--input", '["ann"]', "--cron",
                                     "0 2 * * *", "--timezone", "Europe/Paris", "--app", "tests.shop", "--json")))
    assert (created["cron"], created["timezone"], len(created["next_fires"])) == ("0 2 * * *", "Europe/Paris", 3)
    assert all(f.endswith(("+01:00", "+02:00")) and "T02:00:00" in f for f in created["next_fires"])
    described = orjson.loads(ok(retold("schedule", "describe", "nightly", "--next", "7", "--json")))
    assert len(described["next_fires"]) == 7
    assert ok(retold("schedule", "pause", "nightly")).strip() == "paused nightly"
    assert orjson.loads(ok(retold("schedule", "describe", "nightly", "--json")))["paused"] is True
    started = ok(retold("schedule", "trigger", "nightly")).strip()
    assert started.startswith("started nightly@")
    workflow_id = started.split()[1]
    worker = background("worker", "tests.shop")
    poll(retold, lambda run: run["status"] == "completed", "show", workflow_id)
    worker.stop()
    assert ok(retold("schedule", "resume", "nightly")).strip() == "resumed nightly"
    listed = orjson.loads(ok(retold("schedule", "list", "--json")))
    assert [(s["id"], s["paused"], s["fires"]) for s in listed] == [("nightly", False, 1)]
    assert ok(retold("schedule", "delete", "nightly")).strip() == "deleted nightly"
    one_line_error(retold("schedule", "describe", "nightly"), 1, "no schedule with id 'nightly'")


def test_a_worker_fires_an_every_schedule(retold: Retold, background: Callable[..., Background]) -> None:
    ok(retold("schedule", "create", "tick", "greet", "--input", '["bob"]', "--every", "0.2", "--app", "tests.shop"))
    worker = background("worker", "tests.shop")
    listed = poll(retold, lambda runs: any(r["status"] == "completed" for r in runs), "list")
    assert all(r["workflow_id"].startswith("tick@") for r in listed)
    worker.stop()


def test_update_changes_a_schedule_in_place(retold: Retold, background: Callable[..., Background]) -> None:
    ok(retold("schedule", "create", "edit", "greet", "--input", '["ann"]', "--every", "3600", "--paused",
              "--app", "tests.shop"))
    first = ok(retold("schedule", "trigger", "edit")).split()[1]
    changed = orjson.loads(ok(retold("schedule", "update", "edit", "--cron", "0 3 * * *", "--timezone",
                                     "Europe/Paris", "--overlap", "allow_all", "--input", '["bob"]', "--resume",
                                     "--app", "tests.shop", "--json")))
    assert (changed["id"], changed["cron"], changed["every"], changed["overlap"], changed["paused"]) == (
        "edit", "0 3 * * *", None, "allow_all", False)
    assert (changed["fires"], changed["last_workflow_id"]) == (1, first)
    assert all("T03:00:00" in f for f in changed["next_fires"])
    second = ok(retold("schedule", "trigger", "edit")).split()[1]
    worker = background("worker", "tests.shop")
    run = poll(retold, lambda run: run["status"] == "completed", "show", second)
    worker.stop()
    started = run["history"]["events"][0]
    assert started["type"] == "WorkflowStarted"
    assert "bob" in orjson.dumps(started).decode()  # started with the new arguments
    text = ok(retold("schedule", "update", "edit", "--pause"))
    assert text.startswith("updated\nedit: greet 0 3 * * * (Europe/Paris), paused")


def test_a_bad_update_is_one_line_and_changes_nothing(retold: Retold) -> None:
    ok(retold("schedule", "create", "edit", "greet", "--input", '["ann"]', "--cron", "0 3 * * *",
              "--app", "tests.shop"))
    one_line_error(retold("schedule", "update", "edit", "--cron", "61 * * * *"), 1,
                   "cron expression '61 * * * *' is not valid")
    one_line_error(retold("schedule", "update", "edit", "--input", "[42]", "--app", "tests.shop"), 1, "name")
    one_line_error(retold("schedule", "update", "edit", "--input", '["x"]'), 2, "need --app")
    one_line_error(retold("schedule", "update", "edit"), 2, "nothing to change")
    one_line_error(retold("schedule", "update", "gone", "--pause"), 1, "no schedule with id 'gone'")
    assert orjson.loads(ok(retold("schedule", "describe", "edit", "--json")))["cron"] == "0 3 * * *"

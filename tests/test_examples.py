"""Run every example as a real program and check what it prints.

Each example prints lines like ``" 0.14s  [activity] book_flight: ..."``;
the tests drop the time prefix and assert on the rest, in order where the
order is the point (a saga's compensations run newest first).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import retold
from retold.history.events import ActivityScheduled

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_TIME_PREFIX = re.compile(r"^\s*\d+\.\d+s  ")


def run_example(name: str, tmp_path: Path, *args: str) -> list[str]:
    """Run ``examples/<name>.py --db <tmp file> *args``; return its lines without timestamps."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--db", str(tmp_path / f"{name}.db"), *args],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return [_TIME_PREFIX.sub("", line) for line in proc.stdout.splitlines()]


def index(lines: list[str], pattern: str) -> int:
    """The index of the only line matching the regex ``pattern``."""
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert len(found) == 1, f"{pattern!r} matched lines {found} in:\n" + "\n".join(lines)
    return found[0]


def load(name: str) -> ModuleType:
    """Import an example module from its file, without running its main()."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


# -- onboarding ---------------------------------------------------------------------


def test_onboarding_confirmed(tmp_path: Path) -> None:
    lines = run_example("onboarding", tmp_path)
    created = index(lines, r"^\[activity\] create_account\('ada@example.com'\) -> acct-[0-9a-f]{8}$")
    welcome = index(lines, r"^\[activity\] send_email\('ada@example.com', 'welcome'\)")
    waiting = index(lines, r"^\[main\] query status -> 'waiting for email confirmation'$")
    signal = index(lines, r"^\[main\] sent signal email_confirmed=True$")
    sleeping = index(lines, r"^\[main\] query status -> 'confirmed, tips email due in 1 s'$")
    tips = index(lines, r"^\[activity\] send_email\('ada@example.com', 'getting-started-tips'\)")
    result = index(lines, r"^\[main\] result: account_id=acct-[0-9a-f]{8} confirmed=True$")
    assert created < welcome < waiting < signal < sleeping < tips < result
    assert not any("please-confirm" in line for line in lines)
    # The account id the activity made is the one the workflow returned.
    account = lines[created].rsplit(" ", 1)[-1]
    assert f"account_id={account} " in lines[result]
    index(lines, r"^\[main\] describe: status=completed events=13$")
    history = [line.split()[-1] for line in lines[index(lines, r"^\[main\] history:$") + 1:]]
    assert history == [
        "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled",
        "ActivityCompleted", "TimerStarted", "SignalReceived", "TimerCancelled",
        "TimerStarted", "TimerFired", "ActivityScheduled", "ActivityCompleted", "WorkflowCompleted",
    ]


def test_onboarding_confirmation_times_out(tmp_path: Path) -> None:
    lines = run_example("onboarding", tmp_path, "--no-confirm")
    waiting = index(lines, r"^\[main\] query status -> 'waiting for email confirmation'$")
    reminder = index(lines, r"^\[activity\] send_email\('ada@example.com', 'please-confirm'\)")
    result = index(lines, r"^\[main\] result: account_id=acct-[0-9a-f]{8} confirmed=False$")
    assert waiting < reminder < result
    assert not any("getting-started-tips" in line or "sent signal" in line for line in lines)
    assert "SignalReceived" not in "\n".join(lines)


def test_onboarding_reuses_database(tmp_path: Path) -> None:
    """A second run on the same --db starts a new workflow instead of failing."""
    first = run_example("onboarding", tmp_path)
    second = run_example("onboarding", tmp_path)
    started = r"^\[main\] started workflow (onboarding-\w+)$"
    first_id = re.match(started, first[index(first, started)])
    second_id = re.match(started, second[index(second, started)])
    assert first_id is not None
    assert second_id is not None
    assert first_id.group(1) != second_id.group(1)
    index(second, r"^\[main\] result: .* confirmed=True$")


# -- parallel -----------------------------------------------------------------------


@pytest.mark.parametrize("shards", [10, 25])
def test_parallel_fan_out_fan_in(tmp_path: Path, shards: int) -> None:
    lines = run_example("parallel", tmp_path, "--shards", str(shards))
    index(lines, rf"^\[main\] total = {sum(i * i for i in range(shards))}$")
    index(lines, rf"^\[main\] largest shard = {shards - 1}$")
    index(lines, rf"^\[main\] history: {shards} ActivityScheduled events$")
    for i in range(shards):
        started = index(lines, rf"^\[activity\] measure\({i}\) started$")
        finished = index(lines, rf"^\[activity\] measure\({i}\) -> {i * i}$")
        assert started < finished
    # Fan-out: every activity started before the first one finished.
    last_start = max(index(lines, rf"measure\({i}\) started") for i in range(shards))
    first_finish = min(index(lines, rf"measure\({i}\) -> ") for i in range(shards))
    assert last_start < first_finish


# -- bad deploy -----------------------------------------------------------------------


def test_bad_deploy_blocks_the_run_and_the_rollback_completes_it(tmp_path: Path) -> None:
    lines = run_example("bad_deploy", tmp_path)
    packed = index(lines, r"^\[activity\] pack 42$")
    blocked = index(lines, r"^\[main\] order-42 is blocked: retold.errors.NondeterminismError at event 2$")
    index(lines, r"^\[main\] blocked runs: \['order-42'\]$")
    done = index(lines, r"^\[main\] order-42 completed: tracking-parcel-42$")
    assert packed < blocked < done
    assert not [line for line in lines if "weigh" in line]  # the bad code's first command never ran
    assert lines[-1].endswith("SignalReceived, ActivityScheduled, ActivityCompleted, WorkflowCompleted")


# -- saga ---------------------------------------------------------------------------


def booked(lines: list[str], what: str) -> str:
    """The reference printed when ``what`` (flight, hotel, car) was booked."""
    return lines[index(lines, rf"^\[activity\] book_{what}: .* -> ")].rsplit(" ", 1)[-1]


def test_saga_car_fails_compensates_in_reverse(tmp_path: Path) -> None:
    lines = run_example("saga", tmp_path)  # the car fails by default
    flight, hotel = booked(lines, "flight"), booked(lines, "hotel")
    assert re.fullmatch(r"FL-[0-9A-F]{6}", flight)
    assert re.fullmatch(r"HT-[0-9A-F]{6}", hotel)
    retry = index(lines, r"^\[activity\] book_hotel: attempt 1 .*\(will retry\)$")
    index(lines, r"^\[activity\] book_hotel: attempt 2 -> ")
    failed = index(lines, r"^\[activity\] book_car: nothing available in Lisbon \(non-retryable\)$")
    compensations = [line for line in lines if line.startswith("[compensate]")]
    assert compensations == [f"[compensate] cancel_hotel {hotel}", f"[compensate] cancel_flight {flight}"]
    first_undo = lines.index(compensations[0])
    rolled_back = index(lines, r"^\[main\] saga rolled back: trip not booked "
                               r"\(no car available in Lisbon\); 2 booking\(s\) cancelled$")
    assert retry < failed < first_undo < rolled_back
    index(lines, r"^\[main\] run status: failed$")


def test_saga_hotel_fails_undoes_only_the_flight(tmp_path: Path) -> None:
    lines = run_example("saga", tmp_path, "--fail-at", "hotel")
    flight = booked(lines, "flight")
    compensations = [line for line in lines if line.startswith("[compensate]")]
    assert compensations == [f"[compensate] cancel_flight {flight}"]
    assert not any("book_car" in line for line in lines)
    index(lines, r"^\[main\] saga rolled back: .*1 booking\(s\) cancelled$")


def test_saga_first_step_fails_nothing_to_undo(tmp_path: Path) -> None:
    lines = run_example("saga", tmp_path, "--fail-at", "flight")
    assert not any(line.startswith("[compensate]") for line in lines)
    index(lines, r"^\[main\] saga rolled back: .*0 booking\(s\) cancelled$")


def test_saga_success(tmp_path: Path) -> None:
    lines = run_example("saga", tmp_path, "--fail-at", "none")
    refs = booked(lines, "flight"), booked(lines, "hotel"), booked(lines, "car")
    index(lines, rf"^\[main\] booked: flight={refs[0]} hotel={refs[1]} car={refs[2]}$")
    index(lines, r"^\[main\] run status: completed$")
    assert not any(line.startswith("[compensate]") for line in lines)


def test_observability_logs_json_with_run_fields_once_and_one_trace(tmp_path: Path) -> None:
    lines = run_example("observability", tmp_path)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    events = [r["event"] for r in records]
    # The workflow's lines once each, though the second engine replayed the run.
    assert [e for e in events if not e.startswith(("charging", "activity"))] == [
        "checkout of order-1 begins", "charged: receipt-order-1", "approved"]
    assert all(r["workflow"] == "checkout" and r["workflow_id"] == "order-1" and r["run_id"] for r in records)
    charging = [r for r in records if r["event"] == "charging order-1"]
    assert [(r["activity"], r["attempt"]) for r in charging] == [("charge", 1), ("charge", 2)]
    warning = one(r for r in records if r["level"] == "warning")
    assert "attempt 1 failed: ConnectionError: the payment service hung up" in warning["event"]
    assert warning["attempt"] == 1
    spans = [line.removeprefix("span ") for line in lines if line.startswith("span ")]
    assert spans == [
        "POST /orders", "  StartWorkflow:checkout", "    RunWorkflow:checkout", "    RunActivity:charge",
        "    RunActivity:charge", "    RunWorkflow:checkout", "    RunWorkflow:checkout",
        "POST /orders/order-1/approve", "  SignalWorkflow:approve",
    ]


def one(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    found = list(items)
    assert len(found) == 1, found
    return found[0]


def test_ping_pong_two_workflows_signal_each_other(tmp_path: Path) -> None:
    lines = run_example("ping_pong", tmp_path)
    assert lines[:3] == [
        "[activity] charge A7: 30 EUR", "[activity] pack A7", "[main] A7 paid (pay-A7) and shipped as parcel-A7",
    ]
    assert lines[3].startswith("[main] order history: ")
    assert "ExternalSignalRequested, ExternalSignalResolved" in lines[3]


def test_signal_with_start_starts_the_cart_once_then_signals_it(tmp_path: Path) -> None:
    lines = run_example("signal_with_start", tmp_path)
    assert lines == [
        "[main] tea -> cart-ada (started)", "[main] scones -> cart-ada (signalled)",
        "[main] checkout -> cart-ada (signalled)", "[activity] order for ada: tea, scones", "[main] order-ada-2",
        "[main] history starts: WorkflowStarted, SignalReceived",
    ]


def test_updates_answer_with_the_total_once_per_id_and_rejections_leave_no_trace(tmp_path: Path) -> None:
    lines = run_example("updates", tmp_path)
    assert lines == [
        "[activity] reserved tea", "[main] tea -> total 4", "[activity] reserved scones",
        "[main] scones -> total 10", "[main] scones again, same id -> total 10",
        "[main] scones refused: scones is already in the cart", "[main] caviar refused: we do not sell caviar",
        "[main] paid 10", "[main] history: 4 update events (UpdateAccepted, UpdateCompleted)",
    ]


def test_id_reuse_runs_the_failed_report_again_once(tmp_path: Path) -> None:
    lines = run_example("id_reuse", tmp_path)
    assert lines[:5] == [
        "[activity] report for 2026-11-28: the database is down",
        "[main] run 1 failed: ConnectionError: database is down", "[main] run 2 is a new run: True",
        "[activity] report for 2026-11-28: built", "[main] run 2 result: report-2026-11-28.pdf",
    ]
    assert lines[5].startswith("[main] run 3 refused: workflow id 'report-2026-11-28' is taken by run ")
    assert lines[5].endswith("'allow_duplicate_failed_only' refuses a new run after a completed one")
    assert lines[6] == "[main] report-2026-11-28 is now run 2: True (completed)"


def test_finding_runs_filters_by_attributes_and_pages_with_a_cursor(tmp_path: Path) -> None:
    lines = run_example("finding_runs", tmp_path)
    assert lines[0] == "[support] acme awaiting payment: ['order-5']"
    assert lines[1] == "[support] priority 3: ['order-5', 'order-2']"
    assert lines[2].endswith(": ['order-1', 'order-2', 'order-3']")
    assert lines[3] == "[support] order-3: acme, memo {'note': 'gift wrap order 3'}"
    assert lines[4] == ("[support] pages: [['order-6', 'order-5'], ['order-4', 'order-3'], ['order-2', 'order-1']]")


def test_parent_close_cancels_terminates_and_abandons_the_orders_children(tmp_path: Path) -> None:
    assert run_example("parent_close", tmp_path) == [
        "[main] order-7 placed", "[main] packing-slip: cancelled", "[main] reservation-hold: terminated",
        "[main] audit-trail: running", "[main] audit-trail, on its own: audit-trail finished",
        "[main] invoice, a run of its own: running", "[main] invoice: invoice finished",
    ]


def test_cancellation_types_stop_wait_for_or_abandon_the_slow_quote(tmp_path: Path) -> None:
    lines = run_example("cancellation_types", tmp_path)
    assert [line for line in lines if line.startswith("[main]")] == [
        "[main] try_cancel: flat rate", "[main] try_cancel: history ActivityScheduled, ActivityCancelRequested",
        "[main] wait_cancellation_completed: flat rate",
        "[main] wait_cancellation_completed: history ActivityScheduled, ActivityCancelRequested, ActivityFailed",
        "[main] abandon: flat rate", "[main] abandon: history ActivityScheduled, ActivityCompleted",
    ]
    assert sorted(line for line in lines if line.startswith("[activity]")) == [
        "[activity] abandon: finished anyway", "[activity] try_cancel: stopped",
        "[activity] wait_cancellation_completed: stopped",
    ]


def test_time_limits_time_out_the_approval_and_delay_the_reminder(tmp_path: Path) -> None:
    lines = run_example("time_limits", tmp_path)
    assert lines == [
        "[main] reminded ada", "[main] 'approval' timed out: its run timeout passed",
        "[main] approval history: WorkflowStarted, WorkflowTaskCompleted, WorkflowTimedOut",
    ]


def test_schedules_fire_once_per_fire_time_and_can_be_paused_triggered_and_deleted(tmp_path: Path) -> None:
    lines = run_example("schedules", tmp_path)
    assert lines == [
        *["[main] report for sales (one run per fire time)"] * 3,
        "[main] triggered by hand: report for sales",
        "[main] nightly-report fires at 02:00 Paris time: next " + lines[4].rsplit("next ", 1)[1],
        "[main] nightly-report changed in place: next " + lines[5].rsplit("next ", 1)[1],
        "[main] schedules: nightly-report, sales-report",
        "[main] after delete: 0 schedules",
    ]
    assert lines[4].endswith(("02:00 CET", "02:00 CEST"))
    assert lines[5].endswith(("03:30 CET", "03:30 CEST"))


def test_retention_deletes_old_finished_runs_and_keeps_the_waiting_one(tmp_path: Path) -> None:
    lines = run_example("retention", tmp_path)
    index(lines, r"^\[main\] a dry run would delete 3 runs and 6 events$")
    index(lines, r"^\[main\] retention left 1 run: order-99 \(running\)$")
    assert lines[-1] == "[main] order 99 done"


def test_stuck_work_says_what_the_run_waits_for(tmp_path: Path) -> None:
    lines = run_example("stuck_work", tmp_path)
    assert lines[0].startswith("[describe] waiting for activity 'charge' on queue 'default': attempt 2 due at ")
    assert lines[0].endswith("; the last attempt failed: ConnectionError: the payment service hung up")
    assert lines[1] == "[describe] waiting for activity 'ship' on queue 'warehouse': no running worker hosts it"
    assert lines[2].startswith("[main] ResultTimeoutError: run ")
    assert lines[2].endswith("(workflow id 'order-42') did not finish within 0.5 s: waiting for activity 'ship' "
                             "on queue 'warehouse': no running worker hosts it")
    assert lines[3:] == ["[warehouse] ship order-42", "[main] order-42: pay-order-42, parcel-order-42"]


# -- the modules are importable: tests can run their workflows in-process ---------------


@pytest.mark.parametrize("name", ["onboarding", "parallel", "saga", "observability", "ping_pong", "retention",
                                  "stuck_work", "signal_with_start", "id_reuse",
                                  "time_limits", "updates", "parent_close", "cancellation_types", "finding_runs",
                                  "schedules"])
def test_examples_import_without_running(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(name)
    assert capsys.readouterr().out == ""
    assert callable(module.main)
    assert any(isinstance(value, retold.Workflow) for value in vars(module).values())


@pytest.mark.anyio
async def test_saga_workflow_in_memory() -> None:
    saga = load("saga")
    async with retold.Engine(
        "memory://", workflows=[saga.book_trip], activities=saga.ACTIVITIES, poll_interval=0.05
    ) as engine:
        run = await engine.start(saga.book_trip, saga.Trip("Ada", "Lisbon", fail_at="car"))
        with pytest.raises(retold.WorkflowFailedError, match="trip not booked"):
            await run.result(timeout=30)
        history = await run.history()
    scheduled = [e.activity for e in history if isinstance(e, ActivityScheduled)]
    assert scheduled == ["book_flight", "book_hotel", "book_car", "cancel_hotel", "cancel_flight"]

"""How events are stored: compact metadata, and older, fuller rows still read back."""

from __future__ import annotations

from datetime import timedelta

import orjson

import retold
from retold.authoring._options import ActivityOptions
from retold.history import events as ev


def test_defaults_are_left_out_of_the_stored_metadata() -> None:
    started = ev.WorkflowStarted(seq=1, at=5.0, workflow="wf", workflow_id="w-1", input=b"[]")
    scheduled = ev.ActivityScheduled(
        seq=2, at=6.0, activity="charge", input=b"[1]", options=ActivityOptions().to_json())
    assert ev.encode_event(started)[1] == b'{"workflow":"wf","workflow_id":"w-1"}'
    assert ev.encode_event(scheduled)[1] == b'{"activity":"charge","options":{}}'
    for event in (started, scheduled):
        assert ev.decode_event(event.seq, event.at, *ev.encode_event(event)) == event
    child = ev.WorkflowStarted(seq=1, at=5.0, workflow="wf", workflow_id="w-2", input=b"[]",
                               parent_run_id="p", parent_seq=4)
    assert ev.decode_event(1, 5.0, *ev.encode_event(child)) == child  # non-defaults are kept


def test_options_store_only_what_differs_and_read_back_whole() -> None:
    options = ActivityOptions(
        retry=retold.RetryPolicy(max_attempts=3, non_retryable_error_types=("ValueError",)),
        start_to_close=timedelta(seconds=30), task_queue="gpu",
    )
    data = options.to_json()
    assert data == {"retry": {"max_attempts": 3, "non_retryable_error_types": ["ValueError"]},
                    "start_to_close": 30.0, "task_queue": "gpu"}
    assert ActivityOptions.from_json(orjson.loads(orjson.dumps(data))) == options
    assert ActivityOptions.from_json({}) == ActivityOptions()


def test_rows_written_with_every_field_still_decode() -> None:
    # As retold wrote them before the metadata became compact.
    full = {
        "activity": "charge",
        "options": {
            "retry": {"initial_interval": 1.0, "backoff_coefficient": 2.0, "maximum_interval": None,
                      "max_attempts": 0, "non_retryable_error_types": [], "jitter": 0.2},
            "start_to_close": None, "schedule_to_close": None, "heartbeat_timeout": None,
            "task_queue": "default",
        },
    }
    event = ev.decode_event(2, 6.0, "ActivityScheduled", orjson.dumps(full), b"[1]")
    assert isinstance(event, ev.ActivityScheduled)
    assert ActivityOptions.from_json(event.options) == ActivityOptions()
    started = ev.decode_event(1, 5.0, "WorkflowStarted", orjson.dumps({
        "workflow": "wf", "workflow_id": "w", "parent_run_id": None, "parent_seq": None,
        "continued_from": None}), b"[]")
    assert started == ev.WorkflowStarted(seq=1, at=5.0, workflow="wf", workflow_id="w", input=b"[]")

"""What a NATS store reads across versions: log messages and snapshots written before a field existed."""

from __future__ import annotations

from retold.history.failure import BlockedTask, Failure
from retold.stores import Plan, TaskChange
from retold.stores.memory._data import ActTask, WfTask
from retold.stores.nats import _codec, _snapshot


def test_fields_left_at_their_defaults_are_not_written_so_older_readers_can_read_them() -> None:
    plan = Plan("r1", expect_seq=3, task=TaskChange("keep", signals=2))
    encoded = _codec.encode(plan)
    assert set(encoded["f"]) == {"run_id", "expect_seq", "task"}  # no stepping_task, no empty lists
    assert set(encoded["f"]["task"]["f"]) == {"kind", "signals"}  # no attempts
    assert _codec.decode(encoded) == plan
    marked = Plan("r1", stepping_task=7)
    assert _codec.decode(_codec.encode(marked)) == marked
    blocked = TaskChange("backoff", visible_at=5.0, attempts=2, failed_by=("f1",), failure=BlockedTask(
        failure=Failure(type="WorkerDied", message="m"), attempts=1, since=1.0, retry_at=5.0))
    assert _codec.decode(_codec.encode(blocked)) == blocked


def test_a_snapshot_from_before_the_stepping_marks_reads_with_none_set() -> None:
    wft = WfTask("r1", "wf", 1.0)
    wft.attempts = 2
    old = {name: value for name, value in _snapshot._row(wft).items() if name not in ("lapses", "stepping")}
    read = _snapshot._unrow(WfTask, old)
    assert (read.run_id, read.attempts, read.lapses, read.stepping) == ("r1", 2, 0, False)
    task = ActTask(4, "r1", "w1", 2, "a", "q", b"[]", b"{}", 1.0, None)
    old = {name: value for name, value in _snapshot._row(task).items() if name not in ("lapses", "deaths", "stepping")}
    read_task = _snapshot._unrow(ActTask, old)
    assert (read_task.id, read_task.lapses, read_task.deaths, read_task.stepping) == (4, 0, 0, False)

"""The run state machine: every rule of what happens to a run, and nothing else.

Pure: no I/O, no clock (``now`` is an argument), no store. Each function
takes a run's state (:class:`~retold.stores._plan.RunState`) and one input
(a step's commands, an activity outcome, an input event, a failed workflow
task, a start, a termination) and returns a :class:`Decision`: the :class:`Plan` a store
applies atomically, plus the inputs it gives other runs (a parent told its
child closed, children asked to cancel), which are decided in turn against
those runs' states (:func:`deliver`) in the same transaction.
"""

from __future__ import annotations

from ._core import (
    CLOSING,
    EXECUTION_TIMEOUT_TIMER,
    MAX_BACKOFF,
    MAX_FAILED_BY,
    NO_LOOKUPS,
    RUN_TIMEOUT_TIMER,
    TIMEOUT_KINDS,
    ActivityStep,
    ActivityTake,
    Decision,
    Lookups,
    ParentClosed,
    StartStep,
    commit,
    deliver,
    first_step,
    inbox_needed,
    release,
    stepped,
    terminated_failure,
    timed_out_failure,
    timeout_timers,
    unhold,
)
from ._starts import (
    existing,
    signal_with_start,
    start,
    start_timeouts,
    timed_out,
)
from ._tasks import (
    activity_outcome,
    activity_stepping_mark,
    attempt_failed,
    parent_closed,
    stepping_mark,
    terminate,
    workers_died,
    workers_died_in_steps,
    workflow_task_failed,
)
from ._updates import accept_update

__all__ = [
    "CLOSING", "EXECUTION_TIMEOUT_TIMER", "MAX_BACKOFF", "MAX_FAILED_BY", "NO_LOOKUPS", "RUN_TIMEOUT_TIMER",
    "TIMEOUT_KINDS", "ActivityStep", "ActivityTake", "Decision", "Lookups", "ParentClosed", "StartStep",
    "accept_update", "activity_outcome", "activity_stepping_mark", "attempt_failed", "commit", "deliver", "existing",
    "first_step", "inbox_needed", "parent_closed", "release", "signal_with_start", "start", "start_timeouts", "stepped",
    "stepping_mark", "terminate", "terminated_failure", "timed_out", "timed_out_failure", "timeout_timers", "unhold",
    "workers_died", "workers_died_in_steps", "workflow_task_failed",
]

"""History events: frozen, past-tense facts with a run-local sequence number.

Every event has ``seq`` (1, 2, 3... within its run, gap-free) and ``at`` (the
store's clock, seconds since the epoch; ``time`` gives it as a datetime).
Payload fields (``input``, ``result``, ``value``) hold codec-encoded bytes;
failures are :class:`~retold.history.failure.Failure` values (recorded as
JSON objects: ``type``, ``message``, ``details``, ``non_retryable``...).

Events fall into three groups:

* *commands*, written when workflow code asks for something
  (``ActivityScheduled``, ``TimerStarted``, ``TimerCancelled``,
  ``MarkerRecorded``, ``SearchAttributesUpserted``, ``ChildWorkflowStarted``, ``ExternalSignalRequested``,
  ``WorkflowStartRequested`` and the closing events), or
  ``WorkflowTaskCompleted`` when an activation asked for nothing;
* *inputs*, written when something happens to the run (``WorkflowStarted``,
  activity and child outcomes, ``TimerFired``, ``SignalReceived``,
  ``CancelRequested``, ``ExternalSignalResolved``, ``WorkflowStartResolved``,
  ``UpdateAccepted``;
  its handler's outcome, ``UpdateCompleted``, is a command);
* ``WorkflowFailed`` may be either: the workflow raised, or the engine gave
  up on a workflow task that failed on every attempt;
* ``WorkflowTerminated`` is neither: an operator closed the run without
  running its code (``run.terminate(reason)``); nor is ``WorkflowTimedOut``:
  its run or execution timeout closed it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from .failure import Failure

__all__ = [
    "COMMAND_TYPES",
    "EVENT_TYPES",
    "ActivityCancelRequested",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
    "ActivityTimedOut",
    "CancelRequested",
    "ChildWorkflowCancelRequested",
    "ChildWorkflowCompleted",
    "ChildWorkflowFailed",
    "ChildWorkflowStarted",
    "Event",
    "ExternalSignalRequested",
    "ExternalSignalResolved",
    "WorkflowStartRequested",
    "WorkflowStartResolved",
    "MarkerRecorded",
    "SearchAttributesUpserted",
    "SignalReceived",
    "TimerCancelled",
    "TimerFired",
    "TimerStarted",
    "UpdateAccepted",
    "UpdateCompleted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowContinuedAsNew",
    "WorkflowFailed",
    "WorkflowStarted",
    "WorkflowTaskCompleted",
    "WorkflowTerminated",
    "WorkflowTimedOut",
    "decode_event",
    "encode_event",
]

@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every history event."""

    seq: int
    at: float
    payload_field: ClassVar[str | None] = None

    @property
    def time(self) -> datetime:
        """``at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.at, UTC)

    @property
    def type(self) -> str:
        """The event's type name, e.g. ``"ActivityCompleted"``."""
        return type(self).__name__

    def describe(self) -> str:
        """A short human-readable description, used in error messages.

        Activity options are left out: they never decide a replay.
        """
        fields = []
        for f in dataclasses.fields(self):
            if f.name in ("seq", "at", "options"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bytes):
                value = value[:60].decode("utf-8", "replace")
            elif isinstance(value, Failure):
                value = value.to_json()  # as recorded
            fields.append(f"{f.name}={value!r}")
        return f"{self.type}({', '.join(fields)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStarted(Event):
    """The run was created."""

    workflow: str
    workflow_id: str
    input: bytes
    parent_run_id: str | None = None
    parent_seq: int | None = None
    continued_from: str | None = None
    # Propagation headers (W3C trace context: ``traceparent``, ``tracestate``)
    # from the code that started the run; absent in histories written before.
    headers: dict[str, str] | None = None
    # The run's time limits: ``run_timeout`` (seconds from this run's start) and
    # ``execution_deadline`` (store time, across continue-as-new); None: none.
    timeouts: dict[str, float] | None = None
    # Search attributes in their stored forms (``retold.history.attributes``)
    # and the memo (JSON values), as the run was started with them.
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityScheduled(Event):
    """Workflow code asked for an activity to run."""

    activity: str
    input: bytes
    options: dict[str, Any]
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCompleted(Event):
    """An activity attempt returned; ``scheduled`` is its ActivityScheduled seq."""

    scheduled: int
    attempt: int
    result: bytes
    payload_field: ClassVar[str | None] = "result"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityFailed(Event):
    """An activity failed and its retry policy gave up."""

    scheduled: int
    attempt: int
    failure: Failure


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityTimedOut(Event):
    """An activity ran out of time (``kind``: schedule_to_close, ...).

    ``failure``: the last attempt's failure, when there was one (the cause
    of the timeout the workflow sees).
    """

    scheduled: int
    attempt: int
    kind: str
    failure: Failure | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerStarted(Event):
    """Workflow code started a durable timer of ``duration`` seconds."""

    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired(Event):
    """The timer started at event ``started`` fired."""

    started: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCancelled(Event):
    """Workflow code cancelled the timer started at event ``started``."""

    started: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalReceived(Event):
    """A signal arrived."""

    name: str
    input: bytes
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateAccepted(Event):
    """Update ``update_id`` (handler ``name``, arguments ``input``) passed its validator and was accepted."""

    update_id: str
    name: str
    input: bytes
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateCompleted(Event):
    """The handler of the update accepted at event ``accepted`` returned ``result`` or raised (``failure``)."""

    accepted: int
    update_id: str
    result: bytes = b""
    failure: Failure | None = None
    payload_field: ClassVar[str | None] = "result"


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkerRecorded(Event):
    """A recorded decision: a side effect's value or a patch taken."""

    kind: str
    name: str
    value: bytes = b""
    payload_field: ClassVar[str | None] = "value"


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchAttributesUpserted(Event):
    """Workflow code set search attributes (stored forms, ``retold.history.attributes``; None removes one)."""

    attributes: dict[str, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowStarted(Event):
    """Workflow code started a child workflow."""

    workflow: str
    workflow_id: str
    run_id: str
    input: bytes
    headers: dict[str, str] | None = None  # the parent's, given to the child's WorkflowStarted
    # The child's ``run_timeout``, ``execution_timeout`` and ``start_delay`` in seconds (``with_options``).
    limits: dict[str, float] | None = None
    # What the parent's close does to the child while it is open (None: "request_cancel").
    parent_close_policy: str | None = None
    # The child's search attributes (stored forms) and memo (``with_options``).
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowCompleted(Event):
    """The child started at event ``started`` completed."""

    started: int
    result: bytes
    payload_field: ClassVar[str | None] = "result"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowFailed(Event):
    """The child started at event ``started`` failed or was cancelled."""

    started: int
    failure: Failure
    cancelled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested(Event):
    """Someone asked for the run to be cancelled."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCancelRequested(Event):
    """Workflow code cancelled its wait for the activity scheduled at ``scheduled``.

    The activity's task is withdrawn: an attempt not started never starts, a
    running one is cut off by its worker and its outcome is not recorded.
    With ``wait`` (``cancellation_type="wait_cancellation_completed"``) the
    task stays until its attempt has ended: a running one is told, and the
    outcome it ends with (a cancellation, or whatever it returned) is
    recorded as final; the workflow's wait ends then.
    """

    scheduled: int
    wait: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowCancelRequested(Event):
    """Workflow code cancelled its wait for the child started at ``started``.

    The child run (``workflow_id``, ``run_id``) is sent a ``CancelRequested``;
    the parent's wait ends when the child closes.
    """

    started: int
    workflow_id: str
    run_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalSignalRequested(Event):
    """Workflow code sent signal ``name`` to another workflow (the current run of ``workflow_id``)."""

    workflow_id: str
    name: str
    input: bytes
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalSignalResolved(Event):
    """The signal sent at event ``requested`` was recorded by its target, or (``failure``) could not be."""

    requested: int
    failure: Failure | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStartRequested(Event):
    """Workflow code started another workflow as a run of its own (detached: not a child).

    The new run has no parent: the starter's close does not concern it, nor
    does its close concern the starter. ``run_id`` is decided by the starter
    (from its own run id and this event's number), so a replay never starts
    a second run.
    """

    workflow: str
    workflow_id: str
    run_id: str
    input: bytes
    headers: dict[str, str] | None = None  # the starter's trace context, given to the new run
    # The new run's ``run_timeout``, ``execution_timeout`` and ``start_delay`` in seconds (``with_options``).
    limits: dict[str, float] | None = None
    # The new run's search attributes (stored forms) and memo (``with_options``).
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStartResolved(Event):
    """The start asked at event ``requested`` made its run, or (``failure``) could not: its id was taken."""

    requested: int
    failure: Failure | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTaskCompleted(Event):
    """A workflow task delivered inputs and the code asked for nothing.

    It marks where that activation ended, so that a replay delivers the same
    inputs together, as the live run did. Activations that produce commands
    need no marker: their commands end them.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowCompleted(Event):
    """The workflow returned."""

    result: bytes
    payload_field: ClassVar[str | None] = "result"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowFailed(Event):
    """The workflow raised, or its workflow task failed on every attempt."""

    failure: Failure


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowCancelled(Event):
    """The workflow ended by cancellation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowContinuedAsNew(Event):
    """The workflow ended and a new run of it started with ``input``."""

    new_run_id: str
    input: bytes
    headers: dict[str, str] | None = None  # given to the new run's WorkflowStarted
    timeouts: dict[str, float] | None = None  # the run's time limits, given to the new run's WorkflowStarted
    payload_field: ClassVar[str | None] = "input"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTerminated(Event):
    """The run was closed from outside without running its code (``terminate``), with ``reason``."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTimedOut(Event):
    """The run was closed by its time limit without running its code: ``kind`` ``"run"`` or ``"execution"``."""

    kind: str = "run"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        WorkflowStarted, ActivityScheduled, ActivityCompleted, ActivityFailed,
        ActivityTimedOut, TimerStarted, TimerFired, TimerCancelled, SignalReceived,
        MarkerRecorded, ChildWorkflowStarted, ChildWorkflowCompleted,
        ChildWorkflowFailed, CancelRequested, WorkflowTaskCompleted, WorkflowCompleted, WorkflowFailed,
        WorkflowCancelled, WorkflowContinuedAsNew, ActivityCancelRequested, ChildWorkflowCancelRequested,
        ExternalSignalRequested, ExternalSignalResolved, WorkflowTerminated, WorkflowTimedOut,
        UpdateAccepted, UpdateCompleted, WorkflowStartRequested, WorkflowStartResolved, SearchAttributesUpserted,
    )
}

COMMAND_TYPES: tuple[type[Event], ...] = (
    ActivityScheduled, TimerStarted, TimerCancelled, MarkerRecorded,
    ChildWorkflowStarted, ActivityCancelRequested, ChildWorkflowCancelRequested, ExternalSignalRequested,
    WorkflowStartRequested, UpdateCompleted, SearchAttributesUpserted, WorkflowTaskCompleted, WorkflowCompleted,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
)

TERMINAL_TYPES: tuple[type[Event], ...] = (
    WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowContinuedAsNew, WorkflowTerminated,
    WorkflowTimedOut,
)

_FIELDS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(
        f.name for f in dataclasses.fields(cls)
        if f.name not in ("seq", "at") and f.name != cls.payload_field
    )
    for cls in EVENT_TYPES.values()
}


# Fields with a default: the stored metadata leaves them out when they hold it.
_DEFAULTS: dict[type[Event], dict[str, Any]] = {
    cls: {
        f.name: f.default for f in dataclasses.fields(cls)
        if f.name in _FIELDS[cls] and f.default is not dataclasses.MISSING
    }
    for cls in EVENT_TYPES.values()
}
_NO_DEFAULT = object()


def encode_event(event: Event) -> tuple[str, bytes, bytes | None]:
    """Split an event into (type name, JSON metadata, payload bytes)."""
    cls = type(event)
    defaults = _DEFAULTS[cls]
    meta = {}
    for name in _FIELDS[cls]:
        value = getattr(event, name)
        if value != defaults.get(name, _NO_DEFAULT):
            meta[name] = value.to_json() if isinstance(value, Failure) else value
    payload = getattr(event, cls.payload_field) if cls.payload_field else None
    return cls.__name__, orjson.dumps(meta), payload


def decode_event(seq: int, at: float, type_name: str, meta: bytes, payload: bytes | None) -> Event:
    """Rebuild an event from :func:`encode_event`'s parts."""
    cls = EVENT_TYPES[type_name]
    kwargs: dict[str, Any] = orjson.loads(meta) if meta else {}
    failure = kwargs.get("failure")
    if failure is not None:
        kwargs["failure"] = Failure.from_json(failure)
    if cls.payload_field:
        kwargs[cls.payload_field] = payload if payload is not None else b""
    return cls(seq=seq, at=at, **kwargs)

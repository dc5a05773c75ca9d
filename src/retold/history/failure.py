"""A recorded failure: what a history (and a run's record) keeps of an error.

A :class:`Failure` is plain data, built from an exception by
``retold.errors.failure_from_exception`` and turned back into one by
``retold.errors.exception_from_failure``. On disk it is a JSON object whose
keys are the field names (``type``, ``message``, ``details``,
``non_retryable``, and when set ``activity``, ``child``, ``cause``, ``seq``,
``workflow_task``): :meth:`Failure.to_json` and :meth:`Failure.from_json`
write and read exactly that object. Keys this version does not know are kept
in ``extra`` and written back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, final

__all__ = ["BlockedTask", "Failure", "FailedActivity", "FailedChild"]

_KNOWN = frozenset({"type", "message", "details", "non_retryable", "activity", "child", "cause", "seq",
                    "workflow_task"})


@final
@dataclass(frozen=True, slots=True)
class FailedActivity:
    """The activity an ``ActivityError`` failure is about."""

    name: str
    seq: int
    timed_out: bool = False


@final
@dataclass(frozen=True, slots=True)
class FailedChild:
    """The child workflow a ``ChildWorkflowError`` failure is about."""

    workflow: str
    workflow_id: str
    status: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A recorded failure.

    Attributes:
        type: the error's qualified type name (an ``ApplicationError``'s own ``type``).
        message: the error's message.
        details: its traceback text, when known.
        non_retryable: whether retry policies must stop at it.
        cause: the failure it wraps (``__cause__``), if any.
        activity: for an ``ActivityError``, the activity it is about.
        child: for a ``ChildWorkflowError``, the child it is about.
        seq: for a ``NondeterminismError``, the diverging event's number.
        workflow_task: the run failed because its workflow task did (an
            error of the code, not the workflow's own exception).
        extra: keys of the recorded JSON this version does not know.
    """

    type: str
    message: str
    details: str = ""
    non_retryable: bool = False
    cause: Failure | None = None
    activity: FailedActivity | None = None
    child: FailedChild | None = None
    seq: int | None = None
    workflow_task: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __getitem__(self, key: str) -> Any:
        """The recorded JSON's value for ``key`` (``failure["message"]``), as histories read before."""
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def get(self, key: str, default: Any = None) -> Any:
        """The recorded JSON's value for ``key``, or ``default``."""
        return self.to_json().get(key, default)

    def to_json(self) -> dict[str, Any]:
        """The JSON object the history records."""
        out: dict[str, Any] = {"type": self.type, "message": self.message, "details": self.details,
                               "non_retryable": self.non_retryable}
        if self.activity is not None:
            a = self.activity
            out["activity"] = {"name": a.name, "seq": a.seq, "timed_out": a.timed_out}
        if self.child is not None:
            c = self.child
            out["child"] = {"workflow": c.workflow, "workflow_id": c.workflow_id, "status": c.status}
        if self.cause is not None:
            out["cause"] = self.cause.to_json()
        if self.seq is not None:
            out["seq"] = self.seq
        if self.workflow_task:
            out["workflow_task"] = True
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Failure:
        """Read a recorded failure (any version's: missing keys take their defaults)."""
        cause = data.get("cause")
        activity = data.get("activity")
        child = data.get("child")
        seq = data.get("seq")
        return cls(
            type=str(data.get("type") or ""),
            message=str(data.get("message", "")),
            details=str(data.get("details", "")),
            non_retryable=bool(data.get("non_retryable")),
            cause=cls.from_json(cause) if isinstance(cause, Mapping) else None,
            activity=FailedActivity(str(activity.get("name")), int(activity.get("seq", 0)),
                                    bool(activity.get("timed_out")))
            if isinstance(activity, Mapping) else None,
            child=FailedChild(str(child.get("workflow")), str(child.get("workflow_id")), str(child.get("status")))
            if isinstance(child, Mapping) else None,
            seq=None if seq is None else int(seq),
            workflow_task=bool(data.get("workflow_task")),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )


_TASK_KEYS = ("attempts", "since", "retry_at", "fingerprint")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BlockedTask:
    """A workflow task's last failed attempt, kept with the task while the run is blocked.

    On disk: the failure's JSON object with ``attempts``, ``since``,
    ``retry_at`` (store time) and, when known, ``fingerprint`` added.
    """

    failure: Failure
    attempts: int
    since: float
    retry_at: float
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object the workflow task keeps."""
        out = self.failure.to_json()
        out.update(attempts=self.attempts, since=self.since, retry_at=self.retry_at)
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BlockedTask:
        """Read what :meth:`to_json` wrote."""
        fingerprint = data.get("fingerprint")
        return cls(
            failure=Failure.from_json({k: v for k, v in data.items() if k not in _TASK_KEYS}),
            attempts=int(data.get("attempts", 1)), since=float(data.get("since", 0.0)),
            retry_at=float(data.get("retry_at", 0.0)),
            fingerprint=None if fingerprint is None else str(fingerprint),
        )

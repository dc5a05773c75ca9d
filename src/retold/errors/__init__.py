"""Every public exception retold raises.

The tree::

    RetoldError
    ├── ConfigurationError          bad engine or decorator configuration
    ├── NotRegisteredError          a workflow or activity the engine does not host
    ├── InvalidArgumentsError       wrong argument count or types for a workflow
    ├── PayloadError                a value the codec cannot encode or decode
    ├── RunNotFoundError            no run with that id
    ├── ScheduleNotFoundError       no schedule with that id
    ├── RunFinishedError            signal or cancel sent to a finished run
    ├── QueryError                  unknown query name, or the handler raised
    ├── UpdateRejectedError         no update handler, or its validator raised: nothing recorded
    ├── UpdateFailedError           the update's handler raised, or the run closed first
    ├── UpdateTimeoutError          an accepted update not finished in time (also a TimeoutError)
    ├── IdempotencyError            same id or key, different workflow or input
    ├── StoreError                  the database failed or is not usable
    │   ├── SchemaError             not a retold database, or a newer schema
    │   ├── ConflictError           the run moved on under a workflow task
    │   └── LeaseLostError          another worker holds the task now
    ├── NondeterminismError         replay diverged from the recorded history
    ├── HistoryFormatError          a history document that is not valid
    ├── WorkflowSandboxError        workflow code reached the outside world
    ├── WorkflowDeadlockError       a workflow step did not yield within the limit
    ├── ActivityError               an activity failed after its retries
    ├── ChildWorkflowError          a child workflow failed or was cancelled
    ├── WorkflowFailedError         awaiting the result of a failed run
    │   ├── WorkflowCancelledError  awaiting the result of a cancelled run
    │   ├── WorkflowTerminatedError awaiting the result of a terminated run
    │   └── WorkflowTimedOutError   awaiting the result of a run closed by its run or execution timeout
    └── ResultTimeoutError          result(timeout=...) gave up first (also a TimeoutError)

``ApplicationError`` is not an error retold raises on its own: activities and
workflows raise it to mark a failure as non-retryable, and retold uses it to
carry a remote failure (type name, message, traceback) across processes.
"""
from __future__ import annotations

from ._base import (
    ConfigurationError,
    ConflictError,
    HistoryFormatError,
    IdempotencyError,
    InvalidArgumentsError,
    LeaseLostError,
    NondeterminismError,
    NotRegisteredError,
    PayloadError,
    QueryError,
    RetoldError,
    RunFinishedError,
    RunNotFoundError,
    ScheduleNotFoundError,
    SchemaError,
    SignalBufferFullError,
    StoreError,
    UpdateFailedError,
    UpdateRejectedError,
    UpdateTimeoutError,
    WorkflowDeadlockError,
    WorkflowSandboxError,
)
from ._outcomes import (
    TERMINATED_TYPE as TERMINATED_TYPE,
)
from ._outcomes import (
    TIMED_OUT_TYPE as TIMED_OUT_TYPE,
)
from ._outcomes import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    ResultTimeoutError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from ._outcomes import _rebuild_activity_error as _rebuild_activity_error
from ._outcomes import _rebuild_application_error as _rebuild_application_error
from ._outcomes import _rebuild_child_error as _rebuild_child_error
from ._records import exception_from_failure as exception_from_failure
from ._records import failure_from_exception as failure_from_exception

__all__ = [
    "ActivityError",
    "ApplicationError",
    "ChildWorkflowError",
    "ConfigurationError",
    "ConflictError",
    "HistoryFormatError",
    "IdempotencyError",
    "InvalidArgumentsError",
    "LeaseLostError",
    "NondeterminismError",
    "NotRegisteredError",
    "PayloadError",
    "QueryError",
    "ResultTimeoutError",
    "RetoldError",
    "RunFinishedError",
    "RunNotFoundError",
    "ScheduleNotFoundError",
    "SchemaError",
    "SignalBufferFullError",
    "StoreError",
    "UpdateFailedError",
    "UpdateRejectedError",
    "UpdateTimeoutError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowDeadlockError",
    "WorkflowSandboxError",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
]

# Their home is this module: recorded failures name them by it (``retold.errors.ActivityError``),
# and pickles find them here.
for _obj in (*(globals()[_name] for _name in __all__), _rebuild_activity_error, _rebuild_application_error,
             _rebuild_child_error):
    _obj.__module__ = __name__
del _obj

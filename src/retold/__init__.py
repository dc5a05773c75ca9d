"""retold: durable execution for Python.

Workflows are plain ``async def`` functions whose every await on an activity,
a timer or a signal is recorded in an append-only history. A crashed run
resumes elsewhere by replaying that history on a deterministic event loop.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._logging import RunContextFilter as RunContextFilter
from ._logging import get_logger as get_logger
from ._logging import logger as logger
from ._pending import PendingActivity as PendingActivity
from ._pending import PendingChild as PendingChild
from ._pending import PendingSignal as PendingSignal
from ._pending import PendingTimer as PendingTimer
from ._pending import PendingWork as PendingWork
from .authoring import ActivityCancellationType as ActivityCancellationType
from .authoring import IdReusePolicy as IdReusePolicy
from .authoring import ParentClosePolicy as ParentClosePolicy
from .authoring._activity import ActivityInfo as ActivityInfo
from .authoring._activity import activity_info as activity_info
from .authoring._activity import heartbeat as heartbeat
from .authoring._api import ChildHandle as ChildHandle
from .authoring._api import continue_as_new as continue_as_new
from .authoring._api import execute as execute
from .authoring._api import execute_child as execute_child
from .authoring._api import info as info
from .authoring._api import now as now
from .authoring._api import patched as patched
from .authoring._api import random as random
from .authoring._api import set_query_handler as set_query_handler
from .authoring._api import set_update_handler as set_update_handler
from .authoring._api import side_effect as side_effect
from .authoring._api import signal_workflow as signal_workflow
from .authoring._api import sleep as sleep
from .authoring._api import start_child as start_child
from .authoring._api import start_workflow as start_workflow
from .authoring._api import update_handler as update_handler
from .authoring._api import upsert_search_attributes as upsert_search_attributes
from .authoring._api import uuid4 as uuid4
from .authoring._api import wait_signal as wait_signal
from .authoring._decorators import Activity as Activity
from .authoring._decorators import Workflow as Workflow
from .authoring._decorators import activity as activity
from .authoring._decorators import workflow as workflow
from .authoring._decorators import workflow_ref as workflow_ref
from .authoring._options import ActivityOptions as ActivityOptions
from .authoring._options import RetryPolicy as RetryPolicy
from .authoring._runtime import WorkflowInfo as WorkflowInfo
from .client import Client as Client
from .client import EventStream as EventStream
from .client import RunDescription as RunDescription
from .client import RunHandle as RunHandle
from .client import RunPage as RunPage
from .client import ScheduleHandle as ScheduleHandle
from .client import WorkflowTaskFailure as WorkflowTaskFailure
from .engine._engine import Engine as Engine
from .engine._schedules import Schedule as Schedule
from .engine._schedules import ScheduleDescription as ScheduleDescription
from .errors import ActivityError as ActivityError
from .errors import ApplicationError as ApplicationError
from .errors import ChildWorkflowError as ChildWorkflowError
from .errors import ConfigurationError as ConfigurationError
from .errors import ConflictError as ConflictError
from .errors import HistoryFormatError as HistoryFormatError
from .errors import IdempotencyError as IdempotencyError
from .errors import InvalidArgumentsError as InvalidArgumentsError
from .errors import LeaseLostError as LeaseLostError
from .errors import NondeterminismError as NondeterminismError
from .errors import NotRegisteredError as NotRegisteredError
from .errors import PayloadError as PayloadError
from .errors import QueryError as QueryError
from .errors import ResultTimeoutError as ResultTimeoutError
from .errors import RetoldError as RetoldError
from .errors import RunFinishedError as RunFinishedError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import ScheduleNotFoundError as ScheduleNotFoundError
from .errors import SchemaError as SchemaError
from .errors import SignalBufferFullError as SignalBufferFullError
from .errors import StoreError as StoreError
from .errors import UpdateFailedError as UpdateFailedError
from .errors import UpdateRejectedError as UpdateRejectedError
from .errors import UpdateTimeoutError as UpdateTimeoutError
from .errors import WorkflowCancelledError as WorkflowCancelledError
from .errors import WorkflowFailedError as WorkflowFailedError
from .errors import WorkflowSandboxError as WorkflowSandboxError
from .errors import WorkflowTerminatedError as WorkflowTerminatedError
from .errors import WorkflowTimedOutError as WorkflowTimedOutError
from .history.attributes import SearchAttributeValue as SearchAttributeValue
from .history.codec import Codec as Codec
from .history.codec import JsonCodec as JsonCodec
from .history.codec import PickleCodec as PickleCodec
from .history.export import History as History
from .history.failure import Failure as Failure
from .stores._purge import PurgeReport as PurgeReport

try:
    __version__: str = _version("retold")
    """The installed version of retold (from the package's metadata)."""
except _PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Activity",
    "ActivityCancellationType",
    "ActivityError",
    "ActivityInfo",
    "ActivityOptions",
    "ApplicationError",
    "ChildHandle",
    "ChildWorkflowError",
    "Client",
    "Codec",
    "ConfigurationError",
    "ConflictError",
    "Engine",
    "EventStream",
    "Failure",
    "History",
    "HistoryFormatError",
    "IdReusePolicy",
    "IdempotencyError",
    "InvalidArgumentsError",
    "JsonCodec",
    "LeaseLostError",
    "NondeterminismError",
    "NotRegisteredError",
    "ParentClosePolicy",
    "PayloadError",
    "PendingActivity",
    "PendingChild",
    "PendingSignal",
    "PendingTimer",
    "PendingWork",
    "PickleCodec",
    "PurgeReport",
    "QueryError",
    "ResultTimeoutError",
    "RetoldError",
    "RetryPolicy",
    "RunDescription",
    "RunFinishedError",
    "SignalBufferFullError",
    "RunHandle",
    "RunPage",
    "SearchAttributeValue",
    "RunNotFoundError",
    "RunContextFilter",
    "Schedule",
    "ScheduleDescription",
    "ScheduleHandle",
    "ScheduleNotFoundError",
    "SchemaError",
    "StoreError",
    "UpdateFailedError",
    "UpdateRejectedError",
    "UpdateTimeoutError",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowInfo",
    "WorkflowSandboxError",
    "WorkflowTaskFailure",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
    "activity",
    "activity_info",
    "continue_as_new",
    "execute",
    "execute_child",
    "get_logger",
    "heartbeat",
    "info",
    "logger",
    "now",
    "patched",
    "upsert_search_attributes",
    "random",
    "set_query_handler",
    "set_update_handler",
    "side_effect",
    "sleep",
    "start_child",
    "start_workflow",
    "update_handler",
    "uuid4",
    "signal_workflow",
    "wait_signal",
    "workflow",
    "workflow_ref",
]

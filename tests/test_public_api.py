"""The public surface: pinned, documented, and nothing private leaks."""

from __future__ import annotations

import inspect

import retold
import retold.cli
import retold.client
import retold.errors
import retold.http
import retold.stores
import retold.stores.sql

PUBLIC = [
    "Activity", "ActivityCancellationType", "ActivityError", "ActivityInfo", "ActivityOptions", "ApplicationError",
    "ChildHandle",
    "ChildWorkflowError", "Client", "Codec", "ConfigurationError", "ConflictError", "Engine", "EventStream", "Failure",
    "History",
    "HistoryFormatError", "IdReusePolicy", "IdempotencyError",
    "InvalidArgumentsError", "JsonCodec", "LeaseLostError", "NondeterminismError", "NotRegisteredError",
    "ParentClosePolicy", "PayloadError", "PendingActivity", "PendingChild", "PendingSignal", "PendingTimer",
    "PendingWork", "PickleCodec", "PurgeReport",
    "QueryError", "ResultTimeoutError", "RetoldError", "RetryPolicy", "RunContextFilter", "RunDescription",
    "RunFinishedError", "RunHandle", "RunNotFoundError", "RunPage", "Schedule", "ScheduleDescription",
    "ScheduleHandle", "ScheduleNotFoundError", "SchemaError", "SearchAttributeValue",
    "SignalBufferFullError", "StoreError",
    "UpdateFailedError", "UpdateRejectedError", "UpdateTimeoutError", "Workflow", "WorkflowCancelledError",
    "WorkflowFailedError", "WorkflowInfo", "WorkflowSandboxError", "WorkflowTaskFailure", "WorkflowTerminatedError",
    "WorkflowTimedOutError",
    "activity", "activity_info",
    "continue_as_new", "execute", "execute_child", "get_logger", "heartbeat", "info", "logger",
    "now", "patched", "random",
    "set_query_handler", "set_update_handler", "side_effect", "signal_workflow", "sleep", "start_child",
    "start_workflow", "update_handler", "upsert_search_attributes", "uuid4", "wait_signal", "workflow",
    "workflow_ref",
]


def test_all_is_pinned() -> None:
    assert sorted(retold.__all__) == sorted(PUBLIC)


def test_every_public_name_exists_and_is_documented() -> None:
    for module in (retold, retold.client, retold.errors, retold.stores, retold.stores.sql, retold.http, retold.cli):
        for name in module.__all__:
            obj = getattr(module, name)
            assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_every_error_derives_from_the_root() -> None:
    for name in retold.errors.__all__:
        cls = getattr(retold.errors, name)
        assert issubclass(cls, retold.RetoldError), name

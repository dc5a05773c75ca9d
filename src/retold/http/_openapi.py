"""The OpenAPI 3.1 document the app serves at ``GET /openapi.json``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..authoring import args_schema

__all__ = ["MAX_AGE", "STATUSES", "openapi_document"]

# The open ones first: STATUSES[2:] are closed.
STATUSES = ["running", "blocked", "completed", "failed", "cancelled", "continued", "terminated", "timed_out"]
MAX_AGE = 10**12
"""The largest ``older_than`` (seconds) ``POST /purge`` takes: over 30,000 years."""

_PROBLEM = {"$ref": "#/components/responses/Problem"}

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


# RunDescription.pending (retold.PendingWork), as orjson writes it.
_PENDING_WORK = _object(
    activities={"type": "array", "items": _object(
        seq={"type": "integer"}, activity={"type": "string"}, queue={"type": "string"},
        attempt={"type": "integer"}, max_attempts={"type": ["integer", "null"]}, scheduled_at=_TIME,
        started_at=_NULLABLE_TIME, next_retry_at=_NULLABLE_TIME, last_failure={"type": ["string", "null"]},
        worker={"type": ["string", "null"], "description": "The engine holding its lease, while an attempt runs."},
        hosted={"type": "boolean", "description": "False: no running engine hosts it on its queue."},
    )},
    timers={"type": "array", "items": _object(seq={"type": "integer"}, fire_at=_TIME)},
    children={"type": "array", "items": _object(
        seq={"type": ["integer", "null"]}, workflow={"type": "string"}, workflow_id={"type": "string"},
        run_id={"type": "string"})},
    signals={"type": "array", "items": _object(
        name={"type": "string"}, seq={"type": ["integer", "null"]}, received_at=_NULLABLE_TIME)},
    waiting_for={"type": "array", "items": {"type": "string"}, "description": (
        "One line per thing the run waits for, e.g. \"waiting for activity 'charge' on queue 'default': "
        "no running worker hosts it\".")},
)


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in codes}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# Workflow ids, idempotency keys, signal and query names: the rule of
# retold.history.ids, checked at the edge (400 or 422 otherwise).
_ID = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\x00]*$"}

_RUN_ID = {
    "name": "id", "in": "path", "required": True,
    "description": "A run id, or a workflow id (its latest run): 1 to 255 characters, no NUL.",
    "schema": _ID,
}


_WAIT = {"name": "wait", "in": "query", "description": "Seconds to wait for the handler's reply.",
         "schema": {"type": "integer", "minimum": 0, "maximum": 300, "default": 30}}


def _name(what: str) -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "description": f"{what} 1 to 255 characters, no NUL.",
            "schema": _ID}


def _schemas() -> dict[str, Any]:
    nullable_string = {"type": ["string", "null"]}
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "error": {"type": "string", "description": "The retold exception's class name, if one was raised."},
            },
        },
        "Parameter": {
            "type": "object", "required": ["name", "type", "required"],
            "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "required": {"type": "boolean"}},
        },
        "Registry": {
            "type": "object", "required": ["workflows", "activities"],
            "properties": {
                "workflows": {"type": "array", "items": {
                    "type": "object", "required": ["name", "parameters", "returns", "activities", "children"],
                    "properties": {
                        "name": {"type": "string"}, "description": {"type": "string"},
                        "parameters": {"type": "array", "items": _ref("Parameter")},
                        "returns": {"type": "string"},
                        "activities": {"type": "array", "items": {"type": "string"},
                                       "description": "Activities the workflow's code names."},
                        "children": {"type": "array", "items": {"type": "string"},
                                     "description": "Child workflows the workflow's code names."},
                        "args_schema": {"type": "object", "description": (
                            "The JSON Schema of the `args` array a start takes (as in the start operation).")},
                        "hosted_by": {"type": "integer", "minimum": 0, "description": (
                            "How many live engines on this store host the workflow (their registrations "
                            "describe it, so a server hosting nothing lists it too).")},
                        "startable": {"type": "boolean", "description": (
                            "Whether this server can start it: it has the workflow's code to check a start's "
                            "arguments against (not when only a live engine's registration describes it).")},
                    },
                }},
                "activities": {"type": "array", "items": {
                    "type": "object", "required": ["name", "parameters", "returns", "task_queue"],
                    "properties": {
                        "name": {"type": "string"}, "description": {"type": "string"},
                        "parameters": {"type": "array", "items": _ref("Parameter")},
                        "returns": {"type": "string"}, "task_queue": {"type": "string"},
                    },
                }},
            },
        },
        "SignalRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"value": {"description": (
                "The signal's value (any JSON; integers from -2**63 to 2**64-1, kept exact: larger ones are "
                "refused with 422, never rounded to a float).")}},
        },
        "CancelRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"reason": {"type": "string"}},
        },
        "TerminateRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"reason": {"type": "string", "description": "Recorded in the WorkflowTerminated event."}},
        },
        "WorkflowTaskFailure": {
            "type": "object",
            "description": (
                "Why a run is blocked: the last failed attempt of its workflow task (retold.WorkflowTaskFailure)."),
            "required": ["type", "message", "details", "seq", "attempts", "since", "retry_at", "fingerprint"],
            "properties": {
                "type": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "string"},
                "seq": {"type": ["integer", "null"], "description": "The diverging event, for nondeterminism."},
                "attempts": {"type": "integer"},
                "since": {"type": "string", "format": "date-time"},
                "retry_at": {"type": "string", "format": "date-time"},
                "fingerprint": {"type": ["string", "null"],
                                "description": "The code fingerprint of the engine whose attempt failed last."},
            },
        },
        "Status": {
            "type": "object", "required": ["status", "blocked"],
            "description": "A status message of an event stream: the run became blocked, or no longer is.",
            "properties": {
                "status": {"type": "string", "enum": ["running", "blocked"]},
                "blocked": {"anyOf": [_ref("WorkflowTaskFailure"), {"type": "null"}]},
            },
        },
        "Run": {
            "type": "object",
            "required": ["workflow_id", "run_id", "workflow", "status", "started_at", "closed_at",
                         "event_count", "failure", "parent_run_id", "next_run_id", "blocked"],
            "properties": {
                "workflow_id": {"type": "string"}, "run_id": {"type": "string"}, "workflow": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES},
                "started_at": {"type": "string", "format": "date-time"},
                "closed_at": {"type": ["string", "null"], "format": "date-time"},
                "event_count": {"type": "integer"},
                "failure": nullable_string, "parent_run_id": nullable_string, "next_run_id": nullable_string,
                "blocked": {"anyOf": [_ref("WorkflowTaskFailure"), {"type": "null"}],
                            "description": "Why the run is blocked (status blocked), else null."},
                "result": {"description": "The result of a completed run (JSON codec only)."},
                "pending": {"anyOf": [_ref("PendingWork"), {"type": "null"}], "description": (
                    "What a running run waits for (empty once it finished); null in lists of runs.")},
                "search_attributes": {"type": "object", "description": (
                    "The run's search attributes, by name (datetimes as ISO 8601 strings).")},
                "memo": {"type": ["object", "null"], "description": "The memo the run was started with."},
            },
        },
        "PendingWork": _PENDING_WORK,
        "RunList": {
            "type": "object", "required": ["runs", "next", "next_cursor"],
            "properties": {
                "runs": {"type": "array", "items": _ref("Run")},
                "next": {"type": ["string", "null"], "description": "The next page's URL, if there is one."},
                "next_cursor": {"type": ["string", "null"], "description": "The next page's cursor, if any."},
            },
        },
        "PurgeRequest": {
            "type": "object", "additionalProperties": False, "required": ["older_than"],
            "properties": {
                "older_than": {"type": "number", "minimum": 0, "maximum": MAX_AGE,
                               "description": "Seconds: runs that closed longer ago than this go."},
                "statuses": {"type": "array", "items": {"type": "string", "enum": STATUSES[2:]},
                             "description": "Only runs with these statuses (default: every finished run)."},
                "workflow": {**_ID, "description": "Only runs of this workflow."},
                "dry_run": {"type": "boolean", "default": False, "description": "Count, delete nothing."},
            },
        },
        "PurgeReport": {
            "type": "object",
            "required": ["runs", "workflow_ids", "events", "tasks", "inbox", "timers", "kept", "dry_run"],
            "description": "What was deleted (with dry_run: what would be).",
            "properties": {
                **{name: {"type": "integer", "minimum": 0}
                   for name in ("runs", "workflow_ids", "events", "tasks", "inbox", "timers", "kept")},
                "dry_run": {"type": "boolean"},
            },
        },
        "Accepted": {
            "type": "object", "required": ["workflow_id"],
            "properties": {"workflow_id": {"type": "string"}},
        },
        "Event": {
            "type": "object", "required": ["seq", "at", "type"],
            "description": "One event, in the history export's form: seq, at, type and the type's fields.",
            "properties": {"seq": {"type": "integer"}, "at": {"type": "number"}, "type": {"type": "string"}},
        },
        "Message": {
            "type": "object", "required": ["event", "data"],
            "description": (
                "One Server-Sent Events message: a history event (with `id`), or a `status` message (no `id`) "
                "when the run becomes blocked or is no longer blocked."
            ),
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's seq."},
                "event": {"type": "string", "description": "The event's type, or `status`."},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"anyOf": [_ref("Event"), _ref("Status")]}},
            },
        },
        "QueryResult": {"type": "object", "required": ["result"], "properties": {"result": {}}},
        "UpdateRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"args": {"type": "array", "description": "The handler's arguments."},
                           "id": {**_ID, "description": "The update id: sent again, the update runs once and "
                                                        "answers the same (default: a new one)."}},
        },
        "UpdateResult": _object(workflow_id={"type": "string"}, update_id={"type": "string"}, result={}),
        "UpdatePending": _object(workflow_id={"type": "string"}, update_id={"type": "string"}),
        "History": {
            "type": "object", "required": ["format", "version", "workflow", "workflow_id", "run_id", "events"],
            "description": "The history export (retold.history.export).",
            "properties": {
                "format": {"const": "retold-history"}, "version": {"type": "integer"},
                "workflow": {"type": "string"}, "workflow_id": {"type": "string"}, "run_id": {"type": "string"},
                "events": {"type": "array", "items": _ref("Event")},
            },
        },
    }


def _start_operation(name: str, fn: Any, max_body_size: int) -> dict[str, Any]:
    args = args_schema(fn)
    body = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "args": {**args, "description": "The workflow's arguments, in their JSON form."},
            "id": {**_ID, "description": "The workflow id; the same id and args again return the same run."},
            **{field: {"type": "number", "exclusiveMinimum": 0, "maximum": 100 * 366 * 86400, "description": text}
               for field, text in (
                ("run_timeout", "Seconds: the run closes as `timed_out` this long after it started."),
                ("execution_timeout", "Seconds: the same, from this start, across continue-as-new."),
                ("start_delay", "Seconds before the run's code starts (signals sent meanwhile wait for it)."),
            )},
            "search_attributes": {
                "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": (
                    "The run's search attributes, by name: numbers and bools as they are, strings in text form "
                    "(`int:3`, `float:2.5`, `bool:true`, `datetime:2026-01-31T12:00:00Z`, `str:...` or plain "
                    "text). Lists filter runs by them (`attr.NAME`)."),
            },
            "memo": {"type": "object", "description": "JSON values kept with the run, shown by GET /runs/{id}."},
            "id_reuse_policy": {
                "enum": ["allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate"],
                "description": (
                    "What to do when the run of `id` is closed: `allow_duplicate` starts a new run (201), "
                    "`allow_duplicate_failed_only` only if it failed, was cancelled or terminated, "
                    "`reject_duplicate` refuses (409). Default: the same args return the closed run (200)."),
            },
            "signal": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "description": (
                    "Signal-with-start: send this signal to the run of `id` (required), starting it first with "
                    "`args` if there is none, atomically. 201: started with the signal; 200: the open run got "
                    "it (its input is not compared); 409: its run is closed. No `Idempotency-Key` with it."),
                "properties": {
                    "name": {**_ID, "description": "The signal's name."},
                    "value": {"description": "The signal's value (any JSON)."},
                },
            },
        },
    }
    if args["minItems"]:
        body["required"] = ["args"]
    summary = (inspect.getdoc(fn) or "").split("\n\n", 1)[0].replace("\n", " ")
    return {"post": {
        "operationId": "start_" + re.sub(r"[^A-Za-z0-9_]", "_", name),
        "summary": f"Start a run of {name!r}" + (f": {summary}" if summary else ""),
        "description": (
            "With an `Idempotency-Key`, the same key and body again return the same run (200); the same key "
            "with another body is 422, and a retry while the first request is still running is 409. Without "
            "`id`, the workflow id is derived from the key."
        ),
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "description": "1 to 255 visible ASCII characters (spaces inside allowed).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                   "pattern": "^[!-~]([ -~]*[!-~])?$"}}],
        "requestBody": {
            "required": bool(args["minItems"]),
            "content": {"application/json": {"schema": body}},
            "description": f"At most {max_body_size} bytes.",
        },
        "responses": {
            "201": {**_json(_ref("Run"), "Started."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The run's URL."}}},
            "200": _json(_ref("Run"), "Already started with this id or key, with the same input."),
            **_problems(400, 409, 413, 415, 422, 503),
        },
    }}


_SCHEDULE_ID: dict[str, Any] = {"name": "id", "in": "path", "required": True, "schema": _ID,
                                "description": "The schedule id."}
_NEXT: dict[str, Any] = {"name": "next", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                         "description": "How many of the next fire times to list."}
_OVERLAP: dict[str, Any] = {"type": "string", "enum": ["skip", "buffer_one", "allow_all", "cancel_previous"]}
_SCHEDULE_REQUEST: dict[str, Any] = {
    "type": "object", "required": ["id", "workflow"], "additionalProperties": False,
    "properties": {
        "id": _ID, "workflow": _ID, "args": {"type": "array"},
        "cron": {"type": "string", "description": "Five cron fields, e.g. `0 2 * * *` (exactly one of cron, every)."},
        "every": {"type": "number", "minimum": 0.001, "maximum": 100 * 366 * 86400,
                  "description": "Seconds between fires."},
        "timezone": {"type": "string", "default": "UTC", "description": "An IANA time zone for `cron`."},
        "jitter": {"type": "number", "minimum": 0, "maximum": 100 * 366 * 86400,
                   "description": "Start each fire up to this many seconds late."},
        "overlap": {**_OVERLAP, "default": "skip"},
        "catchup_limit": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1,
                          "description": "After downtime, how many of the missed fire times to start."},
        "paused": {"type": "boolean", "default": False},
    },
}
_SCHEDULE_CHANGE: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "description": "The fields to change; the others are kept, and so are the id, the counters and the last run.",
    "properties": {
        "workflow": {**_ID, "description": "The workflow to start from now on (with `args`, or none)."},
        "args": {"type": "array", "description": "New arguments (for `workflow` if given, else the schedule's)."},
        "cron": {"type": ["string", "null"], "description": "Five cron fields; replaces `every`."},
        "every": {"type": ["number", "null"], "minimum": 0.001, "maximum": 100 * 366 * 86400,
                  "description": "Seconds between fires; replaces `cron`."},
        "timezone": {"type": "string", "description": "An IANA time zone for `cron`."},
        "jitter": {"type": ["number", "null"], "minimum": 0, "maximum": 100 * 366 * 86400},
        "overlap": _OVERLAP,
        "catchup_limit": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "paused": {"type": "boolean"},
    },
}
_WHEN: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_SCHEDULE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _ID, "workflow": _ID, "cron": {"type": ["string", "null"]}, "every": {"type": ["number", "null"]},
        "timezone": {"type": "string"}, "jitter": {"type": ["number", "null"]}, "overlap": _OVERLAP,
        "catchup_limit": {"type": "integer"}, "paused": {"type": "boolean"},
        "next_fires": {"type": "array", "items": {"type": "string", "format": "date-time"}},
        "last_fire": _WHEN, "last_workflow_id": {"type": ["string", "null"]}, "buffered": _WHEN,
        "fires": {"type": "integer"}, "skipped": {"type": "integer"},
    },
}


def openapi_document(workflows: Mapping[str, Any], *, auth: bool, max_body_size: int) -> dict[str, Any]:
    """The document for an app whose engine hosts ``workflows`` (name to ``retold.Workflow``).

    Each workflow has its own start operation, whose body schema gives the
    types of its arguments.
    """
    paths: dict[str, Any] = {
        "/workflows": {"get": {
            "operationId": "listWorkflows",
            "summary": "The workflows and activities this server and the live engines host",
            "responses": {"200": _json(_ref("Registry"), "The registry.")},
        }},
        "/runs": {"get": {
            "operationId": "listRuns", "summary": "Runs, newest first",
            "description": (
                "Filters combine. `attr.NAME=VALUE` (repeat for several) keeps runs whose search attribute NAME "
                "equals VALUE, of its type: `attr.customer=acme` (text), `attr.priority=int:3`, `float:2.5`, "
                "`bool:true`, `datetime:2026-01-31T12:00:00Z`, `str:...`. A page with more after it has a "
                "`Link: <...>; rel=\"next\"` header and `next_cursor`; runs started meanwhile never move a run "
                "onto two pages."),
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}},
                {"name": "workflow", "in": "query", "schema": _ID},
                {"name": "id_prefix", "in": "query", "schema": _ID,
                 "description": "Only runs whose workflow id or run id starts with this (case-sensitive)."},
                {"name": "started_after", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only runs started at or after this time (ISO 8601, with a time zone)."},
                {"name": "started_before", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only runs started before this time (ISO 8601, with a time zone)."},
                {"name": "closed_after", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only runs closed at or after this time (ISO 8601, with a time zone)."},
                {"name": "closed_before", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only runs closed before this time (ISO 8601, with a time zone)."},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": (
                    "The `next_cursor` of the previous page (with the same filters): the runs after it.")},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                           "default": 50}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                            "maximum": 2**62, "default": 0}},
            ],
            "responses": {"200": _json(_ref("RunList"), "A page of runs."), **_problems(400, 503)},
        }},
        "/purge": {"post": {
            "operationId": "purgeRuns", "summary": "Delete finished runs older than an age",
            "description": (
                "Deletes finished runs that closed more than `older_than` seconds ago, with their histories, in "
                "small transactions; running runs are never touched. A run goes with its children and, if it is "
                "the last run of its workflow id, with its continue-as-new chain and the id; one that goes with a "
                "run still running is kept (`kept`). With `dry_run`, only counts."
            ),
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PurgeRequest")}}},
            "responses": {"200": _json(_ref("PurgeReport"), "Done (or counted)."),
                          **_problems(400, 413, 415, 422, 503)},
        }},
        "/schedules": {
            "post": {
                "operationId": "createSchedule", "summary": "Create a schedule (docs/schedules.md)",
                "description": (
                    "Starts `workflow` with `args` at every fire time: `cron` (five fields, read in `timezone`) or "
                    "`every` seconds. Each fire's run has workflow id `<id>@<fire time, UTC ISO 8601>`. 422 names "
                    "a bad cron expression, time zone or field; nothing is written then."
                ),
                "requestBody": {"required": True, "content": {"application/json": {"schema": _SCHEDULE_REQUEST}}},
                "responses": {"201": _json(_SCHEDULE, "Created."), **_problems(400, 404, 409, 413, 415, 422, 503)},
            },
            "get": {
                "operationId": "listSchedules", "summary": "Every schedule, by id",
                "parameters": [_NEXT],
                "responses": {"200": _json({"type": "object", "properties": {
                    "schedules": {"type": "array", "items": _SCHEDULE}}}, "The schedules."), **_problems(400, 503)},
            },
        },
        "/schedules/{id}": {
            "get": {
                "operationId": "getSchedule", "summary": "A schedule, with its next fire times",
                "parameters": [_SCHEDULE_ID, _NEXT],
                "responses": {"200": _json(_SCHEDULE, "The schedule."), **_problems(400, 404, 503)},
            },
            "patch": {
                "operationId": "updateSchedule", "summary": "Change a schedule in place",
                "description": (
                    "One transaction. A new `cron`, `every` or `timezone` counts fire times again from now; an "
                    "interval keeps counting from its start. 422 names a bad field; nothing is written then."
                ),
                "parameters": [_SCHEDULE_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _SCHEDULE_CHANGE}}},
                "responses": {"200": _json(_SCHEDULE, "The schedule, changed."),
                              **_problems(400, 404, 413, 415, 422, 503)},
            },
            "delete": {
                "operationId": "deleteSchedule", "summary": "Delete a schedule (its runs go on)",
                "parameters": [_SCHEDULE_ID],
                "responses": {"204": {"description": "Deleted."}, **_problems(400, 404, 503)},
            },
        },
        "/schedules/{id}/{action}": {"post": {
            "operationId": "scheduleAction", "summary": "Pause, resume or trigger a schedule",
            "description": "`trigger` fires now under the overlap policy: 202 with the run's workflow id, or 200 "
                           "with null if the policy skipped or buffered it.",
            "parameters": [_SCHEDULE_ID, {"name": "action", "in": "path", "required": True,
                                          "schema": {"type": "string", "enum": ["pause", "resume", "trigger"]}}],
            "responses": {"200": _json({"type": "object"}, "Done."), "202": _json({"type": "object"}, "Started."),
                          **_problems(400, 404, 503)},
        }},
        "/runs/{id}": {"get": {
            "operationId": "getRun", "summary": "A run's status", "parameters": [_RUN_ID],
            "responses": {"200": _json(_ref("Run"), "The run."), **_problems(400, 404, 503)},
        }},
        "/runs/{id}/signals/{name}": {"post": {
            "operationId": "signalRun", "summary": "Send a signal (durable when answered)",
            "parameters": [_RUN_ID, _name("The signal's name.")],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("SignalRequest")}}},
            "responses": {"202": _json(_ref("Accepted"), "Recorded."), **_problems(400, 404, 409, 413, 415, 422, 503)},
        }},
        "/runs/{id}/queries/{name}": {"get": {
            "operationId": "queryRun", "summary": "Ask a query handler (writes nothing)",
            "parameters": [_RUN_ID, _name("The query's name."),
                           {"name": "args", "in": "query", "description": "The handler's arguments.",
                            "content": {"application/json": {"schema": {"type": "array"}}}}],
            "responses": {"200": _json(_ref("QueryResult"), "The handler's answer."),
                          **_problems(400, 404, 409, 422, 503)},
        }},
        "/runs/{id}/updates/{name}": {"post": {
            "operationId": "updateRun", "summary": "Send an update and wait for its handler's result",
            "description": (
                "The run's validator judges the update first: 422 if it rejects it (nothing is recorded). "
                "Accepted, it is durable; the reply comes when the handler returns (200), or, after `wait` "
                "seconds, 202 with a `Location` to ask again. 409 if the handler raised or the run closed first."
            ),
            "parameters": [_RUN_ID, _name("The update's name."), _WAIT],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("UpdateRequest")}}},
            "responses": {"200": _json(_ref("UpdateResult"), "The handler's result."),
                          "202": _json(_ref("UpdatePending"), "Accepted, not finished yet: see `Location`."),
                          **_problems(400, 404, 409, 413, 415, 422, 503)},
        }},
        "/runs/{id}/updates/{name}/{update_id}": {"get": {
            "operationId": "getUpdateResult", "summary": "Wait for the result of an update sent before",
            "parameters": [_RUN_ID, _name("The update's name."),
                           {"name": "update_id", "in": "path", "required": True, "schema": _ID,
                            "description": "The update id."}, _WAIT],
            "responses": {"200": _json(_ref("UpdateResult"), "The handler's result."),
                          "202": _json(_ref("UpdatePending"), "Not finished yet: ask again."),
                          **_problems(400, 404, 409, 422, 503)},
        }},
        "/runs/{id}/cancel": {"post": {
            "operationId": "cancelRun", "summary": "Ask a run to cancel", "parameters": [_RUN_ID],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("CancelRequest")}}},
            "responses": {"202": _json(_ref("Accepted"), "Recorded."), **_problems(400, 404, 409, 413, 415, 422, 503)},
        }},
        "/runs/{id}/terminate": {"post": {
            "operationId": "terminateRun",
            "summary": "Close a run at once, without running its code (for a stuck or blocked run)",
            "description": (
                "Unlike cancel, the run's code is not asked: `WorkflowTerminated` ends its history and its status "
                "is `terminated`. Its pending activities and timers are dropped, its parent sees the child fail "
                "with the reason, its children are asked to cancel. 409 if the run has already finished."
            ),
            "parameters": [_RUN_ID],
            "requestBody": {"required": False,
                            "content": {"application/json": {"schema": _ref("TerminateRequest")}}},
            "responses": {"200": _json(_ref("Run"), "Terminated: the run as it is now."),
                          **_problems(400, 404, 409, 413, 415, 422, 503)},
        }},
        "/runs/{id}/history": {"get": {
            "operationId": "getHistory", "summary": "The run's history (the JSON export), or a page of it",
            "description": "Every event by default. With `after` and `limit`, one page: the events numbered after "
                           "`after`, at most `limit`; a full page has a `Link: <...>; rel=\"next\"` header "
                           "naming the next one.",
            "parameters": [
                _RUN_ID,
                {"name": "after", "in": "query",
                 "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                 "description": "Only the events numbered after this one."},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                 "description": "At most this many events (default: all)."},
            ],
            "responses": {"200": _json(_ref("History"), "The history."), **_problems(400, 404, 503)},
        }},
        "/runs/{id}/events": {"get": {
            "operationId": "streamEvents", "summary": "The run's events as Server-Sent Events",
            "description": (
                "One message per event: `id:` its seq, `event:` its type, `data:` its JSON. Sends the events after "
                "`Last-Event-ID` (or `after`), then live ones; ends after the run's final event. 204 when the run "
                "is finished and nothing is left to send. While the run is blocked (its workflow task keeps "
                "failing: a bad deploy), a `status` message without `id` says so, with the failure; another says "
                "when it no longer is."
            ),
            "parameters": [
                _RUN_ID,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
                {"name": "Last-Event-ID", "in": "header", "description": "An event number, in ASCII digits.",
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
            ],
            "responses": {
                "200": {"description": "The stream.", "content": {"text/event-stream": {"schema": _ref("Message")}}},
                "204": {"description": "The run is finished and the client has every event."},
                **_problems(400, 404, 503),
            },
        }},
    }
    for name in sorted(workflows):
        paths[f"/workflows/{quote(name, safe='')}/runs"] = _start_operation(name, workflows[name].fn, max_body_size)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "retold", "version": "1", "description": "Start, inspect and follow durable workflow runs."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": {"Problem": {
                "description": "An error (RFC 9457 problem details).",
                "content": {"application/problem+json": {"schema": _ref("Problem")}},
            }},
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for item in paths.values():
            for operation in item.values():
                operation["responses"]["401"] = _PROBLEM
    return doc

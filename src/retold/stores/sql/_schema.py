"""Tables of the SQL store (SQLAlchemy Core) and the schema version."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["EVENT_CODES", "SCHEMA_VERSION", "metadata"]

SCHEMA_VERSION = 11

# A run's integer key (schema version 11): a rowid on SQLite (stored in the
# row's key, no column of its own), a BIGSERIAL on PostgreSQL.
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

EVENT_CODES: dict[str, int] = {
    "WorkflowStarted": 1, "ActivityScheduled": 2, "ActivityCompleted": 3, "ActivityFailed": 4,
    "ActivityTimedOut": 5, "TimerStarted": 6, "TimerFired": 7, "TimerCancelled": 8, "SignalReceived": 9,
    "MarkerRecorded": 10, "ChildWorkflowStarted": 11, "ChildWorkflowCompleted": 12, "ChildWorkflowFailed": 13,
    "CancelRequested": 14, "WorkflowTaskCompleted": 15, "WorkflowCompleted": 16, "WorkflowFailed": 17,
    "WorkflowCancelled": 18, "WorkflowContinuedAsNew": 19, "ActivityCancelRequested": 20,
    "ChildWorkflowCancelRequested": 21, "ExternalSignalRequested": 22, "ExternalSignalResolved": 23,
    "WorkflowTerminated": 24, "WorkflowTimedOut": 25, "UpdateAccepted": 26, "UpdateCompleted": 27,
    "WorkflowStartRequested": 28, "WorkflowStartResolved": 29, "SearchAttributesUpserted": 30,
}
"""The code stored in ``retold_events.type`` for each event type (schema version 11).

Every stored history holds these numbers: a code is never changed or given
to another type; a new event type takes the next number (and a row in
``retold_event_types``, written when a store opens the database).
"""

EVENT_NAMES: dict[int, str] = {code: name for name, code in EVENT_CODES.items()}

metadata = sa.MetaData()

meta = sa.Table(
    "retold_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# Schema version 11: the first and current runs by their keys (``rk``), not
# their ids; only ids with an idempotency key are in the key's index; on
# SQLite the rows are clustered on the workflow id (no second copy of it).
workflows = sa.Table(
    "retold_workflows", metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("workflow", sa.String(255), nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("first_rk", _KEY, nullable=False),
    sa.Column("current_rk", _KEY, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("retold_workflows_idempotency_key", "idempotency_key", unique=True,
             sqlite_where=sa.text("idempotency_key IS NOT NULL"),
             postgresql_where=sa.text("idempotency_key IS NOT NULL")),
    sqlite_with_rowid=False,
)

runs = sa.Table(
    "retold_runs", metadata,
    # Schema version 11: the run's key, which its events (and its workflow
    # id's row) use instead of the 36-character run id.
    sa.Column("rk", _KEY, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, unique=True),
    sa.Column("workflow_id", sa.String(255), nullable=False, index=True),
    sa.Column("workflow", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("result", sa.LargeBinary, nullable=True),
    sa.Column("failure", sa.LargeBinary, nullable=True),
    sa.Column("parent_run_id", sa.String(64), nullable=True),
    sa.Column("parent_seq", sa.Integer, nullable=True),
    sa.Column("next_run_id", sa.String(64), nullable=True),
    # A child's: what its parent's close does to it while it is open (schema version 8).
    sa.Column("parent_close_policy", sa.String(16), nullable=True),
    # Schema version 9: the run's search attributes (JSON of their stored
    # forms, as ``retold_search_attributes`` indexes them) and its memo (JSON).
    sa.Column("search_attributes", sa.LargeBinary, nullable=True),
    sa.Column("memo", sa.LargeBinary, nullable=True),
    sa.Index("retold_runs_status", "status", "created_at"),
    # Closed runs by close time, for retention (schema version 5); running
    # runs have no close time.
    sa.Index("retold_runs_closed", "closed_at"),
    # Children by parent; runs without a parent (most) are not in it (schema version 11).
    sa.Index("ix_retold_runs_parent_run_id", "parent_run_id",
             sqlite_where=sa.text("parent_run_id IS NOT NULL"),
             postgresql_where=sa.text("parent_run_id IS NOT NULL")),
)

# Search attributes, one row per run and name, for list filters (schema
# version 9). ``value`` is the stored form (``retold.history.attributes``:
# type tag and text), so equality of values is equality of strings.
search_attributes = sa.Table(
    "retold_search_attributes", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(1100), nullable=False),
    sa.Index("retold_search_attributes_value", "name", "value", "run_id"),
)

# Schema version 11: keyed by the run's integer key (``retold_runs.rk``)
# and typed by a code (``EVENT_CODES``) instead of the run id and the type's
# name: 8 events of a short workflow took 880 bytes, 280 of them run ids.
events = sa.Table(
    "retold_events", metadata,
    sa.Column("rk", _KEY, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    # SQLite: rows clustered on (rk, seq), so the key is not stored a
    # second time in an index (schema version 3).
    sqlite_with_rowid=False,
)

# The names of the codes in ``retold_events.type``, for reading the tables
# by hand (``JOIN retold_event_types ON code = type``); the store reads
# ``EVENT_CODES``. Schema version 11.
event_types = sa.Table(
    "retold_event_types", metadata,
    sa.Column("code", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=False),
)

workflow_tasks = sa.Table(
    "retold_workflow_tasks", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("visible_at", sa.Float, nullable=False, index=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Signals the run has not seen yet (in its history after its last step,
    # or in the inbox): bounded, so a flood of signals cannot bury a run.
    # Added in schema version 4.
    sa.Column("signals", sa.Integer, nullable=False, server_default="0"),
    # The last failed attempt's record (JSON) while the run is blocked, and
    # the code fingerprints it failed on, space-separated with a space at
    # each end (claims match " fp "). Added in schema version 6.
    sa.Column("failure", sa.LargeBinary, nullable=True),
    sa.Column("failed_by", sa.String(255), nullable=True),
    # Schema version 8. ``lapses``: how many times another owner's lease ran
    # out since the last commit (a suspect from 2); ``stepping``: a step of
    # it is running under the stepping mark (written only for suspects), so
    # a lapse of its lease counts a death (``attempts``) against this task
    # and no other.
    sa.Column("lapses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("stepping", sa.Integer, nullable=False, server_default="0"),
)

activity_tasks = sa.Table(
    "retold_activity_tasks", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("workflow_id", sa.String(255), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("activity", sa.String(255), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("input", sa.LargeBinary, nullable=False),
    sa.Column("options", sa.LargeBinary, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("scheduled_at", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=True),
    sa.Column("visible_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("last_failure", sa.LargeBinary, nullable=True),
    # When the attempt holding the lease started (schema version 6).
    sa.Column("started_at", sa.Float, nullable=True),
    # Schema version 8: lapses of its holders' leases in a row (a suspect
    # from 2), and deaths of workers while they ran a marked attempt of it
    # (``stepping``: set only for a suspect's attempt, run alone in its
    # process), counted at the next claim.
    sa.Column("lapses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deaths", sa.Integer, nullable=False, server_default="0"),
    sa.Column("stepping", sa.Integer, nullable=False, server_default="0"),
    # Schema version 8: the run waits for this task's attempt to end (cancellation_type
    # "wait_cancellation_completed"): 1 from its ActivityCancelRequested.
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("run_id", "seq", name="retold_activity_tasks_run_seq"),
    sa.Index("retold_activity_tasks_ready", "queue", "visible_at"),
    # Ids are never reused (SQLite would reuse a deleted row's id without
    # AUTOINCREMENT): an outcome addressed to a task that is gone must not
    # land on a newer one. Schema version 4; PostgreSQL's sequence never reuses.
    sqlite_autoincrement=True,
)

# Inputs (signals, activity outcomes, timers, cancel requests) that arrived
# while the run's workflow task was being processed. Durable at once, they
# enter the history after that step's commands, when the step commits, so a
# stream of signals never invalidates the step in flight. Schema version 4.
inbox = sa.Table(
    "retold_inbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    sqlite_autoincrement=True,
)

timers = sa.Table(
    "retold_timers", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fire_at", sa.Float, nullable=False, index=True),
)

# Engines with workers, so that one on the same machine can tell that another
# died (its process is gone) and take its work at once instead of after the
# leases run out. Added in schema version 2.
workers = sa.Table(
    "retold_workers", metadata,
    sa.Column("worker_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False, index=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("process_start", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    # What the engine hosts (Hosting's JSON) and, on the lease clock, until
    # when it counts as running unless it registers again (schema version 6).
    sa.Column("hosting", sa.LargeBinary, nullable=True),
    sa.Column("alive_until", sa.Float, nullable=True),
)

# Schedules (schema version 10): the engine's record of each as JSON in
# ``body``; ``due_at`` is when a fire loop must next look at it (NULL:
# paused or finished). The store decides nothing about them.
schedules = sa.Table(
    "retold_schedules", metadata,
    sa.Column("schedule_id", sa.String(255), primary_key=True),
    sa.Column("due_at", sa.Float, nullable=True, index=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

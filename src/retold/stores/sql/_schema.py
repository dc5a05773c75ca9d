"""Tables of the SQL store (SQLAlchemy Core) and the schema version."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "metadata"]

SCHEMA_VERSION = 10

metadata = sa.MetaData()

meta = sa.Table(
    "retold_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

workflows = sa.Table(
    "retold_workflows", metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("workflow", sa.String(255), nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    sa.Column("first_run_id", sa.String(64), nullable=False),
    sa.Column("current_run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "retold_runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("workflow_id", sa.String(255), nullable=False, index=True),
    sa.Column("workflow", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("result", sa.LargeBinary, nullable=True),
    sa.Column("failure", sa.LargeBinary, nullable=True),
    sa.Column("parent_run_id", sa.String(64), nullable=True, index=True),
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

events = sa.Table(
    "retold_events", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    # SQLite: rows clustered on (run_id, seq), so the key is not stored a
    # second time in an index (schema version 3).
    sqlite_with_rowid=False,
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

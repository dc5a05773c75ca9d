"""The tables schema version 11 changed, as schema version 10 defined them (frozen here for upgrade tests).

Version 10 keyed each event by its run's id (a string), named its type in
full, and named a workflow id's first and current runs by their ids; the
runs table's key was the run id. :func:`as_version_10` takes a database at
the current version back to that layout, keeping every row, so that an
upgrade test starts from what an engine of version 10 left on disk.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t

metadata = sa.MetaData()

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
    sa.Column("parent_close_policy", sa.String(16), nullable=True),
    sa.Column("search_attributes", sa.LargeBinary, nullable=True),
    sa.Column("memo", sa.LargeBinary, nullable=True),
    sa.Index("retold_runs_status", "status", "created_at"),
    sa.Index("retold_runs_closed", "closed_at"),
)

events = sa.Table(
    "retold_events", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    sqlite_with_rowid=False,
)


def as_version_10(store: SqlStore) -> None:
    """Rewrite the current tables as schema version 10 laid them out, keeping every row."""
    with store._engine.begin() as conn:
        names = {code: name for name, code in t.EVENT_CODES.items()}
        run_rows = [dict(r._mapping) for r in conn.execute(sa.select(t.runs))]
        run_of = {row.pop("rk"): row["run_id"] for row in run_rows}
        event_rows: list[dict[str, Any]] = [
            {"run_id": run_of[r.rk], "seq": r.seq, "type": names[r.type], "at": r.at, "meta": r.meta,
             "payload": r.payload}
            for r in conn.execute(sa.select(t.events))
        ]
        workflow_rows = []
        for r in conn.execute(sa.select(t.workflows)):
            row = dict(r._mapping)
            row["first_run_id"], row["current_run_id"] = run_of[row.pop("first_rk")], run_of[row.pop("current_rk")]
            workflow_rows.append(row)
        for table in (t.events, t.workflows, t.runs, t.event_types):
            table.drop(conn)
        metadata.create_all(conn)
        for table, rows in ((runs, run_rows), (events, event_rows), (workflows, workflow_rows)):
            if rows:
                conn.execute(table.insert(), rows)
        conn.execute(t.meta.update().values(value="10"))

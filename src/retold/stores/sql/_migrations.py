"""Schema creation and upgrades, keyed by schema version.

A new database gets the current tables at once. An existing one at version
``v`` runs ``UPGRADES[v]``, ``UPGRADES[v + 1]``... up to ``SCHEMA_VERSION``,
in the same transaction as the version bump, so a failed step leaves the
database as it was. The caller holds the dialect's schema lock (an advisory
lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): two processes starting at
once upgrade it once.

This replaces alembic on purpose: the store owns a handful of tables, the
upgrade must run inside the store's own transaction and lock, and users never
write migrations of their own. When the schema changes, bump
``SCHEMA_VERSION``, change ``_schema.py`` and add the step that takes the
previous version there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import SchemaError
from . import _schema as t

__all__ = ["UPGRADES", "Step", "migrate", "schema_version"]

Step = Callable[[Connection], None]


def _add_workers(conn: Connection) -> None:
    """1 -> 2: the table of engines with workers (dead-worker detection)."""
    t.workers.create(conn)


def _rebuild_sqlite_table(conn: Connection, table: sa.Table, old_name: str) -> None:
    """Recreate ``table`` from its current definition, keeping its rows (SQLite cannot alter a table's options).

    Its named indexes must already be dropped: the new table creates them again.
    """
    conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old_name}")
    table.create(conn)
    names = [column.name for column in table.columns]
    old = sa.table(old_name, *(sa.column(name) for name in names))
    conn.execute(table.insert().from_select(names, sa.select(*old.columns)))
    conn.exec_driver_sql(f"DROP TABLE {old_name}")


# The events table from schema version 3 to 10 (version 11 keys it by the run's integer key).
_EVENTS_V3 = sa.Table(
    "retold_events", sa.MetaData(),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    sqlite_with_rowid=False,
)


def _cluster_events(conn: Connection) -> None:
    """2 -> 3: on SQLite, the events table becomes ``WITHOUT ROWID`` (no second copy of its key)."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's table is unchanged
    _rebuild_sqlite_table(conn, _EVENTS_V3, "retold_events_v2")


def _inbox_and_task_ids(conn: Connection) -> None:
    """3 -> 4: the inbox, the count of unseen signals, and activity task ids that are never reused."""
    t.inbox.create(conn)
    conn.exec_driver_sql("ALTER TABLE retold_workflow_tasks ADD COLUMN signals INTEGER NOT NULL DEFAULT 0")
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's id sequence never hands out an id twice
    # SQLite needs AUTOINCREMENT in the table's definition: rebuild it. The
    # copied ids set the table's high-water mark.
    conn.exec_driver_sql("DROP INDEX IF EXISTS retold_activity_tasks_ready")
    _rebuild_sqlite_table(conn, t.activity_tasks, "retold_activity_tasks_v3")


def _index_closed_runs(conn: Connection) -> None:
    """4 -> 5: an index of runs by close time, so that purging old runs reads only those."""
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS retold_runs_closed ON retold_runs (closed_at)")


def _task_failures(conn: Connection) -> None:
    """5 -> 6: a workflow task keeps its last failure (blocked runs) and the code fingerprints it failed on."""
    conn.exec_driver_sql(f"ALTER TABLE retold_workflow_tasks ADD COLUMN failure {_blob(conn)}")
    conn.exec_driver_sql("ALTER TABLE retold_workflow_tasks ADD COLUMN failed_by VARCHAR(255)")


def _blob(conn: Connection) -> str:
    return "BLOB" if conn.dialect.name == "sqlite" else "BYTEA"


def _add_columns(conn: Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """Add the columns ``table`` lacks (an earlier step may have created it whole)."""
    present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def _hosting_and_attempt_starts(conn: Connection) -> None:
    """6 -> 7: what each engine hosts and until when it counts as running; when an attempt started."""
    _add_columns(conn, t.workers, ("hosting", "alive_until"))
    _add_columns(conn, t.activity_tasks, ("started_at",))


def _stepping_marks(conn: Connection) -> None:
    """7 -> 8: deaths count only against the task whose code was running (suspects and stepping marks);
    children keep their parent-close policy.

    Until version 7 a claim after a lapsed lease counted a death against every
    task the dead worker held. Those counts become lapses: such a task runs
    alone (from two), under the stepping mark, before any death is counted
    against it.
    """
    for table, names in ((t.workflow_tasks, ("lapses", "stepping")),
                         (t.activity_tasks, ("lapses", "deaths", "stepping", "cancel_requested"))):
        present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
        for name in names:
            if name not in present:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
    wt = t.workflow_tasks
    conn.execute(wt.update().where(wt.c.attempts > 0).values(lapses=wt.c.attempts, attempts=0))
    _add_columns(conn, t.runs, ("parent_close_policy",))  # children started before close as asked: request_cancel


def _search_attributes(conn: Connection) -> None:
    """8 -> 9: search attributes (a column of each run's, and their index table) and memos.

    Runs started before have neither: they list as before, and no attribute
    filter finds them.
    """
    _add_columns(conn, t.runs, ("search_attributes", "memo"))
    t.search_attributes.create(conn, checkfirst=True)


def _add_schedules(conn: Connection) -> None:
    """9 -> 10: the table of schedules."""
    t.schedules.create(conn, checkfirst=True)


def _count(conn: Connection, table: str) -> int:
    """Rows of ``table`` (a name of this module's, never input)."""
    return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608


def _integer_run_keys(conn: Connection) -> None:
    """10 -> 11: runs get an integer key (``rk``); events are keyed by it and typed by a code.

    The workflow ids' rows name their first and current runs by key; only
    ids with an idempotency key are in that key's index, and only children
    in the parent index. Every row is copied into the new tables and
    counted: if any run, event or workflow id would be left behind (an
    event of no run, a type without a code), the upgrade fails and the
    transaction leaves the database as it was. Keys are handed out in
    order of creation.
    """
    sqlite = conn.dialect.name == "sqlite"
    # Index names belong to the schema, not the table: the new tables take the same ones.
    for index in ("ix_retold_runs_workflow_id", "ix_retold_runs_parent_run_id", "retold_runs_status",
                  "retold_runs_closed"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    for name in ("retold_runs", "retold_workflows", "retold_events"):
        conn.exec_driver_sql(f"ALTER TABLE {name} RENAME TO {name}_v10")
        if not sqlite:  # PostgreSQL names a constraint's index after its table: free those names too
            for suffix in ("pkey", "idempotency_key_key"):
                conn.exec_driver_sql(f"ALTER INDEX IF EXISTS {name}_{suffix} RENAME TO {name}_v10_{suffix}")
    for table in (t.runs, t.workflows, t.events, t.event_types):
        table.create(conn, checkfirst=True)
    _sync_event_types(conn)
    columns = ", ".join(column.name for column in t.runs.columns if column.name != "rk")
    conn.exec_driver_sql(  # the schema's own column names
        f"INSERT INTO retold_runs (rk, {columns}) SELECT ROW_NUMBER() OVER (ORDER BY created_at, run_id), "  # noqa: S608
        f"{columns} FROM retold_runs_v10")
    if not sqlite:  # the next run's key follows the copied ones
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('retold_runs', 'rk'), "
                             "COALESCE(MAX(rk), 0) + 1, false) FROM retold_runs")
    conn.exec_driver_sql(
        "INSERT INTO retold_events (rk, seq, type, at, meta, payload) "
        "SELECT r.rk, e.seq, c.code, e.at, e.meta, e.payload FROM retold_events_v10 e "
        "JOIN retold_runs r ON r.run_id = e.run_id JOIN retold_event_types c ON c.name = e.type "
        "ORDER BY r.rk, e.seq")
    conn.exec_driver_sql(
        "INSERT INTO retold_workflows (workflow_id, workflow, input_hash, idempotency_key, first_rk, current_rk, "
        "created_at) SELECT w.workflow_id, w.workflow, w.input_hash, w.idempotency_key, COALESCE(f.rk, c.rk), "
        "c.rk, w.created_at FROM retold_workflows_v10 w JOIN retold_runs c ON c.run_id = w.current_run_id "
        "LEFT JOIN retold_runs f ON f.run_id = w.first_run_id")
    for name, what in (("retold_runs", "runs"), ("retold_events", "events"), ("retold_workflows", "workflow ids")):
        old, new = _count(conn, f"{name}_v10"), _count(conn, name)
        if old != new:
            raise SchemaError(
                f"upgrading to schema version 11 would keep {new} of {old} {what} (an event of a run that "
                f"does not exist, an event type without a code, or a workflow id whose current run is gone): "
                f"nothing was changed")
        conn.exec_driver_sql(f"DROP TABLE {name}_v10")


def _sync_event_types(conn: Connection) -> None:
    """Write the names of the event codes the table lacks (a newer retold may add codes)."""
    present = set(conn.execute(sa.select(t.event_types.c.code)).scalars())
    missing = [{"code": code, "name": name} for name, code in t.EVENT_CODES.items() if code not in present]
    if missing:
        conn.execute(t.event_types.insert(), missing)


UPGRADES: Mapping[int, Step] = {
    1: _add_workers, 2: _cluster_events, 3: _inbox_and_task_ids, 4: _index_closed_runs, 5: _task_failures,
    6: _hosting_and_attempt_starts, 7: _stepping_marks, 8: _search_attributes, 9: _add_schedules,
    10: _integer_run_keys,
}
"""``UPGRADES[v]`` takes a database from schema version ``v`` to ``v + 1``."""

_VERSION = sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")


def schema_version(conn: Connection) -> int | None:
    """The database's schema version, or None if it has no ``retold_meta`` table."""
    if not sa.inspect(conn).has_table(t.meta.name):
        return None
    value = conn.execute(_VERSION).scalar()
    return 0 if value is None else int(value)


def migrate(
    conn: Connection, url: str, *, target: int = t.SCHEMA_VERSION, upgrades: Mapping[int, Step] = UPGRADES,
) -> int:
    """Bring the schema to ``target``; return the version found (0 for a new database).

    Raises:
        SchemaError: the database's schema is newer than ``target``, or an
            upgrade step it needs does not exist.
    """
    found = schema_version(conn)
    if not found:  # new (or a meta table without its row: nothing was ever committed)
        t.metadata.create_all(conn)
        conn.execute(t.meta.insert().values(key="schema_version", value=str(target)))
        _sync_event_types(conn)
        return 0
    if found > target:
        raise SchemaError(
            f"{url} has schema version {found}, newer than this retold supports ({target}): upgrade retold"
        )
    if found == target:
        if target == t.SCHEMA_VERSION:
            _sync_event_types(conn)
        return found
    for version in range(found, target):
        step = upgrades.get(version)
        if step is None:
            raise SchemaError(f"{url} has schema version {found} and retold has no upgrade from {version}")
        step(conn)
    conn.execute(t.meta.update().where(t.meta.c.key == "schema_version").values(value=str(target)))
    if target == t.SCHEMA_VERSION:
        _sync_event_types(conn)
    return found

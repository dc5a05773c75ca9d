"""PostgreSQL: a transaction's statements sent together, in as few round trips as it allows (psycopg's pipeline mode).

A store transaction (:class:`~._tx.SqlTx`) queues its statements here and
sends them, in order, in one pipeline on the driver's connection only when
it needs an answer:

* ``BEGIN`` goes in the pipeline with the first statement (psycopg would
  otherwise send it alone and wait for it);
* a read is sent with every write queued before it, and any reads queued
  ahead (:meth:`prefetch`), in one pipeline;
* the ``last_seq`` fence is a statement that *fails* when the run moved or
  closed (:data:`FENCE_SQL`), so it needs no answer: it is queued with the
  events it guards, and a failure aborts the rest of the pipeline (none of
  the statements after it runs) and the transaction, and is raised as
  :class:`~retold.ConflictError` when the pipeline is read;
* ``COMMIT`` goes in the last pipeline, with the writes (:meth:`commit`).

So a step that reads, decides and writes is two round trips: its reads
(with ``BEGIN``), and its writes with ``COMMIT``. A step decided on what
the store remembers instead of what it reads (see ``_memory``) is one: its
checks of what it assumed go first (:meth:`add_check`, failing the
transaction as the fence does, raised as :class:`AssumptionFailed`), then
its writes and ``COMMIT``; meanwhile the queue is *held* (:attr:`held`): a
statement that needs an answer before ``COMMIT`` raises :class:`Rerun`,
nothing sent. Anything that must run
through SQLAlchemy sends the queue first, so statements still run in the
order the store issued them. Durability is unchanged: ``COMMIT`` is the
last statement, and nothing is handed out before its answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ...errors import ConflictError, StoreError
from ._fast import Statement

__all__ = ["AFTER_COMMIT_KEY", "FENCE_MARK", "PIPELINE_KEY", "AssumptionFailed", "Pipeline", "Rerun", "shifted"]

# What the fence raises when it does not hold (see _statements.fence_sql).
FENCE_MARK = "retold fence "

_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"

PIPELINE_KEY = "retold.pipeline"
# Callables run once the transaction (or the group commit its piece was in) has committed.
AFTER_COMMIT_KEY = "retold.after_commit"

# A time written by a transaction decided on remembered state: its value on the
# estimate of the server's clock it was decided with, moved onto the reading of
# the server's clock taken inside the transaction (see SqlTx, "assumed" state).
_SHIFT = "(%({})s + current_setting('retold.shift')::float8)"
# The same, for the rows of an executemany that each say whether to move it (1.0) or not (0.0).
_SHIFT_SOME = "(%({})s + %(retold_moves)s::float8 * current_setting('retold.shift')::float8)"


class Rerun(Exception):  # noqa: N818 - a signal, not an error
    """A transaction decided on remembered state needs an answer before COMMIT: run it again on reads.

    Raised before anything of it is sent.
    """


class AssumptionFailed(Exception):  # noqa: N818 - handled inside the store
    """What a transaction assumed from the store's memory is not so: nothing of it was written."""

    def __init__(self, run_id: str, task_id: int | None) -> None:
        super().__init__(f"run {run_id} (activity task {task_id}) is not as remembered")
        self.run_id, self.task_id = run_id, task_id


@functools.lru_cache(maxsize=256)
def shifted(sql: str, names: tuple[str, ...], some: bool = False) -> str:
    """``sql`` with the parameters ``names`` (times) moved onto the transaction's reading of the server's clock.

    ``some``: only where the row's ``retold_moves`` parameter is 1.0.
    """
    template = _SHIFT_SOME if some else _SHIFT
    for name in names:
        sql = sql.replace(f"%({name})s", template.format(name))
    return sql


def _no_communication() -> Iterator[Any]:
    """A generator that sends and reads nothing (see :func:`_defer_sending`)."""
    return
    yield  # a generator  # pragma: no cover


def _defer_sending(pipeline: Any) -> bool:
    """Have psycopg queue each statement of ``pipeline`` without sending it; whether it will.

    psycopg's pipeline sends each statement as it is executed: a ``poll``
    and a ``send`` system call per statement (and the GIL released and
    taken again around each poll), as much CPU as the rest of the
    statement's work. The statements go in the same order, in the same
    pipeline, with the same ``Sync`` at its end: only when they are handed
    to the socket changes (all at once, when the pipeline ends, where
    psycopg then reads every answer as before). An unknown psycopg (no such
    internals) sends as it always did.
    """
    if not hasattr(pipeline, "_communicate_gen") or not hasattr(pipeline, "command_queue"):
        return False
    pipeline._communicate_gen = _no_communication
    return True


def _hand_to_libpq(pipeline: Any) -> None:
    """Put every statement psycopg queued into libpq's buffer, in order (the pipeline's end sends them)."""
    commands = pipeline.command_queue
    while commands:
        commands.popleft()()


class Pipeline:
    """Statements queued on one transaction's connection, sent by :meth:`flush`."""

    __slots__ = ("_conn", "_driver", "_fences", "_queue", "held", "round_trips")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver: Any = conn.connection.driver_connection
        # (sql, parameters or rows, many, holder of the cursor for an answer)
        self._queue: list[tuple[str, Any, bool, list[Any] | None]] = []
        # The fences queued and not yet answered, by the key in their error: (run id, expected seq).
        # (an assumption's check: the error it raises instead)
        self._fences: dict[str, tuple[str, int] | AssumptionFailed] = {}
        self.round_trips = 0
        self.held = False  # True: nothing may be sent before COMMIT (raise Rerun instead)
        conn.info[PIPELINE_KEY] = self

    def add(
        self, stmt: Statement, params: Mapping[str, Any], answer: list[Any] | None = None,
        shift: tuple[str, ...] = (),
    ) -> None:
        """Queue one execution; ``answer`` receives its cursor once sent; ``shift``: see :func:`shifted`."""
        sql, defaults = stmt.driver_sql(self._conn, params)
        if shift:
            sql = shifted(sql, shift)
        self._queue.append((sql, {**defaults, **params}, False, answer))

    def add_many(
        self, stmt: Statement, rows: Sequence[Mapping[str, Any]], shift: tuple[str, ...] = (),
        moves: Sequence[float] | None = None,
    ) -> None:
        """Queue an ``executemany``; ``moves``: per row, whether its ``shift`` times move (1.0) or not (0.0)."""
        sql, defaults = stmt.driver_sql(self._conn, rows[0])
        if shift:
            sql = shifted(sql, shift, moves is not None)
        if moves is None:
            self._queue.append((sql, [{**defaults, **row} for row in rows], True, None))
        else:
            params = [{**defaults, **row, "retold_moves": m} for row, m in zip(rows, moves, strict=True)]
            self._queue.append((sql, params, True, None))

    def add_sql(self, sql: str, params: Mapping[str, Any], answer: list[Any] | None = None) -> None:
        """Queue a statement written for the driver."""
        self._queue.append((sql, dict(params), False, answer))

    def add_fence(self, sql: str, run_id: str, expected: int, last: int) -> None:
        """Queue the ``last_seq`` fence of an append: it fails the transaction if the run moved or closed."""
        key = str(len(self._fences))
        self._fences[key] = (run_id, expected)
        self.add_sql(sql, {"b_run_id": run_id, "b_expected": expected, "b_last": last, "b_key": f"{FENCE_MARK}{key};"})

    def add_check(
        self, sql: str, params: Mapping[str, Any], failed: AssumptionFailed, answer: list[Any] | None = None,
    ) -> None:
        """Queue a check of what a transaction assumed: it fails the transaction, raised as ``failed``.

        ``sql`` takes its error text as ``%(b_key)s`` (as :data:`FENCE_SQL` does).
        """
        key = str(len(self._fences))
        self._fences[key] = failed
        self.add_sql(sql, {**params, "b_key": f"{FENCE_MARK}{key};"}, answer)

    def mark(self) -> int:
        """Where the queue ends now (see :meth:`truncate`)."""
        return len(self._queue)

    def truncate(self, mark: int) -> None:
        """Forget what was queued after ``mark`` (nothing of it sent), and the checks and fences queued."""
        del self._queue[mark:]
        self._fences.clear()
        self.held = False

    def forget_prepared(self) -> None:
        """After a failed pipeline whose transaction goes on (a piece rolled back to its savepoint).

        psycopg counts a statement as prepared once it has sent its Parse,
        and in a failed pipeline the server skips that Parse; a rollback of
        the whole transaction makes psycopg forget them all (DEALLOCATE ALL),
        a rollback to a savepoint does not. Forget them here likewise.
        """
        prepared = getattr(self._driver, "_prepared", None)
        if prepared is not None:
            prepared.clear()

    def discard(self) -> None:
        """Forget what is queued and not sent (a piece of a group commit that failed before sending it)."""
        self._queue.clear()
        self._fences.clear()
        self.held = False

    def read(self, stmt: Statement, params: Mapping[str, Any]) -> Any:
        """Send the queue with this read; return its cursor (rows as named tuples)."""
        answer: list[Any] = []
        self.add(stmt, params, answer)
        self.flush()
        return answer[0]

    def commit(self) -> None:
        """Send what is queued and ``COMMIT``, in one pipeline (if the transaction began)."""
        if not self._queue and self._driver.pgconn.transaction_status == 0:  # IDLE: nothing was sent
            return
        self.held = False
        answer: list[Any] = []
        self._queue.append(("COMMIT", None, False, answer))
        self.flush()
        # PostgreSQL answers COMMIT in a failed transaction with ROLLBACK, and no error.
        if answer and answer[0].statusmessage != "COMMIT":
            raise StoreError(f"the transaction was rolled back, not committed ({answer[0].statusmessage})")

    def flush(self) -> None:
        """Send the queue in one pipeline and wait for every answer (raising the first error).

        The first statements of the transaction go after a ``BEGIN`` of
        our own, in the same pipeline.
        """
        if not self._queue:
            return
        if self.held:
            raise Rerun
        queue, self._queue = self._queue, []
        from psycopg.rows import namedtuple_row

        driver = self._driver
        begin = driver.pgconn.transaction_status == 0 and hasattr(driver, "_autocommit")  # IDLE
        self.round_trips += 1
        try:
            if begin:
                # psycopg sends BEGIN itself, alone, before the first statement
                # (and waits for it, even in a pipeline) unless it thinks it is
                # in autocommit: it then leaves ours to go with the statements.
                driver._autocommit = True
            try:
                with driver.pipeline() as pipeline:
                    # (not when psycopg would begin a transaction of its own: it waits for that answer)
                    deferred = (begin or driver.pgconn.transaction_status != 0) and _defer_sending(pipeline)
                    try:
                        if begin:
                            driver.execute(_BEGIN, prepare=False)
                        for sql, params, many, answer in queue:
                            if many:
                                driver.cursor().executemany(sql, params)
                            elif answer is None:
                                driver.execute(sql, params)
                            else:
                                cur = driver.cursor(row_factory=namedtuple_row)
                                cur.execute(sql, params)
                                answer.append(cur)
                        if deferred:
                            _hand_to_libpq(pipeline)
                    finally:
                        if deferred:
                            del pipeline._communicate_gen
            finally:
                if begin:
                    driver._autocommit = False
        except Exception as exc:
            conflict = self._conflict(exc)
            if conflict is not None:
                raise conflict from exc
            raise
        finally:
            self._fences.clear()

    def _conflict(self, exc: Exception) -> ConflictError | AssumptionFailed | None:
        """The fence that failed, as a ConflictError, or the check, as its error (None if ``exc`` is something else)."""
        text = str(exc)
        at = text.find(FENCE_MARK)
        if at < 0:
            return None
        key = text[at + len(FENCE_MARK):].split(";", 1)[0]
        found = self._fences.get(key)
        if found is None:
            return None
        if isinstance(found, AssumptionFailed):
            return found
        return ConflictError(*found)

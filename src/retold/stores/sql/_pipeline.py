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

A pipeline is written on libpq's connection directly (:meth:`Pipeline._send`):
psycopg's own parts turn each statement and its parameters into protocol
messages and keep the connection's prepared statements, then every message
goes to the socket at once and every answer is read up to the ``Sync``.
Through psycopg's cursors each statement also cost a cursor, a ``poll`` and
a ``send`` of its own: as much CPU as everything else in the transaction.
"""

from __future__ import annotations

import contextlib
import functools
import select
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ...errors import ConflictError, StoreError
from ._fast import Statement

__all__ = ["AFTER_COMMIT_KEY", "FENCE_MARK", "PIPELINE_KEY", "AssumptionFailed", "Pipeline", "Rerun", "shifted"]

# What the fence raises when it does not hold (see _statements.fence_sql).
FENCE_MARK = "retold fence "

_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_BEGIN_BYTES = _BEGIN.encode()

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


# The psycopg versions whose internal parts :meth:`Pipeline._send` was written
# against and is tested with (``_preparing``, ``_queries``, the connection's
# cache of prepared statements): another version's statements go through
# its public cursors, as they did before.
_PSYCOPG_KNOWN = ((3, 2), (3, 3))


def _psycopg_known() -> bool:
    try:
        import psycopg
    except ImportError:  # not installed (SQLite only)
        return False
    try:
        major, minor = (int(part) for part in psycopg.__version__.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) in _PSYCOPG_KNOWN


try:  # psycopg's parts that turn a statement and its parameters into protocol messages
    from psycopg import errors as _errors
    from psycopg import pq as _pq
    from psycopg._preparing import Prepare as _Prepare
    from psycopg._queries import PostgresQuery as _PostgresQuery
    from psycopg.adapt import Transformer as _Transformer
except ImportError:  # not installed (SQLite only), or another psycopg: statements go through its cursors
    _RAW = False
else:
    _RAW = _psycopg_known()
    _FATAL = _pq.ExecStatus.FATAL_ERROR
    _ABORTED = _pq.ExecStatus.PIPELINE_ABORTED
    _SYNC = _pq.ExecStatus.PIPELINE_SYNC


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)


class _Answer:
    """A statement's answer read off a pipeline: its rows (named tuples) and its command status."""

    __slots__ = ("_at", "_rows", "statusmessage")

    def __init__(self, rows: list[Any], status: str | None) -> None:
        self._rows = rows
        self._at = 0
        self.statusmessage = status

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[Any]:
        rows, self._at = self._rows[self._at:], len(self._rows)
        return rows


def _wait(fd: int, write: bool) -> bool:
    """Wait until the socket can be read (or, with ``write``, written); whether it can be read."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | (select.POLLOUT if write else 0))
    while not (ready := poller.poll()):
        pass
    return bool(ready[0][1] & (select.POLLIN | select.POLLERR | select.POLLHUP))


def _read_pipeline(pgconn: Any) -> list[list[Any]]:
    """Send what libpq holds and read every answer up to the pipeline's Sync: the results of each statement."""
    fd = pgconn.socket
    while pgconn.flush():  # (reading meanwhile: the server may be blocked writing answers)
        if _wait(fd, write=True):
            pgconn.consume_input()
    results: list[list[Any]] = []
    current: list[Any] = []
    while True:
        while pgconn.is_busy():
            _wait(fd, write=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:  # the end of one statement's results
            results.append(current)
            current = []
        elif result.status == _SYNC:
            return results
        else:
            current.append(result)


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
        driver = self._driver
        self.round_trips += 1
        try:
            if _RAW and hasattr(driver, "_prepared"):
                self._send(driver, queue)
            else:
                self._send_through_cursors(driver, queue)
        except Exception as exc:
            conflict = self._conflict(exc)
            if conflict is not None:
                raise conflict from exc
            raise
        finally:
            self._fences.clear()

    def _send(self, driver: Any, queue: list[tuple[str, Any, bool, list[Any] | None]]) -> None:
        """The queue as one pipeline, written on libpq's connection directly.

        What psycopg's cursors do for each statement in a pipeline (turn the
        statement and its parameters into protocol messages, prepare it once
        it has run 5 times, through the connection's own cache of prepared
        statements), then every message handed to the socket at once, and
        every answer read up to the Sync. psycopg's cursors also wait on the
        socket (a ``poll``, and the GIL released and taken again) and write
        to it for each statement, and build a cursor, an adaptation context
        and a transformer for each: as much CPU as the rest. The messages,
        their order, the Sync and the answers are the same.
        """
        pgconn = driver.pgconn
        prepared = driver._prepared
        tx = _Transformer(driver)
        # Per statement sent, in order: where its answer goes, and its entry in the cache of prepared statements.
        expected: list[tuple[list[Any] | None, tuple[Any, Any, bytes] | None]] = []
        deallocated: list[tuple[int, bytes | None]] = []  # (where in ``expected``, name)
        failed: BaseException | None = None
        pgconn.enter_pipeline_mode()
        try:
            try:
                if pgconn.transaction_status == 0:  # IDLE: the first statements of the transaction
                    pgconn.send_query_params(_BEGIN_BYTES, None)
                    expected.append((None, None))
                for sql, params, many, answer in queue:
                    pgq = _PostgresQuery(tx)
                    for i, row in enumerate(params if many else (params,)):
                        if i == 0:
                            pgq.convert(sql, row)
                        else:
                            pgq.dump(row)
                        prep, name = prepared.get(pgq)
                        if prep is _Prepare.NO:
                            pgconn.send_query_params(pgq.query, pgq.params, pgq.types, pgq.formats)
                        else:
                            if prep is _Prepare.SHOULD:
                                pgconn.send_prepare(name, pgq.query, param_types=pgq.types)
                                expected.append((None, None))
                            pgconn.send_query_prepared(name, pgq.params, param_formats=pgq.formats)
                        key = prepared.maybe_add_to_cache(pgq, prep, name)
                        expected.append((answer, None if key is None else (key, prep, name)))
                # Prepared statements psycopg let go of (its cache is full, or they may be gone: see
                # forget_prepared), as its cursors deallocate them: after the statements.
                while prepared._to_flush:
                    name = prepared._to_flush.popleft()
                    pgconn.send_query_params(b"DEALLOCATE " + name if name else b"DEALLOCATE ALL", None)
                    deallocated.append((len(expected), name))
                    expected.append((None, None))
            except BaseException as exc:  # noqa: BLE001 - what was sent is still read, then this is raised
                failed = exc
            pgconn.pipeline_sync()
            results = _read_pipeline(pgconn)
        except BaseException:
            # The error that ended the pipeline is the one raised, not one from leaving pipeline mode after it.
            if pgconn.status == 0:
                with contextlib.suppress(Exception):
                    pgconn.exit_pipeline_mode()
            raise
        if pgconn.status == 0:  # OK (a broken connection is left to the pool)
            pgconn.exit_pipeline_mode()
        for at, name in deallocated:  # not done (the pipeline failed before): at the next one
            if not results[at] or results[at][-1].status in (_FATAL, _ABORTED):
                prepared._to_flush.append(name)
        if failed is not None:
            raise failed
        error: Exception | None = None
        for (answer, prepared_as), result in zip(expected, results, strict=True):
            if prepared_as is not None:
                prepared.validate(*prepared_as, result)
            last = result[-1] if result else None
            if last is None:
                continue
            if last.status == _FATAL:
                error = error or _errors.error_from_result(last, encoding=pgconn._encoding)
            elif last.status == _ABORTED:
                error = error or _errors.PipelineAborted("pipeline aborted")
            elif answer is not None:
                rows: list[Any] = []
                if last.ntuples:
                    tx.set_pgresult(last)
                    make = _row_type(tuple(last.fname(i).decode() for i in range(last.nfields)))._make
                    rows = tx.load_rows(0, last.ntuples, make)
                status = last.command_status
                answer.append(_Answer(rows, status.decode() if status else None))
        if error is not None:
            raise error

    def _send_through_cursors(self, driver: Any, queue: list[tuple[str, Any, bool, list[Any] | None]]) -> None:
        """The queue as one pipeline through psycopg's cursors (a psycopg without the parts :meth:`_send` uses)."""
        from psycopg.rows import namedtuple_row

        begin = driver.pgconn.transaction_status == 0 and hasattr(driver, "_autocommit")  # IDLE
        try:
            if begin:
                # psycopg sends BEGIN itself, alone, before the first statement
                # (and waits for it, even in a pipeline) unless it thinks it is
                # in autocommit: it then leaves ours to go with the statements.
                driver._autocommit = True
            with driver.pipeline():
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
        finally:
            if begin:
                driver._autocommit = False

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

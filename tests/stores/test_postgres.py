"""What only PostgreSQL does: the server's clock, row locks, NOTIFY, shared databases."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.client import _client
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest
from retold.stores._plan import Plan
from retold.stores.sql import SqlStore, _pipeline, _postgres
from retold.stores.sql import _schema as t
from retold.testing.store_contract._common import run_with_activity
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """These tests are about the database, not the event loop."""
    return "asyncio"


def test_urls_name_psycopg_3() -> None:
    assert SqlStore("postgres://u:secret@db.example/app").url == "postgresql+psycopg://u:***@db.example/app"
    assert SqlStore("postgresql://u@db.example/app").dialect == "postgresql"
    with pytest.raises(retold.StoreError, match=r"driver 'postgresql\+psycopg2'.*psycopg 3"):
        SqlStore("postgresql+psycopg2://u@db.example/app")
    with pytest.raises(retold.StoreError, match="unsupported store URL 'mysql://x'"):
        SqlStore("mysql://x")


async def test_leases_use_the_server_clock_not_the_clients(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr(_postgres, "time", SimpleNamespace(time=lambda: real() - 3600))  # an hour slow
    store = SqlStore(postgres_url)
    await store.open()
    try:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        assert await store.claim_workflow_tasks("me", ["wf"], 1, 5.0) == [record.run_id]
        # An hour-slow client would have leased it until an hour ago: others could take it now.
        assert await store.claim_workflow_tasks("other", ["wf"], 1, 5.0) == []
        with store._engine.connect() as conn:
            expires = conn.execute(sa.select(t.workflow_tasks.c.lease_expires)).scalar_one()
            server = conn.execute(sa.text("SELECT extract(epoch FROM now())::float8")).scalar_one()
        # Within a minute (a loaded machine is slow between the statements), against an hour's skew.
        assert abs(expires - (server + 5.0)) < 60
        assert abs(record.created_at - server) < 60
        assert abs(store.now() - real()) < 60  # the local clock corrected by the measured offset
    finally:
        await store.close()


async def test_a_claim_skips_rows_locked_elsewhere_and_locks_only_its_own(postgres_url: str) -> None:
    store = SqlStore(postgres_url)
    await store.open()
    try:
        for i in range(4):
            await run_with_activity(store, f"w{i}")
        with store._engine.connect() as other:
            first = other.execute(sa.select(sa.func.min(t.activity_tasks.c.id))).scalar_one()
            other.execute(sa.select(t.activity_tasks.c.id).where(t.activity_tasks.c.id == first).with_for_update())
            with anyio.fail_after(20):  # no wait on the locked row (it stays locked until the rollback)
                taken = await store.claim_activity_tasks("a", "q", ["a"], 2, 60.0)
                rest = await store.claim_activity_tasks("b", "q", ["a"], 10, 60.0)
            assert first not in {task.id for task in taken + rest}
            assert len(taken) == 2
            assert len(rest) == 1
            other.rollback()
        [last] = await store.claim_activity_tasks("c", "q", ["a"], 10, 60.0)
        assert last.id == first
    finally:
        await store.close()


async def test_a_workflow_lease_renewal_skips_rows_locked_elsewhere(postgres_url: str) -> None:
    # A renewal that waited for a task row a step's transaction holds could deadlock with steps
    # that lock rows in another order (seen in W1 on PostgreSQL: 12-15 "deadlock detected" a run).
    store = SqlStore(postgres_url)
    await store.open()
    try:
        runs = Runs(store)
        ids = [(await runs.start(StartRequest("wf", f"w{i}", b"[]", "h")))[0].run_id for i in range(2)]
        assert sorted(await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)) == sorted(ids)
        wt = t.workflow_tasks
        with store._engine.connect() as other:
            before = dict(other.execute(sa.select(wt.c.run_id, wt.c.lease_expires)).all())
            other.rollback()
            other.execute(sa.select(wt.c.run_id).where(wt.c.run_id == ids[0]).with_for_update())
            with anyio.fail_after(20):  # no wait on the locked row (it stays locked until the rollback)
                await store.renew_workflow_leases("me", ids, 60.0)
            other.rollback()
            after = dict(other.execute(sa.select(wt.c.run_id, wt.c.lease_expires)).all())
        assert after[ids[0]] == before[ids[0]]  # skipped: renewed next time
        assert after[ids[1]] > before[ids[1]] + 30  # renewed to a minute from now
    finally:
        await store.close()


async def test_other_applications_tables_may_share_the_database(postgres_url: str) -> None:
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE app_users (id int)")
    store = SqlStore(postgres_url)
    await store.open()
    await store.close()
    with admin.begin() as conn:
        conn.exec_driver_sql("DELETE FROM retold_meta")
        conn.exec_driver_sql("DROP TABLE retold_meta")
    admin.dispose()
    refused = SqlStore(postgres_url)
    with pytest.raises(retold.SchemaError, match="is not a retold database"):
        await refused.open()
    await refused.close()


def listeners(admin: sa.Engine, postgres_url: str) -> list[int]:
    """The server processes of the engines listening on this test schema's channel."""
    schema = postgres_url.rsplit("search_path%3D", 1)[-1]
    with admin.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'retold-listener' "
            "AND query = :q"), {"q": f'LISTEN "retold.{schema}"'}).scalars())


async def test_notify_wakes_other_engines_long_before_they_poll(
    make_engine: EngineFactory, postgres_url: str
) -> None:
    from tests.stores.test_engine_on_every_store import child, double, everything

    admin = sa.create_engine(postgres_url)
    slow = {"url": postgres_url, "poll_interval": 60.0}
    try:
        async with make_engine(run_workers=False, **slow) as client, \
                make_engine([everything, child], [double], **slow):
            # An engine listens a moment after it opens (its own connection, in a thread):
            # a NOTIFY sent before then is for its next poll, which this test would wait for.
            with anyio.fail_after(20):
                while len(listeners(admin, postgres_url)) < 2:
                    await anyio.sleep(0.05)
            run = await client.start("everything", 3, id="notified")
            started = time.monotonic()
            with anyio.fail_after(20):
                while (await run.describe()).event_count < 6:  # activity done, timer started and fired
                    await anyio.sleep(0.05)
            await run.signal("extra", 1)
            assert await run.result(timeout=20) == [6, 1, 12]
            assert time.monotonic() - started < 20  # one poll would have taken 60 s
    finally:
        admin.dispose()


async def test_a_lost_listener_only_delays_work_by_the_poll_interval(
    make_engine: EngineFactory, postgres_url: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.stores.test_engine_on_every_store import child, double, everything

    # The listeners reopen 6 s after they are lost (2 s by default): long enough that
    # work done before then, on a loaded machine too, was found by the 0.3 s poll.
    monkeypatch.setattr(_client, "_LISTEN_RETRY", 6.0)

    admin = sa.create_engine(postgres_url)
    try:
        async with make_engine(run_workers=False, url=postgres_url, poll_interval=30.0) as client, \
                make_engine([everything, child], [double], url=postgres_url, poll_interval=0.3):
            with anyio.fail_after(10):
                while len(listeners(admin, postgres_url)) < 2:
                    await anyio.sleep(0.05)
            with admin.connect() as conn:
                for pid in listeners(admin, postgres_url):
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            run = await client.start("everything", 1, id="polled")
            started = time.monotonic()
            with anyio.fail_after(5):  # the listeners reopen after 6 s: this is the poll
                while (await run.describe()).event_count < 2:
                    await anyio.sleep(0.02)
            assert time.monotonic() - started < 5
            with anyio.fail_after(20):  # and they come back
                while len(listeners(admin, postgres_url)) < 2:
                    await anyio.sleep(0.1)
            await run.cancel()
    finally:
        admin.dispose()
    assert "lost its store listener" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_every_connection_dropped_at_once_as_by_a_server_restart(
    make_engine: EngineFactory, postgres_url: str
) -> None:
    """A PostgreSQL restart (issue 16's failure model): every connection of the engine is dropped at once.

    The engine's loops reconnect and finish the run; a call that met a dropped
    connection raises ``StoreError`` and wrote nothing, and the next one works.
    """
    from tests.stores.test_engine_on_every_store import child, double, everything

    app = f"restart-{time.monotonic_ns()}"
    url = sa.make_url(postgres_url).update_query_dict({"application_name": app}).render_as_string(
        hide_password=False)
    admin = sa.create_engine(postgres_url)

    def ours() -> list[int]:
        with admin.connect() as conn:
            pool = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :app"),
                                {"app": app}).scalars()
            return [*pool, *listeners(admin, postgres_url)]

    try:
        async with make_engine([everything, child], [double], url=url, poll_interval=0.2) as engine:
            run = await engine.start(everything.with_options(id="restarted"), 3)
            with anyio.fail_after(30):
                while await run.query("progress") != "waiting":
                    await anyio.sleep(0.05)
            killed = ours()
            assert len(killed) >= 2  # the pool's connections and the listener
            with admin.connect() as conn:
                for pid in killed:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            refused = 0
            with anyio.fail_after(30):
                while True:
                    try:
                        await run.signal("extra", 1)
                        break
                    except retold.StoreError:
                        refused += 1  # met a dropped connection: nothing was written
                        await anyio.sleep(0.1)
            assert refused <= 2
            assert await run.result(timeout=60) == [6, 1, 12]
            signals = [e for e in await run.history() if type(e).__name__ == "SignalReceived"]
            assert len(signals) == 1
            with anyio.fail_after(30):  # the listener comes back too
                while not listeners(admin, postgres_url):
                    await anyio.sleep(0.1)
    finally:
        admin.dispose()


class _RoundTrips:
    """Round trips on every pooled connection of a store, from libpq's protocol trace.

    A round trip is a run of messages the client sent followed by the
    server's answer (the server answers a pipeline only at its Sync).
    """

    def __init__(self, store: SqlStore) -> None:
        self._traced: list[tuple[Any, Any]] = []
        self._engine = store._engine
        sa.event.listen(self._engine, "checkout", self._checkout)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        from psycopg import pq

        pgconn = dbapi_conn.pgconn
        if any(traced is pgconn for traced, _f in self._traced):
            return
        f = tempfile.TemporaryFile()  # noqa: SIM115 - closed by count()
        pgconn.trace(f.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self._traced.append((pgconn, f))

    def count(self) -> int:
        """The round trips so far (and stop tracing); what the client sent is kept in ``sent``."""
        sa.event.remove(self._engine, "checkout", self._checkout)
        total = 0
        self.sent: list[str] = []
        for pgconn, f in self._traced:
            pgconn.untrace()  # flushes the trace
            f.seek(0)
            text = f.read().decode(errors="replace")
            f.close()
            sent = False
            for line in text.splitlines():
                if line.startswith("F"):
                    self.sent.append(line)
                    sent = True
                elif line.startswith("B") and sent:
                    total, sent = total + 1, False
        self._traced.clear()
        return total


async def test_a_workflow_step_is_one_round_trip(postgres_url: str) -> None:
    """A step that completes an activity the store leased in its own last commit of the run, and leases
    the next one: BEGIN, the fences on what the store remembers (the run's last event number and status,
    no workflow task, the activity task's holder and attempt), the writes and COMMIT in one pipeline,
    the server's clock read inside it."""
    from retold.engine._machine import ActivityStep, ActivityTake, StartStep
    from retold.history import events as ev
    from retold.stores import ActivityOutcome

    store = SqlStore(postgres_url)
    await store.open()
    try:
        scheduled = ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={})
        started = ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id="w-rt2", input=b"[]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
        trips = _RoundTrips(store)
        run, _ = await Runs(store).start(StartRequest("wf", "w-rt2", b"[]", "h"),
                                         StartStep("r", started, [scheduled], take))
        # A start with its first step: BEGIN with the id's record and the clock; the id claimed; the rest
        # of the writes with the run read back for its record; COMMIT.
        assert trips.count() == 4
        sent = trips.sent
        [task] = take.taken
        for seq in (3, 5):
            trips = _RoundTrips(store)
            outcome = ActivityOutcome("completed", result=b"1")
            nxt = ev.ActivityScheduled(seq=seq + 1, at=1.0, activity="a", input=b"[]", options={})
            take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
            step = ActivityStep(run.run_id, seq - 1, outcome.event(seq=seq, at=1.0, scheduled=seq - 1, attempt=1),
                                [nxt], take)
            before = store.now()
            assert await Runs(store).finish_activity(task, "me", outcome, step)
            assert step.stepped
            assert trips.count() == 1
            sent += trips.sent
            [task] = take.taken
            assert task.seq == seq + 1
            # One reading of the server's clock serves every time the step writes; the outcome's event
            # keeps the time it was given, as before.
            with store._engine.connect() as conn:
                at = dict(conn.execute(sa.select(t.events.c.seq, t.events.c.at)
                                       .where(t.events.c.seq.in_([seq, seq + 1]))).all())
                row = conn.execute(sa.select(t.activity_tasks).where(t.activity_tasks.c.id == task.id)).one()
                server = conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())::float8")).scalar_one()
            assert at[seq] == 1.0
            assert at[seq + 1] == row.scheduled_at == row.started_at == row.visible_at
            assert row.lease_expires == pytest.approx(row.scheduled_at + 5.0, abs=1e-6)
            assert before - 1.0 < at[seq + 1] <= server
        _record, history = await store.load(run.run_id, 0)
        assert [e.seq for e in history] == [1, 2, 3, 4, 5, 6]
        # The events carry the run's key as read with the run or taken for it at the start (schema
        # version 11), not looked up by their insert (psycopg parses each statement's text before it
        # prepares it, so any insert of events shows its text at least once).
        inserts = [line for line in sent if "INSERT INTO retold_events" in line]
        assert inserts
        assert not any("(SELECT" in line for line in inserts), inserts
        # The leased activity's id (reserved ahead of the insert) is the row's.
        assert await store.renew_leases("me", [task.id], 5.0) == set()  # none lost
    finally:
        await store.close()


async def _started_with_leased_activity(store: SqlStore, workflow_id: str) -> tuple[Any, Any]:
    """A run started with its first step, its activity (event 2) leased to "me": the store remembers both."""
    from retold.engine._machine import ActivityTake, StartStep

    scheduled = ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={})
    started = ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id=workflow_id, input=b"[]")
    take = ActivityTake("me", 30.0, frozenset({"a"}), {"default": 1})
    run, _ = await Runs(store).start(StartRequest("wf", workflow_id, b"[]", "h"),
                                     StartStep(f"r-{workflow_id}", started, [scheduled], take))
    [task] = take.taken
    return run, task


def _next_step(run_id: str) -> tuple[Any, Any, Any]:
    """The activity of event 2 completed, and the step it causes: schedule the activity of event 4."""
    from retold.engine._machine import ActivityStep, ActivityTake
    from retold.stores import ActivityOutcome

    outcome = ActivityOutcome("completed", result=b"1")
    take = ActivityTake("me", 30.0, frozenset({"a"}), {"default": 1})
    nxt = ev.ActivityScheduled(seq=4, at=1.0, activity="a", input=b"[]", options={})
    return outcome, take, ActivityStep(run_id, 2, outcome.event(seq=3, at=1.0, scheduled=2, attempt=1), [nxt], take)


@pytest.mark.parametrize("moved", ["signal", "closed", "lease lost", "attempt superseded", "workflow task held"])
async def test_a_step_on_remembered_state_that_another_writer_moved_writes_nothing_and_ends_as_before(
    postgres_url: str, moved: str,
) -> None:
    """Another writer (another process: a store of its own) moved what the one-round-trip step assumed
    from the store's memory: its fences fail, nothing of it is written, and the step is decided again on
    what is read, with the outcome it always had (one round trip more)."""
    store, other = SqlStore(postgres_url), SqlStore(postgres_url)
    await store.open()
    await other.open()
    try:
        run, task = await _started_with_leased_activity(store, f"w-moved-{moved}")
        at = t.activity_tasks
        if moved == "signal":
            await Runs(other).signal(run.run_id, "s", b"[]")
        elif moved == "closed":
            await Runs(other).terminate(run.run_id, "stop")
        elif moved == "lease lost":  # its lease ran out and another worker claimed it
            with other._engine.begin() as conn:
                conn.execute(at.update().where(at.c.id == task.id).values(lease_owner="other", attempt=2))
        elif moved == "attempt superseded":  # handed back and claimed again by this same worker
            with other._engine.begin() as conn:
                conn.execute(at.update().where(at.c.id == task.id).values(attempt=2))
        else:  # a signal woke the run and another worker holds its workflow task
            await Runs(other).signal(run.run_id, "s", b"[]")
            assert await other.claim_workflow_tasks("other", ["wf"], 10, 30.0) == [run.run_id]
        before = await store.load(run.run_id, 0)
        outcome, take, step = _next_step(run.run_id)
        trips = _RoundTrips(store)
        recorded = await Runs(store).finish_activity(task, "me", outcome, step)
        # The failed pipeline (and its ROLLBACK, and psycopg's DEALLOCATE ALL after a failed pipeline),
        # then the reads and the writes, as before.
        assert trips.count() >= 3
        assert not step.stepped
        assert take.taken == []
        _record, history = await store.load(run.run_id, 0)
        work = await store.pending_work(run.run_id)
        assert all(a.seq != 4 for a in work.activities)  # the step's activity was not written
        if moved == "signal":  # the outcome joins the history after the signal, and wakes the run
            assert recorded
            assert [(e.seq, e.type) for e in history] == [
                (1, "WorkflowStarted"), (2, "ActivityScheduled"), (3, "SignalReceived"), (4, "ActivityCompleted")]
            assert work.activities == ()
        elif moved == "workflow task held":  # the outcome waits in the run's inbox
            assert recorded
            assert [e.seq for e in history] == [1, 2, 3]
            with store._engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(t.inbox)).scalar() == 1
        else:  # not this attempt's any more (or the run is closed): nothing is recorded
            assert not recorded
            assert history == before[1]
    finally:
        await store.close()
        await other.close()


async def test_a_step_on_remembered_state_that_needs_a_read_is_decided_on_what_is_read(postgres_url: str) -> None:
    """A step that closes its run reads the run's open children: it is decided on what is read, as
    before, and its record (handed to waiters) has the close's time as stored."""
    from retold.engine._machine import ActivityStep
    from retold.stores import ActivityOutcome

    store = SqlStore(postgres_url)
    await store.open()
    try:
        run, task = await _started_with_leased_activity(store, "w-closing")
        outcome = ActivityOutcome("completed", result=b"1")
        step = ActivityStep(run.run_id, 2, outcome.event(seq=3, at=1.0, scheduled=2, attempt=1),
                            [ev.WorkflowCompleted(seq=4, at=1.0, result=b"1")])
        trips = _RoundTrips(store)
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert trips.count() == 3  # as before: BEGIN and the reads, the open children, the writes and COMMIT
        assert step.closed is not None
        assert step.closed == await store.get_run(run.run_id)
    finally:
        await store.close()


async def test_a_moved_run_fails_the_pipelined_fence_and_writes_nothing(postgres_url: str) -> None:
    """The last_seq fence goes with the writes it guards, unanswered: when the run has moved, the
    transaction fails with ConflictError and none of the writes queued with it stays."""
    from retold.engine._machine import ActivityStep
    from retold.history import events as ev
    from retold.stores import ActivityOutcome

    store = SqlStore(postgres_url)
    await store.open()
    try:
        run, task = await _started_with_activity(store, "w-fence")

        def commit_stale(tx: Any) -> None:
            tx.run(run.run_id)
            tx.apply(Plan(run.run_id, expect_seq=1, events=[ev.TimerStarted(seq=2, at=0, duration=5.0)],
                          timers=[(2, 5.0)]))

        with pytest.raises(retold.ConflictError) as caught:
            await store.transact(commit_stale)
        assert (caught.value.run_id, caught.value.expected_seq) == (run.run_id, 1)
        _record, history = await store.load(run.run_id, 0)
        assert [e.seq for e in history] == [1, 2]
        assert (await store.pending_work(run.run_id)).timers == ()
        # The connection is usable afterwards, and the activity's step still commits.
        outcome = ActivityOutcome("completed", result=b"1")
        step = ActivityStep(run.run_id, 2, outcome.event(seq=3, at=1.0, scheduled=2, attempt=1),
                            [ev.WorkflowCompleted(seq=4, at=1.0, result=b"1")])
        for _ in range(int(store._d.limiter.total_tokens)):  # every pooled connection
            assert await store.get_run(run.run_id)
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert (await store.get_run(run.run_id)).status == "completed"
    finally:
        await store.close()


async def test_events_of_a_run_not_read_take_its_key_from_the_run_and_the_fence_stays_blind(
    postgres_url: str,
) -> None:
    """A plan applied to a run this transaction did not read: the fence still goes unanswered with the
    events (reads with BEGIN and the clock, then the writes with COMMIT), and the events get the run's
    integer key from the run's row (schema version 11); a stale one still fails and writes nothing."""
    store = SqlStore(postgres_url)
    await store.open()
    try:
        other, _ = await Runs(store).start(StartRequest("wf", "w-unread-other", b"[]", "h"))
        run, _ = await Runs(store).start(StartRequest("wf", "w-unread", b"[]", "h"))

        def append(tx: Any) -> None:  # no tx.run: the run's key is not known to the transaction
            tx.apply(Plan(run.run_id, expect_seq=1, events=[ev.TimerStarted(seq=2, at=0, duration=5.0)],
                          timers=[(2, 5.0)]))

        trips = _RoundTrips(store)
        await store.transact(append)
        assert trips.count() == 2
        _record, history = await store.load(run.run_id, 0)
        assert [(e.seq, e.type) for e in history] == [(1, "WorkflowStarted"), (2, "TimerStarted")]
        assert [e.seq for e in (await store.load(other.run_id, 0))[1]] == [1]
        with store._engine.connect() as conn:
            keys = conn.execute(sa.select(t.events.c.rk).where(t.events.c.seq == 2).where(
                t.events.c.rk == sa.select(t.runs.c.rk).where(t.runs.c.run_id == run.run_id).scalar_subquery()
            )).all()
        assert len(keys) == 1
        with pytest.raises(retold.ConflictError):
            await store.transact(append)  # the run is at event 2 now
        assert [e.seq for e in (await store.load(run.run_id, 0))[1]] == [1, 2]
        assert len((await store.pending_work(run.run_id)).timers) == 1
    finally:
        await store.close()


async def test_a_workflow_step_reads_in_one_statement_and_writes_in_a_pipeline(postgres_url: str) -> None:
    """The step's reads (the run, its task, the server's clock) come back from one statement; its writes
    are sent together on the driver's connection, and the step is committed whole."""
    from retold.engine._machine import ActivityStep, ActivityTake, StartStep
    from retold.history import events as ev
    from retold.stores import ActivityOutcome

    store = SqlStore(postgres_url)
    await store.open()
    try:
        scheduled = ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={})
        started = ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id="w-rt", input=b"[]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
        first = StartStep("r", started, [scheduled], take)
        run, _ = await Runs(store).start(StartRequest("wf", "w-rt", b"[]", "h"), first)
        [task] = take.taken
        seen: list[str] = []
        sa.event.listen(store._engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
        outcome = ActivityOutcome("completed", result=b"1")
        step = ActivityStep(run.run_id, 2, outcome.event(seq=3, at=1.0, scheduled=2, attempt=1),
                            [ev.WorkflowCompleted(seq=4, at=1.0, result=b"1")])
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert (await store.get_run(run.run_id)).status == "completed"
        _record, history = await store.load(run.run_id, 0)
        assert [e.seq for e in history] == [1, 2, 3, 4]
    finally:
        await store.close()
    # The step's writes went together on the driver (one pipeline), not one by one through SQLAlchemy.
    assert not any(s.lstrip().startswith(("INSERT", "UPDATE", "DELETE")) for s in seen), seen
    # No separate clock read, and no read of the task's row apart from its run's.
    assert not any("clock_timestamp" in s and "retold_runs" not in s for s in seen), seen
    assert not any("FROM retold_workflow_tasks" in s and "FOR UPDATE" in s and "retold_runs" not in s
                   for s in seen), seen


async def _group_of_starts(store: SqlStore, odd: Any) -> tuple[dict[str, object], object]:
    """40 starts and one ``odd`` transaction at once, on a store whose one connection batches them."""
    outcomes: dict[str, object] = {}

    async def start(workflow_id: str) -> None:
        try:
            _record, created = await Runs(store).start(StartRequest("wf", workflow_id, b"[]", "h"))
            outcomes[workflow_id] = created
        except retold.StoreError as exc:
            outcomes[workflow_id] = exc

    odd_outcome: list[object] = []

    async def run_odd() -> None:
        try:
            odd_outcome.append(await store.transact(odd))
        except Exception as exc:
            odd_outcome.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(start, f"g{i}")
        tg.start_soon(run_odd)
        for i in range(20, 40):
            tg.start_soon(start, f"g{i}")
    return outcomes, odd_outcome[0]


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_group_commit_shares_a_commit_and_a_piece_whose_fence_fails_fails_alone(
    postgres_url: str, pool_size: int,
) -> None:
    """With several connections, several batches commit at once; a caller whose piece another turn took
    waits for that turn's COMMIT."""
    store = SqlStore(postgres_url, pool_size=pool_size, group_commit=True)
    await store.open()
    commits = 0

    def count(_conn: object) -> None:
        nonlocal commits
        commits += 1

    try:
        stale, _ = await Runs(store).start(StartRequest("wf", "stale", b"[]", "h"))

        def commit_stale(tx: Any) -> None:  # the run is at event 1: a plan that expects 0 must not land
            tx.apply(Plan(stale.run_id, expect_seq=0, events=[ev.TimerStarted(seq=1, at=0, duration=5.0)],
                          timers=[(1, 5.0)]))

        sa.event.listen(store._engine, "commit", count)
        outcomes, odd = await _group_of_starts(store, commit_stale)
        assert all(outcomes[f"g{i}"] is True for i in range(40)), outcomes
        assert isinstance(odd, retold.ConflictError)
        assert commits < 41  # one per transaction without group commit
        assert len(await store.list_runs(limit=100)) == 41
        assert [e.seq for e in (await store.load(stale.run_id, 0))[1]] == [1]
        assert (await store.pending_work(stale.run_id)).timers == ()
    finally:
        await store.close()


async def test_group_commit_fails_every_piece_when_the_commit_does_not_happen(postgres_url: str) -> None:
    """A batch whose connection dies before COMMIT: no piece is told it was written, and none was."""
    store = SqlStore(postgres_url, pool_size=1, group_commit=True)
    await store.open()
    try:
        def kill(tx: Any) -> None:
            tx._sent().execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))

        outcomes, odd = await _group_of_starts(store, kill)
        assert isinstance(odd, retold.StoreError)
        written = {r.workflow_id for r in await store.list_runs(limit=100)}
        told = {workflow_id for workflow_id, outcome in outcomes.items() if outcome is True}
        failed = {workflow_id for workflow_id, outcome in outcomes.items() if isinstance(outcome, retold.StoreError)}
        assert told <= written  # whoever was told "written" was written
        assert failed  # the pieces batched with the one that killed the connection
        assert not failed & written  # and none of them was written
        # The batch the connection died in was not written at all, and the store goes on.
        assert (await Runs(store).start(StartRequest("wf", "after", b"[]", "h")))[1] is True
    finally:
        await store.close()


async def test_steps_on_remembered_state_in_a_group_commit(postgres_url: str) -> None:
    """With group commit, steps decided on remembered state go in a batch's savepoints: each piece's checks
    and writes with its RELEASE, a piece whose check fails rolled back alone and decided again on reads."""
    store, other = SqlStore(postgres_url, pool_size=1, group_commit=True), SqlStore(postgres_url)
    await store.open()
    await other.open()
    try:
        started = [await _started_with_leased_activity(store, f"w-group-{i}") for i in range(12)]
        await Runs(other).signal(started[5][0].run_id, "s", b"[]")  # moved: its check fails
        outcomes: dict[int, tuple[bool, bool]] = {}

        async def finish(i: int) -> None:
            run, task = started[i]
            outcome, _take, step = _next_step(run.run_id)
            outcomes[i] = (await Runs(store).finish_activity(task, "me", outcome, step), step.stepped)

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(finish, i)
        assert outcomes == {i: (True, i != 5) for i in range(12)}
        for i, (run, _task) in enumerate(started):
            _record, history = await store.load(run.run_id, 0)
            expected = ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled"] if i != 5 \
                else ["WorkflowStarted", "ActivityScheduled", "SignalReceived", "ActivityCompleted"]
            assert [e.type for e in history] == expected
    finally:
        await store.close()
        await other.close()


class _SocketWaits:
    """How often a pooled connection's socket was waited on (each wait a ``poll``): by psycopg, or by the store's
    own pipeline (``_pipeline._wait``)."""

    def __init__(self, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.waits = 0
        self._engine = store._engine
        self._wrapped: list[Any] = []
        sa.event.listen(self._engine, "checkout", self._checkout)
        wait = _pipeline._wait

        def counted(fd: int, write: bool) -> bool:
            self.waits += 1
            return wait(fd, write)

        monkeypatch.setattr(_pipeline, "_wait", counted)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if any(conn is dbapi_conn for conn in self._wrapped):
            return
        self._wrapped.append(dbapi_conn)
        wait = dbapi_conn.wait

        def counted(gen: Any, *args: Any, **kwargs: Any) -> Any:
            def waits() -> Any:
                ready = None
                while True:
                    try:
                        state = gen.send(ready)
                    except StopIteration as stop:
                        return stop.value
                    self.waits += 1
                    ready = yield state

            return wait(waits(), *args, **kwargs)

        dbapi_conn.wait = counted

    def stop(self) -> None:
        sa.event.remove(self._engine, "checkout", self._checkout)
        for conn in self._wrapped:
            del conn.wait


async def test_a_steps_statements_reach_the_socket_together_not_one_by_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A one-round-trip step's statements are handed to the socket together at the end of its pipeline:
    the socket is waited on a few times per transaction, not twice per statement (a ``poll``, and the
    GIL released and taken again, each time, as psycopg's cursors do). The step is written as before."""

    store = SqlStore(postgres_url)
    await store.open()
    try:
        run, task = await _started_with_activity(store, "w-waits")
        for seq in (3, 5):
            waits = _SocketWaits(store, monkeypatch)
            trips = _RoundTrips(store)
            step = await _step_with_next(store, run.run_id, task, seq)
            waits.stop()
            assert step.stepped
            assert trips.count() == 1
            statements = sum(1 for line in trips.sent if "\tBind\t" in line)
            assert statements >= 6
            assert waits.waits <= 4, (waits.waits, statements)
            [task] = step.take.taken
        _record, history = await store.load(run.run_id, 0)
        assert [e.seq for e in history] == [1, 2, 3, 4, 5, 6]
    finally:
        await store.close()


async def _started_with_activity(store: SqlStore, workflow_id: str) -> tuple[Any, Any]:
    """A run started with its first step, which schedules activity ``a`` (event 2) leased to ``me``:
    the run's record and the activity's task."""
    from retold.engine._machine import ActivityTake, StartStep

    scheduled = ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={})
    started = ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id=workflow_id, input=b"[]")
    take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
    run, _ = await Runs(store).start(StartRequest("wf", workflow_id, b"[]", "h"),
                                     StartStep("r", started, [scheduled], take))
    [task] = take.taken
    return run, task


async def _step_with_next(store: SqlStore, run_id: str, task: Any, seq: int) -> Any:
    """``task``'s outcome (event ``seq``) recorded with the run's next step, which schedules activity ``a``
    again (event ``seq + 1``, leased to ``me``: ``step.take.taken``); the step."""
    from retold.engine._machine import ActivityStep, ActivityTake
    from retold.stores import ActivityOutcome

    outcome = ActivityOutcome("completed", result=b"1")
    nxt = ev.ActivityScheduled(seq=seq + 1, at=1.0, activity="a", input=b"[]", options={})
    take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
    step = ActivityStep(run_id, seq - 1, outcome.event(seq=seq, at=1.0, scheduled=seq - 1, attempt=1), [nxt], take)
    assert await Runs(store).finish_activity(task, "me", outcome, step)
    return step


async def _steps(store: SqlStore, workflow_id: str, steps: int) -> list[list[str]]:
    """A start and ``steps`` one-round-trip steps on ``store``; what the client sent for each step (libpq's trace)."""

    run, task = await _started_with_activity(store, workflow_id)
    sent = []
    for seq in range(3, 3 + 2 * steps, 2):
        trips = _RoundTrips(store)
        step = await _step_with_next(store, run.run_id, task, seq)
        assert step.stepped
        assert trips.count() == 1
        sent.append(trips.sent)
        [task] = step.take.taken
    _record, history = await store.load(run.run_id, 0)
    assert [e.seq for e in history] == list(range(1, 3 + 2 * steps))
    assert [e.type for e in history if e.seq % 2 == 1][1:] == ["ActivityCompleted"] * steps
    return sent


async def test_a_steps_statements_run_prepared_after_five_runs_as_through_psycopgs_cursors(
    postgres_url: str,
) -> None:
    """The store's pipeline prepares a statement once it has run five times, in the connection's own cache of
    prepared statements (psycopg's), as psycopg's cursors do: later steps send only its Bind, no Parse."""
    store = SqlStore(postgres_url, pool_size=1)  # one connection: its cache sees every step
    await store.open()
    try:
        sent = await _steps(store, "w-prepared", 8)
        assert any("\tParse\t" in line and "INSERT INTO retold_events" in line for line in sent[0])
        last = sent[-1]
        binds = [line for line in last if "\tBind\t" in line]
        named = [line for line in binds if '"_pg3_' in line]
        assert len(named) >= 6
        assert len(binds) - len(named) == 1, binds  # BEGIN, never prepared (COMMIT is, as by psycopg's cursors)
        assert not any("\tParse\t" in line and "retold_" in line for line in last), last
    finally:
        await store.close()


async def test_a_psycopg_without_the_parts_the_pipeline_uses_sends_through_its_cursors(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a psycopg whose internals the store's pipeline does not know, statements go through psycopg's
    cursors: the same steps, one round trip each, the same history."""
    monkeypatch.setattr(_pipeline, "_RAW", False)
    store = SqlStore(postgres_url)
    await store.open()
    try:
        await _steps(store, "w-cursors", 3)
    finally:
        await store.close()


def test_the_pipeline_writes_on_libpq_only_for_the_psycopg_versions_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its use of psycopg's internals is tied to the versions tested; another version goes through the cursors."""
    import psycopg

    assert _pipeline._RAW  # the installed psycopg is one of them (else the path above is not tested)
    monkeypatch.setattr(psycopg, "__version__", "3.4.0")
    assert not _pipeline._psycopg_known()
    monkeypatch.setattr(psycopg, "__version__", "3.3.0.dev1")
    assert _pipeline._psycopg_known()


@asynccontextmanager
async def _heard(store: SqlStore, postgres_url: str) -> AsyncIterator[list[str]]:
    """What ``store``'s listener hears (the notifications' payloads, in order) while inside; listening on entry."""
    heard: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.listen, heard.append)
        admin = sa.create_engine(postgres_url)
        try:
            with anyio.fail_after(30):
                while not listeners(admin, postgres_url):
                    await anyio.sleep(0.02)
        finally:
            admin.dispose()
        yield heard
        tg.cancel_scope.cancel()


async def test_a_start_whose_first_task_is_hidden_wakes_no_engine(postgres_url: str) -> None:
    """A start held for its engine's own first step (or delayed) notifies nobody: no engine could claim its
    task. Before, each such start woke every listening engine into a claim that found nothing."""
    store = SqlStore(postgres_url)
    await store.open()
    try:
        async with _heard(store, postgres_url) as heard:
            runs = Runs(store)
            started: list[ev.Event] = []
            request = StartRequest("greet", "held", b'["x"]', "h")
            assert (await runs.start(request, None, started, hold=60.0))[1]
            assert (await runs.start(StartRequest("greet", "shown", b'["y"]', "h"), None, []))[1]
            with anyio.fail_after(30):  # the second start's notification (sent after the first's would be)
                while "workflow" not in heard:
                    await anyio.sleep(0.02)
    finally:
        await store.close()
    assert heard.count("workflow") == 1, heard


async def test_a_transaction_that_failed_notifies_nobody(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed transaction's notifications die with it: none rides with the next transaction on its connection
    (they wait on the connection until the transaction's body is done)."""
    from retold.stores.sql import _tx

    store = SqlStore(postgres_url, pool_size=1)  # one connection: the next transaction would find what was left
    await store.open()
    try:
        async with _heard(store, postgres_url) as heard:
            runs = Runs(store)
            first = (await runs.start(StartRequest("wf", "fails", b"[]", "h"), None, []))[0].run_id
            second = (await runs.start(StartRequest("wf", "closes", b"[]", "h"), None, []))[0].run_id
            assert sorted(await store.claim_workflow_tasks("me", ["wf"], 10, 30.0)) == sorted([first, second])
            done = _tx.SqlTx.done

            def fail_once(self: Any) -> None:
                monkeypatch.setattr(_tx.SqlTx, "done", done)
                raise retold.StoreError("the body failed after its plan")

            monkeypatch.setattr(_tx.SqlTx, "done", fail_once)
            with pytest.raises(retold.StoreError, match="the body failed"):
                await runs.commit_workflow_task(first, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
            await runs.commit_workflow_task(second, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"2")])
            with anyio.fail_after(30):
                while not any(second in kind for kind in heard):
                    await anyio.sleep(0.02)
        assert (await store.get_run(first)).status == "running"
    finally:
        await store.close()
    assert not any(first in kind for kind in heard), heard

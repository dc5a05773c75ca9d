"""The contract for finding runs: search attributes and memos stored, changed, filtered; cursors; close times."""

from __future__ import annotations

from ...engine import Runs
from ...history import events as ev
from ...stores import StartRequest, Store
from ._common import ManualClock, StoreFactory

__all__ = [
    "test_a_cursor_resumes_after_its_run_whatever_starts_meanwhile",
    "test_runs_filter_by_close_time",
    "test_search_attributes_and_memo_are_stored_changed_and_filtered",
]


async def _ids(store: Store, **filters: object) -> list[str]:
    found = await store.list_runs(status=None, workflow=None, limit=100, offset=0, **filters)  # type: ignore[arg-type]
    return [r.workflow_id for r in found]


async def test_search_attributes_and_memo_are_stored_changed_and_filtered(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        acme, _ = await runs.start(StartRequest("wf", "acme-1", b"[]", "h", search_attributes={
            "customer": "s:acme", "priority": "i:3"}, memo={"note": "rush", "n": [1, 2]}))
        clock.now += 1
        await runs.start(StartRequest("wf", "bob-1", b"[]", "h", search_attributes={"customer": "s:bob"}))
        clock.now += 1
        await runs.start(StartRequest("wf", "plain", b"[]", "h"))
        record = await store.get_run("acme-1")
        assert record.search_attributes == {"customer": "s:acme", "priority": "i:3"}
        assert record.memo == {"note": "rush", "n": [1, 2]}
        assert (await store.get_run("plain")).search_attributes in (None, {})
        assert (await store.get_run("plain")).memo is None
        assert await _ids(store, attributes={"customer": "s:acme"}) == ["acme-1"]
        assert await _ids(store, attributes={"customer": "s:acme", "priority": "i:3"}) == ["acme-1"]
        assert await _ids(store, attributes={"customer": "s:acme", "priority": "i:4"}) == []
        assert await _ids(store, attributes={"priority": "s:3"}) == []  # another type: another value
        # A step changes one, adds one and removes one, in the order its commands came.
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await runs.commit_workflow_task(acme.run_id, "me", 1, [
            ev.SearchAttributesUpserted(seq=2, at=0, attributes={"stage": "s:paid", "priority": "i:9"}),
            ev.SearchAttributesUpserted(seq=3, at=0, attributes={"customer": None, "stage": "s:shipped"}),
        ])
        record = await store.get_run(acme.run_id)
        assert record.search_attributes == {"priority": "i:9", "stage": "s:shipped"}
        assert record.memo == {"note": "rush", "n": [1, 2]}
        assert await _ids(store, attributes={"customer": "s:acme"}) == []
        assert await _ids(store, attributes={"stage": "s:shipped", "priority": "i:9"}) == ["acme-1"]
        assert await _ids(store, attributes={"stage": "s:paid"}) == []
        assert await _ids(store, attributes={"customer": "s:bob"}) == ["bob-1"]
        # A run that continues as new keeps them (the machine carries them to the new run).
        await runs.signal(acme.run_id, "go", b"1")
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [acme.run_id]
        await runs.commit_workflow_task(acme.run_id, "me", 4, [
            ev.WorkflowContinuedAsNew(seq=5, at=0, new_run_id="acme-next", input=b"[]")])
        assert await _ids(store, attributes={"stage": "s:shipped"}) == ["acme-1", "acme-1"]
        following = await store.get_run("acme-next")
        assert following.search_attributes == {"priority": "i:9", "stage": "s:shipped"}
        assert following.memo == {"note": "rush", "n": [1, 2]}


async def test_runs_filter_by_close_time(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        ids = [(await runs.start(StartRequest("wf", f"r{i}", b"[]", "h")))[0].run_id for i in range(3)]
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        t0 = clock.now
        for i in (0, 1):
            clock.now += 10
            await runs.commit_workflow_task(ids[i], "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        assert sorted(await _ids(store, closed_after=t0)) == ["r0", "r1"]  # never an open run
        assert await _ids(store, closed_after=t0 + 15) == ["r1"]
        assert await _ids(store, closed_before=t0 + 15) == ["r0"]
        assert await _ids(store, closed_after=t0 + 5, closed_before=t0 + 15) == ["r0"]


async def test_a_cursor_resumes_after_its_run_whatever_starts_meanwhile(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        for i in range(5):
            await runs.start(StartRequest("wf", f"r{i}", b"[]", "h"))
            if i != 2:  # r2 and r3 share a start time: the run id orders them
                clock.now += 1
        order = [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=100, offset=0)]
        records = await store.list_runs(status=None, workflow=None, limit=2, offset=0)
        seen = [r.run_id for r in records]
        while records:
            clock.now += 1
            await runs.start(StartRequest("wf", f"new-{len(seen)}", b"[]", "h"))  # newer: before the first page
            last = records[-1]
            records = await store.list_runs(status=None, workflow=None, limit=2, offset=0,
                                            after=(last.created_at, last.run_id))
            seen += [r.run_id for r in records]
        assert seen == order

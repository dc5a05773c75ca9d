"""Retention on the memory store: the same rules as the SQL store's (see ``stores/sql/_retention.py``).

A closed run goes with its children (and theirs) and, if it is the last of
its continue-as-new chain, with the chain's earlier runs and the workflow
id's record; a group with a running run in it is kept (``kept``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .._purge import PurgeReport

if TYPE_CHECKING:
    from ._data import Run
    from ._store import MemoryStore

__all__ = ["purge"]


def _group(store: MemoryStore, root: Run) -> list[Run]:
    """``root`` and the runs that go with it."""
    found: dict[str, Run] = {}
    frontier = [root]
    while frontier:
        run = frontier.pop()
        if run.run_id in found:
            continue
        found[run.run_id] = run
        frontier += [store.runs[c] for c in store.children.get(run.run_id, ()) if c in store.runs]
        if run.next_run_id is None:  # the last of its chain: the chain goes with it
            frontier += [r for r in store.runs.values() if r.workflow_id == run.workflow_id]
    return list(found.values())


def purge(
    store: MemoryStore, before: float, statuses: Sequence[str] | None, workflow: str | None, dry_run: bool,
) -> PurgeReport:
    """Delete (or count) the closed runs that closed before ``before``, with what goes with them."""
    roots = sorted(
        (r for r in store.runs.values()
         if r.closed_at is not None and r.closed_at < before
         and (statuses is None or r.status in statuses) and (workflow is None or r.workflow == workflow)),
        key=lambda r: (r.closed_at or 0.0, r.run_id),
    )
    doomed: dict[str, Run] = {}
    kept = 0
    for root in roots:
        if root.run_id in doomed:
            continue
        group = _group(store, root)
        if any(r.status == "running" for r in group):
            kept += 1
            continue
        doomed.update((r.run_id, r) for r in group)
    ids = set(doomed)
    report = PurgeReport(
        runs=len(ids),
        events=sum(len(store.events.get(i, ())) for i in ids),
        tasks=sum(1 for i in ids if i in store.wfts) + sum(len(store.run_tasks.get(i, {})) for i in ids),
        inbox=sum(len(store.inbox.get(i, ())) for i in ids),
        timers=sum(len(store.timers.get(i, {})) for i in ids),
        kept=kept, dry_run=dry_run,
    )
    gone_ids = [wid for wid in {r.workflow_id for r in doomed.values()}
                if all(r.run_id in ids for r in store.runs.values() if r.workflow_id == wid)]
    report = replace(report, workflow_ids=len(gone_ids))
    if dry_run:
        return report
    for run_id in ids:
        for task_id in store.run_tasks.pop(run_id, {}).values():
            task = store.tasks.pop(task_id, None)
            if task is not None:
                store.queues.get(task.queue, {}).pop(task_id, None)
        for table in (store.events, store.inbox, store.timers, store.wfts, store.children):
            table.pop(run_id, None)
        parent = store.runs.pop(run_id).parent_run_id
        if parent is not None and parent in store.children and run_id in store.children[parent]:
            store.children[parent].remove(run_id)
    for wid in gone_ids:
        entry = store.workflows.pop(wid, None)
        if entry is not None and entry.idempotency_key is not None:
            store.keys.pop(entry.idempotency_key, None)
    for wid in {r.workflow_id for r in doomed.values()} - set(gone_ids):
        entry = store.workflows[wid]
        if entry.first_run_id in ids:  # the chain lost its oldest end: name the oldest run left
            left = [r for r in store.runs.values() if r.workflow_id == wid]
            successors = {r.next_run_id for r in left}
            head = next(r for r in left if r.run_id not in successors)
            store.workflows[wid] = replace(entry, first_run_id=head.run_id)
    return report

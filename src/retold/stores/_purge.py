"""What a purge of old runs removed (or, in a dry run, would remove)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import final

__all__ = ["PurgeReport"]


@final
@dataclass(frozen=True, slots=True)
class PurgeReport:
    """Counts of what a purge deleted (with ``dry_run``: what it would delete).

    Attributes:
        runs: runs deleted, with the runs that went with them (their
            children, the earlier runs of their continue-as-new chain).
        workflow_ids: workflow ids whose last run went: the id and its
            idempotency key can be used again.
        events: history events.
        tasks: workflow and activity tasks left over by those runs.
        inbox: inputs left in their inboxes.
        timers: timers left over by those runs.
        kept: runs old enough that were kept because a run they go with (a
            child, a run of the same chain) is still running; a later purge
            takes them.
        dry_run: True if nothing was deleted.
    """

    runs: int = 0
    workflow_ids: int = 0
    events: int = 0
    tasks: int = 0
    inbox: int = 0
    timers: int = 0
    kept: int = 0
    dry_run: bool = False

    def __add__(self, other: PurgeReport) -> PurgeReport:
        """The counts of two purges (or batches) added up."""
        if not isinstance(other, PurgeReport):
            return NotImplemented
        counts = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "dry_run"}
        return PurgeReport(**counts, dry_run=self.dry_run or other.dry_run)

    def as_dict(self) -> dict[str, int | bool]:
        """The counts as a dict (the JSON the CLI and the HTTP API print)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

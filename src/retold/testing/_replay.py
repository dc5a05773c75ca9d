"""Replay recorded histories against the current workflow code."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

from ..authoring import Workflow
from ..errors import HistoryFormatError, NotRegisteredError, RetoldError
from ..history.codec import Codec, JsonCodec
from ..history.events import Event
from ..history.export import History
from ..runtime import install_guard, strict_guard
from ..runtime import replay as replay_run

__all__ = ["ReplayFailedError", "ReplayOutcome", "ReplayResult", "Replayer", "history_files", "load_history", "replay"]

HistorySource = History | Sequence[Event] | str | bytes | os.PathLike[str]


def load_history(source: HistorySource) -> History:
    """A :class:`History` from a history, a list of events, JSON text/bytes or a file path.

    Raises:
        HistoryFormatError: the document is not a valid history.
    """
    if isinstance(source, History):
        return source
    if isinstance(source, bytes):
        return History.from_json(source)
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return History.from_json(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HistoryFormatError(f"cannot read history file {path}: {exc.strerror or exc}") from None
        try:
            return History.from_json(data)
        except HistoryFormatError as exc:
            raise HistoryFormatError(f"{path}: {exc}") from None
    return History.of(list(source))


@final
@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a successful replay found.

    Attributes:
        workflow: the workflow's registered name.
        run_id: the replayed run.
        events: how many events were replayed.
        finished: the history ends the run (completed, failed, cancelled...).
        next_commands: what the code asks for next when the history stops
            mid-run (empty for a finished run).
    """

    workflow: str
    run_id: str
    events: int
    finished: bool
    next_commands: tuple[Event, ...] = ()


def replay(
    workflow: Workflow[..., Any],
    history: HistorySource,
    *,
    codec: Codec | None = None,
    strict: bool = True,
) -> ReplayResult:
    """Replay ``history`` through ``workflow``'s current code.

    Args:
        workflow: the workflow (its code now, e.g. after a change).
        history: a :class:`History`, a list of events, JSON or a file path.
        codec: the codec the run was recorded with (default JSON). With
            :class:`~retold.PickleCodec`, replaying unpickles the history's
            payloads, which runs any code they name: only for histories
            your own processes wrote.
        strict: also fail on wall-clock and unseeded-random reads by
            workflow code (``time.time()``, ``random.random()``...).

    Raises:
        NondeterminismError: the code diverged; the error names the first
            diverging event, what was recorded and what the code asked for.
        WorkflowSandboxError: the code reached the outside world.
        HistoryFormatError: ``history`` is not a valid history.
    """
    loaded = load_history(history)
    install_guard()
    with strict_guard(strict):
        instance, completion = replay_run(workflow, loaded.run_id or "replay", codec or JsonCodec(), list(loaded),
                                          replay_only=True)
    try:
        commands = completion.unwrap()
        return ReplayResult(
            workflow=workflow.name, run_id=instance.run_id, events=len(loaded),
            finished=instance.finished, next_commands=tuple(commands),
        )
    finally:
        instance.close()


@final
@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """One history's replay in :meth:`Replayer.replay_all`: a result or an error."""

    source: str
    result: ReplayResult | None = None
    error: RetoldError | None = field(default=None)

    @property
    def ok(self) -> bool:
        """The history replayed without divergence."""
        return self.error is None


class ReplayFailedError(AssertionError):
    """Some histories did not replay; the message lists each with its first divergence."""

    def __init__(self, failures: Sequence[ReplayOutcome], total: int) -> None:
        self.failures = tuple(failures)
        lines = [f"{len(failures)} of {total} histories do not replay against the current code:"]
        lines += [f"- {f.source}: {f.error}" for f in failures]
        super().__init__("\n".join(lines))


def history_files(folder: str | os.PathLike[str], pattern: str = "*.json") -> list[Path]:
    """The history files in ``folder`` (recursively), sorted: parametrize a test with them."""
    root = Path(folder)
    if not root.is_dir():
        raise HistoryFormatError(f"history folder {root} does not exist")
    return sorted(root.rglob(pattern))


class Replayer:
    """Replays many histories, choosing the workflow by each history's name.

    Args:
        workflows: the workflows (current code) histories may belong to.
        codec: the codec the runs were recorded with (with
            :class:`~retold.PickleCodec`, trusted histories only: unpickling
            runs code).
        strict: as for :func:`replay`.
    """

    def __init__(
        self, workflows: Iterable[Workflow[..., Any]], *, codec: Codec | None = None, strict: bool = True
    ) -> None:
        self.workflows = {w.name: w for w in workflows}
        self.codec = codec or JsonCodec()
        self.strict = strict

    def replay(self, history: HistorySource) -> ReplayResult:
        """Replay one history; raise like :func:`replay`, or NotRegisteredError."""
        loaded = load_history(history)
        workflow = self.workflows.get(loaded.workflow)
        if workflow is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise NotRegisteredError("workflow", loaded.workflow, f"this Replayer (it has: {known})")
        return replay(workflow, loaded, codec=self.codec, strict=self.strict)

    def replay_all(self, histories: Iterable[HistorySource]) -> list[ReplayOutcome]:
        """Replay every history, collecting each outcome instead of stopping at the first error."""
        outcomes = []
        for i, history in enumerate(histories):
            source = str(history) if isinstance(history, str | os.PathLike) else f"history[{i}]"
            if isinstance(history, History):
                source = f"run {history.run_id or '?'} of {history.workflow!r}"
            try:
                outcomes.append(ReplayOutcome(source, result=self.replay(history)))
            except RetoldError as exc:
                outcomes.append(ReplayOutcome(source, error=exc))
        return outcomes

    def check(self, histories: Iterable[HistorySource]) -> list[ReplayResult]:
        """Replay every history; raise :class:`ReplayFailedError` listing all that fail."""
        outcomes = self.replay_all(histories)
        failures = [o for o in outcomes if not o.ok]
        if failures:
            raise ReplayFailedError(failures, len(outcomes))
        return [o.result for o in outcomes if o.result is not None]

    def check_folder(self, folder: str | os.PathLike[str], pattern: str = "*.json") -> list[ReplayResult]:
        """:meth:`check` every history file in ``folder``; an empty folder is an error."""
        files = history_files(folder, pattern)
        if not files:
            raise HistoryFormatError(f"no history files matching {pattern!r} in {folder}")
        return self.check(files)

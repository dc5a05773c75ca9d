"""Schedules: start a workflow on a cron expression or every interval, exactly once per fire time.

A schedule is one store row (:class:`~retold.stores.ScheduleRow`): its
definition and state as JSON, and when a fire loop must next look at it. A
fire reads the row (locked), starts the runs it is due (each under the
workflow id ``<schedule id>@<fire time>``, so a retried or concurrent fire of
the same time finds the same run) and writes the row back, all in ONE store
transaction: any number of engines fire each time once.
"""

from __future__ import annotations

import base64
import collections
import enum
import hashlib
import math
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Literal, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from cronsim import CronSim, CronSimError

from ..errors import ConfigurationError, ScheduleNotFoundError
from ..history import events as ev
from ..history.ids import check_id
from ..stores import ScheduleRow, StartRequest, Store, Tx

if TYPE_CHECKING:
    from ._runs import Runs

__all__ = [
    "KEEP", "OVERLAP_POLICIES", "Keep", "Schedule", "ScheduleDescription", "Schedules", "fired_schedule",
    "start_buffered_in", "wakes_others",
]

Overlap = Literal["skip", "buffer_one", "allow_all", "cancel_previous"]
OVERLAP_POLICIES: tuple[str, ...] = ("skip", "buffer_one", "allow_all", "cancel_previous")
_MIN_EVERY = 0.001  # seconds
_MAX_CATCHUP = 10_000
_MAX_SCAN = 100_000  # fire times looked at in one fire (a long downtime of a short interval)
FAILPOINT_ENV = "RETOLD_SCHEDULE_FAILPOINT"


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""A field of :meth:`ScheduleHandle.update <retold.ScheduleHandle.update>` left as it is (the default)."""

_FIELDS = ("cron", "every", "timezone", "jitter", "overlap", "catchup_limit", "start_at", "paused")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"schedule time zone {name!r} is not a known IANA time zone "
                                 f"(for example 'UTC' or 'Europe/Paris')") from exc


def _seconds(value: timedelta | float | None, name: str, *, positive: bool) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise ConfigurationError(f"schedule {name} must be {'positive' if positive else 'zero or more'}, "
                                 f"got {value!r}")
    return seconds


@final
@dataclass(frozen=True, slots=True)
class Schedule:
    """When and how a schedule starts its workflow; checked when built (nothing is stored then).

    Exactly one of ``cron`` (five fields, read in ``timezone``) and ``every``.
    ``jitter``: each fire starts up to that long after its time (the delay is
    derived from the schedule id and the fire time, so every engine agrees).
    ``overlap``: what a fire does while the previous run is still open:
    ``"skip"`` it, ``"buffer_one"`` (start it when that run closes; a later
    fire replaces a buffered one), ``"allow_all"``, or ``"cancel_previous"``
    (ask that run to cancel, then start). ``catchup_limit``: after downtime,
    how many of the fire times that came meanwhile to start (the latest ones; at least 1).
    ``every`` counts from ``start_at`` (default: when the schedule is created).
    """

    id: str
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    jitter: timedelta | None = None
    overlap: Overlap = "skip"
    catchup_limit: int = 1
    start_at: datetime | None = None
    paused: bool = False

    def __post_init__(self) -> None:
        check_id("schedule id", self.id)
        if not self.id:
            raise ConfigurationError("a schedule id must not be empty")
        if "@" in self.id:
            raise ConfigurationError(f"schedule id {self.id!r} must not contain '@' (it separates the fire time "
                                     f"in the workflow ids of its runs)")
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"schedule {self.id!r} needs exactly one of cron= and every=")
        zone = _zone(self.timezone)
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now(zone))
            except CronSimError as exc:
                raise ConfigurationError(f"schedule {self.id!r}: cron expression {self.cron!r} is not valid: "
                                         f"{exc}") from exc
        every = _seconds(self.every, "every", positive=True)
        if every is not None and every < _MIN_EVERY:
            raise ConfigurationError(f"schedule every must be at least {_MIN_EVERY} seconds, got {self.every!r}")
        _seconds(self.jitter, "jitter", positive=False)
        if self.overlap not in OVERLAP_POLICIES:
            raise ConfigurationError(f"schedule overlap must be one of {', '.join(map(repr, OVERLAP_POLICIES))}, "
                                     f"not {self.overlap!r}")
        if not isinstance(self.catchup_limit, int) or not 1 <= self.catchup_limit <= _MAX_CATCHUP:
            raise ConfigurationError(f"schedule catchup_limit must be an int from 1 to {_MAX_CATCHUP}, "
                                     f"got {self.catchup_limit!r}")
        if self.start_at is not None and self.start_at.tzinfo is None:
            raise ConfigurationError("schedule start_at must be an aware datetime (with a time zone)")


@final
@dataclass(frozen=True, slots=True)
class ScheduleDescription:
    """A schedule as stored: its definition, its state and its next fire times."""

    id: str
    workflow: str
    cron: str | None
    every: timedelta | None
    timezone: str
    jitter: timedelta | None
    overlap: str
    catchup_limit: int
    paused: bool
    next_fires: list[datetime]
    last_fire: datetime | None
    last_workflow_id: str | None
    buffered: datetime | None
    fires: int
    skipped: int

    def to_json(self) -> dict[str, Any]:
        """A JSON object of it (times in ISO 8601, durations in seconds)."""
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()
        return {
            "id": self.id, "workflow": self.workflow, "cron": self.cron,
            "every": None if self.every is None else self.every.total_seconds(),
            "timezone": self.timezone, "jitter": None if self.jitter is None else self.jitter.total_seconds(),
            "overlap": self.overlap, "catchup_limit": self.catchup_limit, "paused": self.paused,
            "next_fires": [iso(t) for t in self.next_fires], "last_fire": iso(self.last_fire),
            "last_workflow_id": self.last_workflow_id, "buffered": iso(self.buffered),
            "fires": self.fires, "skipped": self.skipped,
        }


@dataclass(slots=True)
class _State:
    """A schedule's stored record (the body of its row)."""

    id: str
    workflow: str
    input: bytes
    input_hash: str
    cron: str | None
    every: float | None
    timezone: str
    jitter: float
    overlap: str
    catchup_limit: int
    paused: bool
    anchor: float  # ``every`` counts from here
    next_fire: float | None
    last_fire: float | None = None
    last_workflow_id: str | None = None
    buffered: float | None = None
    fires: int = 0
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> bytes:
        data = {name: getattr(self, name) for name in self.__slots__ if name not in ("input", "extra")}
        data["input"] = base64.b64encode(self.input).decode()
        return orjson.dumps(data)

    @classmethod
    def load(cls, body: bytes) -> _State:
        data = orjson.loads(body)
        data["input"] = base64.b64decode(data["input"])
        return cls(**data)

    def spec(self) -> dict[str, Any]:
        """The fields of the :class:`Schedule` it was made from (``start_at``: where ``every`` counts from)."""
        return {
            "cron": self.cron, "every": None if self.every is None else timedelta(seconds=self.every),
            "timezone": self.timezone, "jitter": timedelta(seconds=self.jitter) if self.jitter else None,
            "overlap": self.overlap, "catchup_limit": self.catchup_limit,
            "start_at": datetime.fromtimestamp(self.anchor, UTC) if self.every is not None else None,
            "paused": self.paused,
        }

    def after(self, at: float) -> float:
        """The first fire time strictly after ``at``."""
        if self.every is not None:
            k = math.floor((at - self.anchor) / self.every) + 1
            fire = self.anchor + max(k, 0) * self.every
            return fire if fire > at else fire + self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(at, ZoneInfo(self.timezone))
        return next(iter(CronSim(self.cron, start))).timestamp()

    def times(self, at: float) -> Iterator[float]:
        """Fire times from ``next_fire`` on (``at``: where to start if there is none)."""
        fire = self.next_fire if self.next_fire is not None else self.after(at)
        while True:
            yield fire
            fire = self.after(fire)

    def offset(self, fire: float) -> float:
        """The jitter of the fire at ``fire``: the same in every process."""
        if not self.jitter:
            return 0.0
        digest = hashlib.sha256(f"{self.id}@{fire!r}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 * self.jitter

    def row(self) -> ScheduleRow:
        # A buffered fire is not looked at by the fire loops: the close of the
        # run it waits for starts it (see :func:`start_buffered_in`).
        due: float | None = None
        if not self.paused and self.next_fire is not None:
            due = self.next_fire + self.offset(self.next_fire)
        return ScheduleRow(self.id, due, self.dump())

    def describe(self, count: int, now: float) -> ScheduleDescription:
        zone = ZoneInfo(self.timezone)

        def when(at: float | None) -> datetime | None:
            return None if at is None else datetime.fromtimestamp(at, zone)

        fires: list[datetime] = []
        if count > 0:
            for at in self.times(now):
                fires.append(datetime.fromtimestamp(at, zone))
                if len(fires) >= count:
                    break
        return ScheduleDescription(
            id=self.id, workflow=self.workflow, cron=self.cron,
            every=None if self.every is None else timedelta(seconds=self.every), timezone=self.timezone,
            jitter=timedelta(seconds=self.jitter) if self.jitter else None, overlap=self.overlap,
            catchup_limit=self.catchup_limit, paused=self.paused, next_fires=fires, last_fire=when(self.last_fire),
            last_workflow_id=self.last_workflow_id, buffered=when(self.buffered), fires=self.fires,
            skipped=self.skipped,
        )


def fire_workflow_id(schedule_id: str, fire: float) -> str:
    """The workflow id of a schedule's run for the fire at ``fire``: one run per schedule and fire time."""
    stamp = datetime.fromtimestamp(fire, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{schedule_id}@{stamp}"


_FIRE_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z(-manual)?")


def fired_schedule(workflow_id: str) -> str | None:
    """The schedule id in a workflow id of the form of :func:`fire_workflow_id` (None: not of that form)."""
    schedule_id, at, stamp = workflow_id.partition("@")
    return schedule_id if at and schedule_id and _FIRE_STAMP.fullmatch(stamp) else None


def wakes_others(has_relatives: bool, workflow_id: str) -> bool:
    """Whether a run's close gives other runs work: its parent or children, or (a schedule's run) a buffered fire."""
    return has_relatives or fired_schedule(workflow_id) is not None


def start_buffered_in(tx: Tx, runs: Runs, workflow_id: str) -> bool:
    """A run closed: if it is the last run of a schedule that buffered a fire, start that fire now.

    Called in the closing transaction (``Runs``), so the buffered fire starts
    with the close, whatever the poll interval of the fire loops. On
    PostgreSQL the schedule's row is taken only if no other transaction holds
    it (``skip_locked``): closes lock the run before the schedule, fires the
    schedule before the run. A transaction that holds it reads the run after
    this one commits (every change of a schedule looks at its last run) and
    starts the fire then.
    """
    schedule_id = fired_schedule(workflow_id)
    if schedule_id is None:
        return False
    row = tx.schedule(schedule_id, skip_locked=True)
    if row is None:
        return False
    state = _State.load(row.body)
    if state.buffered is None or state.last_workflow_id != workflow_id:
        return False
    started = Schedules.start_buffered(tx, runs, state)
    tx.put_schedule(state.row())
    return started


def _failpoint(point: str) -> None:
    """Crash tests: SIGKILL this process at ``point`` of a fire if ``$RETOLD_SCHEDULE_FAILPOINT`` names it."""
    if os.environ.get(FAILPOINT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


class Schedules:
    """Create, change, read and fire schedules (each change one store transaction)."""

    def __init__(self, store: Store, runs: Runs) -> None:
        self.store, self.runs = store, runs

    # -- writes from callers ------------------------------------------------------------

    async def create(self, spec: Schedule, workflow: str, payload: bytes, digest: str) -> ScheduleDescription:
        """Store a new schedule (ConfigurationError if its id is taken)."""
        def create(tx: Tx) -> ScheduleDescription:
            if tx.schedule(spec.id) is not None:
                raise ConfigurationError(f"a schedule with id {spec.id!r} exists already: delete it first")
            now = tx.now()
            anchor = spec.start_at.timestamp() if spec.start_at is not None else now
            state = _State(
                id=spec.id, workflow=workflow, input=payload, input_hash=digest, cron=spec.cron,
                every=None if spec.every is None else spec.every.total_seconds(), timezone=spec.timezone,
                jitter=spec.jitter.total_seconds() if spec.jitter else 0.0, overlap=spec.overlap,
                catchup_limit=spec.catchup_limit, paused=spec.paused, anchor=anchor, next_fire=None,
            )
            state.next_fire = state.after(now)
            tx.put_schedule(state.row())
            return state.describe(1, now)
        return await self.store.transact(create, outside=True)

    def _change(self, schedule_id: str, change: Any) -> Any:
        def body(tx: Tx) -> Any:
            row = tx.schedule(schedule_id)
            if row is None:
                raise ScheduleNotFoundError(schedule_id)
            state = _State.load(row.body)
            # A close that found this row locked left its buffered fire to
            # whoever held it: every change looks (see start_buffered_in),
            # before the change and (a resume) after it.
            self.start_buffered(tx, self.runs, state)
            result = change(tx, state)
            self.start_buffered(tx, self.runs, state)
            tx.put_schedule(state.row())
            return result
        return body

    async def pause(self, schedule_id: str, paused: bool = True) -> None:
        """Pause (or resume) a schedule. Resuming does not start the fires missed while paused
        (beyond ``catchup_limit``: they count as missed fires, as after downtime)."""
        def change(tx: Tx, state: _State) -> None:
            state.paused = paused
        await self.store.transact(self._change(schedule_id, change), outside=True)

    async def trigger(self, schedule_id: str) -> str | None:
        """Fire now, under the overlap policy; return the started run's workflow id (None: skipped or buffered)."""
        def change(tx: Tx, state: _State) -> str | None:
            return self._fire(tx, state, tx.now(), manual=True)
        result: str | None = await self.store.transact(self._change(schedule_id, change), outside=True)
        return result

    async def update(
        self, schedule_id: str, changes: dict[str, Any], workflow: tuple[str, bytes, str] | None = None,
    ) -> ScheduleDescription:
        """Change a schedule in place: the fields in ``changes`` (names of :class:`Schedule`'s), and the
        workflow and its encoded arguments (``(name, payload, digest)``); its id, counters and last run stay.

        The result is checked as a new :class:`Schedule` would be (ConfigurationError, nothing written).
        A change of ``cron``, ``every``, ``timezone`` or ``start_at`` counts fire times again from now
        (fire times missed while paused are dropped); ``paused`` is as :meth:`pause`.
        """
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise ConfigurationError(f"a schedule has no field {unknown[0]!r} to change "
                                     f"(fields: {', '.join(_FIELDS)})")

        def change(tx: Tx, state: _State) -> ScheduleDescription:
            now = tx.now()
            merged = state.spec() | changes
            if "cron" in changes and changes["cron"] is not None and "every" not in changes:
                merged["every"] = None  # a cron replaces an interval, and the other way round
            if "every" in changes and changes["every"] is not None and "cron" not in changes:
                merged["cron"] = None
            spec = Schedule(state.id, **merged)  # checked as a new one would be
            timing = any(merged[name] != value for name, value in state.spec().items()
                         if name in ("cron", "every", "timezone", "start_at"))
            state.cron = spec.cron
            state.every = None if spec.every is None else spec.every.total_seconds()
            state.timezone = spec.timezone
            state.jitter = spec.jitter.total_seconds() if spec.jitter else 0.0
            state.overlap, state.catchup_limit, state.paused = spec.overlap, spec.catchup_limit, spec.paused
            if timing:
                # An interval keeps counting from where it did (its start_at), unless given another
                # one; an interval that replaces a cron counts from now.
                state.anchor = spec.start_at.timestamp() if spec.start_at is not None else now
                state.next_fire = state.after(now)
            if workflow is not None:
                state.workflow, state.input, state.input_hash = workflow
            return state.describe(5, now)

        result: ScheduleDescription = await self.store.transact(self._change(schedule_id, change), outside=True)
        return result

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule (its runs go on)."""
        def delete(tx: Tx) -> None:
            if not tx.delete_schedule(schedule_id):
                raise ScheduleNotFoundError(schedule_id)
        await self.store.transact(delete, outside=True)

    # -- reads ----------------------------------------------------------------------------

    async def describe(self, schedule_id: str, next_fires: int = 5) -> ScheduleDescription:
        """A schedule as stored, with its next ``next_fires`` fire times: a read, it locks and writes nothing.

        (It has no buffered fire to start: that starts in the close of the run
        it waits for, which a read never holds up; see :func:`start_buffered_in`.)
        """
        row = await self.store.get_schedule(schedule_id)
        if row is None:
            raise ScheduleNotFoundError(schedule_id)
        return _State.load(row.body).describe(next_fires, self.store.now())

    async def list(self, next_fires: int = 1) -> list[ScheduleDescription]:
        """Every schedule, by id, each with its next ``next_fires`` fire times: a read."""
        rows = await self.store.list_schedules()
        now = self.store.now()
        return [_State.load(row.body).describe(next_fires, now) for row in rows]

    # -- the fire loop ---------------------------------------------------------------------

    async def fire_due(self, limit: int) -> tuple[int, float | None]:
        """Fire up to ``limit`` due schedules, one transaction each; return (runs started, next due time).

        What is due is learnt by a read (:meth:`Store.schedules_due`): a poll
        that finds nothing due writes nothing. Each due schedule is then fired
        in a transaction of its own, which reads its row again (locked) and
        fires only if it is still due, so engines racing for it fire it once.
        """
        ids, next_due = await self.store.schedules_due(limit)
        if not ids:
            return 0, next_due
        started = 0
        for schedule_id in ids:
            started += await self.store.transact(partial(self.fire_in, schedule_id=schedule_id))
        _, next_due = await self.store.schedules_due(0)
        return started, next_due

    def fire_in(self, tx: Tx, *, schedule_id: str) -> int:
        """Fire schedule ``schedule_id`` if it is due (another engine may have fired it since it was listed)."""
        row = tx.schedule(schedule_id)
        now = tx.now()
        if row is None or row.due_at is None or row.due_at > now:
            return 0
        state = _State.load(row.body)
        started = int(self.start_buffered(tx, self.runs, state))
        due: collections.deque[float] = collections.deque(maxlen=state.catchup_limit)
        missed = 0
        for n, fire in enumerate(state.times(now)):
            if fire > now or fire + state.offset(fire) > now or n >= _MAX_SCAN:
                state.next_fire = fire if n < _MAX_SCAN else state.after(now)
                break
            if len(due) == due.maxlen:
                missed += 1
            due.append(fire)
        state.skipped += missed
        for fire in due:
            if self._fire(tx, state, fire) is not None:
                started += 1
        _failpoint("before_commit")
        tx.put_schedule(state.row())
        return started

    @staticmethod
    def start_buffered(tx: Tx, runs: Runs, state: _State) -> bool:
        """Start the buffered fire if the run it waits for has closed (and the schedule is not paused:
        it then waits for the resume); whether it started a run."""
        if state.buffered is None or state.paused or Schedules._open(tx, state):
            return False
        fire, state.buffered = state.buffered, None
        return bool(Schedules._start(tx, runs, state, fire))

    @staticmethod
    def _open(tx: Tx, state: _State) -> bool:
        if state.last_workflow_id is None:
            return False
        run = tx.run(state.last_workflow_id)
        return run is not None and run.open

    def _fire(self, tx: Tx, state: _State, fire: float, *, manual: bool = False) -> str | None:
        """One fire under the overlap policy; the started run's workflow id, or None."""
        if self._open(tx, state):
            if state.overlap == "skip":
                state.skipped += 1
                return None
            if state.overlap == "buffer_one":
                if state.buffered is not None:
                    state.skipped += 1  # replaced by this later fire
                state.buffered = fire
                return None
            if state.overlap == "cancel_previous":
                assert state.last_workflow_id is not None
                self.runs.input_in(tx, state.last_workflow_id,
                                   ev.CancelRequested(seq=0, at=0.0, reason=f"schedule {state.id!r} fired again"))
        self._start(tx, self.runs, state, fire, manual=manual)
        return state.last_workflow_id

    @staticmethod
    def _start(tx: Tx, runs: Runs, state: _State, fire: float, *, manual: bool = False) -> int:
        workflow_id = fire_workflow_id(state.id, fire) + ("-manual" if manual else "")
        request = StartRequest(workflow=state.workflow, workflow_id=workflow_id, input=state.input,
                               input_hash=state.input_hash)
        _, created = runs.start_in(tx, request)
        state.last_fire, state.last_workflow_id = fire, workflow_id
        state.fires += created
        _failpoint("after_start")
        return int(created)

"""Claims activity tasks of a queue and runs them with retries and timeouts."""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from .._logging import bind_run
from ..authoring._activity import ActivityInfo, _current
from ..authoring._options import ActivityOptions, seconds
from ..errors import ApplicationError, NotRegisteredError, StoreError
from ..history.failure import Failure
from ..runtime._instance import failure_from_exception
from ..stores._protocol import ActivityOutcome, ActivityTask
from ._machine import attempt_failed, workers_died

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["ActivityWorker"]

log = logging.getLogger("retold.activity")
_PARSED_KEPT = 256  # distinct activity options kept parsed


class _HeartbeatTimeout(Exception):  # noqa: N818 - internal signal, becomes a failure
    pass


def _cancelled(message: str) -> ActivityOutcome:
    """The outcome of an attempt whose run cancelled it and waits for its end (never retried)."""
    return ActivityOutcome("failed", failure=Failure(type="CancelledError", message=message, non_retryable=True))


@dataclass
class _ThreadEnd:
    """How and when a ``def`` activity's thread ended (it may end after the engine stopped waiting)."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    raised: bool = True


class Handoff:
    """An attempt's task, offered to the next attempt its outcome's commit leases to the same worker."""

    __slots__ = ("next", "worker")

    def __init__(self, worker: ActivityWorker) -> None:
        self.worker = worker
        self.next: tuple[ActivityTask, object] | None = None  # the task and its reserved slot


_ATTEMPT = "retold activity attempt"  # the tasks' name (given: anyio would work one out per task)


class ActivityWorker:
    """Runs the activity tasks of one task queue, at most ``concurrency`` at once."""

    def __init__(self, engine: Engine, queue: str, concurrency: int) -> None:
        self._engine = engine
        self.queue = queue
        self._limit = anyio.CapacityLimiter(concurrency)
        self._rng = random.Random()
        # The attempts running, by task id: their cancel scope and their info.
        self.running: dict[int, tuple[anyio.CancelScope, ActivityInfo]] = {}
        # Ids of the tasks this worker holds, from the claim (or the commit
        # that leased them to us) until their outcome is recorded: claims
        # never take them again, even if a stalled loop let their leases lapse.
        self.held: set[int] = set()
        # Attempts stopped because their run waits for them to end: their
        # outcome is recorded, as a cancellation (cancellation_type
        # "wait_cancellation_completed").
        self.cancelling: set[int] = set()
        # Suspect attempts (their previous holder died) waiting for their turn
        # to run alone in this process: not running yet.
        self.waiting: set[int] = set()
        # Any hosted activity may be sent to this queue (task_queue= per call).
        self._names = sorted(engine.activities)
        self._parsed: dict[bytes, ActivityOptions] = {}  # options by their JSON (see _options)

    def stop(self, task_id: int) -> bool:
        """Stop a running attempt (its task was withdrawn or its lease lost); whether one ran.

        An ``async def`` activity is cancelled at its await; a thread's
        activity sees ``activity_info().cancelled`` and its next ``heartbeat()`` raises.
        """
        entry = self.running.get(task_id)
        if entry is None:
            return False
        scope, info = entry
        info.cancelled = True
        scope.cancel()
        return True

    def stop_scheduled(self, run_id: str, seq: int, *, report: bool = False) -> None:
        """Stop the attempt running here, if any, of the activity event ``seq`` of ``run_id`` scheduled
        (the run asked to cancel it: its task is withdrawn in the same commit; or, with ``report``,
        kept until this attempt reports its end: see :meth:`cancel`)."""
        for task_id, (_, info) in list(self.running.items()):
            if info.run_id == run_id and info.seq == seq:
                if report:
                    self.cancel(task_id)
                else:
                    self.stop(task_id)

    def cancel(self, task_id: int) -> None:
        """Stop a running attempt whose run waits for it to end; its outcome is recorded as a cancellation."""
        if task_id in self.running:
            self.cancelling.add(task_id)
            self.stop(task_id)

    @property
    def busy(self) -> bool:
        """Whether an attempt is running (or recording its outcome)."""
        return self._limit.borrowed_tokens > 0

    async def run(self) -> None:
        """Claim and run activity tasks until cancelled."""
        engine = self._engine
        async with anyio.create_task_group() as tg:
            while True:
                # While a suspect workflow task is processed here, no attempt is
                # taken on: one that kills this process would count against it.
                workflows = engine.workflow_worker
                tasks: list[ActivityTask] = []
                want = 0 if engine.draining else min(int(self._limit.available_tokens), 256)
                if want > 0 and workflows is not None:
                    async with workflows.claim_lock:
                        if not (workflows.suspects or workflows.checking):
                            tasks = await engine.store.claim_activity_tasks(
                                engine.worker_id, self.queue, self._names, want, engine.lease, running=self.held
                            )
                            self.held.update(task.id for task in tasks)
                elif want > 0:
                    tasks = await engine.store.claim_activity_tasks(
                        engine.worker_id, self.queue, self._names, want, engine.lease, running=self.held
                    )
                self.held.update(task.id for task in tasks)
                for task in tasks:
                    slot = object()  # the borrower of a slot
                    await self._limit.acquire_on_behalf_of(slot)
                    tg.start_soon(self._run_and_release, task, slot, name=_ATTEMPT)
                if want == 0 or len(tasks) < want:
                    await engine.wake_activities.wait(engine.poll_interval)

    # -- the same-process fast path ---------------------------------------------------

    def reserve(self, wanted: int) -> list[object]:
        """Hold up to ``wanted`` free slots for tasks a commit is about to lease to us."""
        if self._engine.draining:
            return []
        tokens: list[object] = []
        while len(tokens) < wanted and self._limit.available_tokens >= 1:
            token = object()
            self._limit.acquire_on_behalf_of_nowait(token)
            tokens.append(token)
        return tokens

    def unreserve(self, tokens: list[object]) -> None:
        """Give back reserved slots that were not used."""
        while tokens:
            self._limit.release_on_behalf_of(tokens.pop())

    def start_taken(self, task: ActivityTask, tokens: list[object], handoff: Handoff | None = None) -> None:
        """Run a task the commit leased to us, in a slot reserved for it.

        ``handoff``: that of an attempt of this worker whose outcome this
        commit recorded; the task then runs in that attempt's task, once it
        has released its own slot, rather than in a new task (each costs
        about as much as the rest of a no-op attempt on the event loop).
        """
        self.held.add(task.id)
        if handoff is not None and handoff.worker is self and handoff.next is None:
            handoff.next = (task, tokens.pop())
            return
        self._engine.spawn(self._run_and_release, task, tokens.pop(), name=_ATTEMPT)

    async def _run_and_release(self, task: ActivityTask, slot: object) -> None:
        """Run an attempt, then each attempt handed off to this task (see :meth:`start_taken`)."""
        while True:
            handoff = Handoff(self)
            try:
                await self._run_one(task, slot, handoff)
            except BaseException:
                if handoff.next is not None:  # (cancelled after the commit): in a task of its own, as before
                    self._spawn_or_drop(*handoff.next)
                raise
            if handoff.next is None:
                return
            task, slot = handoff.next  # the run's next activity, leased to us by the commit just made

    async def _run_one(self, task: ActivityTask, slot: object, handoff: Handoff) -> None:
        """Run one attempt (alone, if it is suspect) and record its outcome; then give its slot back."""
        try:
            if task.suspect and workers_died(task, self._engine.max_workflow_task_attempts) is None:
                await self._alone(task)
            else:
                await self._run_and_record(task, handoff)
        finally:
            self.held.discard(task.id)
            self._limit.release_on_behalf_of(slot)
            if self._limit.available_tokens == 1:
                self._engine.wake_activities.set()  # the loop may be waiting for a slot

    def _spawn_or_drop(self, task: ActivityTask, slot: object) -> None:
        """Start a handed-off attempt in a task of its own; if the engine has closed, give up its slot
        (its lease ends with the engine's, or runs out)."""
        try:
            self._engine.spawn(self._run_and_release, task, slot, name=_ATTEMPT)
        except Exception:  # noqa: BLE001 - the engine's task group is gone: the caller's exception goes on
            self.held.discard(task.id)
            self._limit.release_on_behalf_of(slot)

    async def _run_and_record(self, task: ActivityTask, handoff: Handoff | None = None) -> None:
        try:
            outcome = await self._observed_attempt(task)
        except Exception as exc:  # a broken task row must not stop the engine
            log.exception("activity task %d (%s) could not be run", task.id, task.activity)
            outcome = ActivityOutcome("failed", failure=failure_from_exception(exc, non_retryable=True))
        if outcome is not None:
            await self._record(task, outcome, handoff)

    async def _alone(self, task: ActivityTask) -> None:
        """Run a suspect attempt (its previous holder died) alone in this process, under the stepping mark.

        One at a time; nothing else is claimed meanwhile, and it starts once
        no other attempt and no workflow step is in flight here (or after a
        while at most). If it kills this process, the death is counted
        against this task alone (see :func:`._machine.workers_died`).
        """
        engine = self._engine
        workflows = engine.workflow_worker
        if workflows is None:
            await self._run_and_record(task)
            return
        key = f"activity {task.id}"
        self.waiting.add(task.id)
        try:
            async with workflows.suspect_lock:
                workflows.suspects.add(key)  # no claims, no fast path until its outcome is recorded
                try:
                    with anyio.move_on_after(max(2 * engine.lease, 10.0)):
                        while workflows.processing - workflows.waiting or any(
                            worker.held - worker.waiting for worker in engine.activity_workers
                        ):
                            await anyio.sleep(0.01)
                    self.waiting.discard(task.id)  # running now
                    if not await engine.runs.mark_activity(task, engine.worker_id):
                        log.warning("activity %s (run %s, attempt %d): the lease was lost before it ran",
                                    task.activity, task.run_id, task.attempt)
                        return
                    await self._run_and_record(task)
                finally:
                    workflows.suspects.discard(key)
        finally:
            self.waiting.discard(task.id)

    async def _record(self, task: ActivityTask, outcome: ActivityOutcome, handoff: Handoff | None = None) -> None:
        engine = self._engine
        # The fast path: if the run is cached here, its next step commits
        # together with this outcome (no workflow task, no claim, no load).
        try:
            recorded, stepped = await engine.ahead.finish_activity(task, outcome, handoff)
        except StoreError as exc:
            # Not recorded: the lease lapses and the activity runs again
            # (at least once), under the same idempotency key.
            log.warning("activity %s (run %s): outcome not recorded: %s", task.activity, task.run_id, exc)
            return
        if not recorded:
            log.warning("activity %s (run %s, attempt %d): outcome refused, the lease was lost",
                        task.activity, task.run_id, task.attempt)
            engine.telemetry.lease_lost("activity")
            return
        if not stepped:
            engine.wake_workflows.set()  # the run's workflow task has the outcome to process
            engine.feeds.notify(task.run_id)
        if outcome.retry_delay is not None:
            engine.wake_timers.set()

    async def _observed_attempt(self, task: ActivityTask) -> ActivityOutcome | None:
        """Run an attempt with its log context, span and metrics."""
        engine = self._engine
        bind_run(task.options.get("workflow", ""), task.workflow_id, task.run_id,
                 activity=task.activity, attempt=task.attempt)
        lag = engine.store.now() - task.scheduled_at if task.attempt == 1 else None
        with engine.telemetry.activity(task, lag) as attempt:
            attempt.outcome = await self._attempt(task)
            return attempt.outcome

    async def _attempt(self, task: ActivityTask) -> ActivityOutcome | None:
        engine = self._engine
        options = self._options(task.options)
        definition = engine.activities.get(task.activity)
        if definition is None:
            error: Exception = NotRegisteredError("activity", task.activity)
            return self._failed(task, options, error)
        died = workers_died(task, engine.max_workflow_task_attempts)
        if died is not None:
            log.error("activity %s (run %s, event %d): %s", task.activity, task.run_id, task.seq,
                      died.failure.message if died.failure else None)
            return died
        if task.cancel_requested:  # the run waits for this activity's end, which is now
            return _cancelled("the workflow cancelled it before this attempt started")
        info = ActivityInfo(
            activity=task.activity, workflow_id=task.workflow_id, run_id=task.run_id,
            seq=task.seq, attempt=task.attempt,
            idempotency_key=f"{task.workflow_id}/{task.run_id}/{task.seq}",
        )
        try:
            decoded, kwargs = definition.types.decode_args("activity", definition.name, engine.codec, task.input)
            args = list(decoded)
        except Exception as exc:  # noqa: BLE001 - bad input fails the attempt for good
            return self._failed(task, options, exc, non_retryable=True)
        start_to_close = seconds(options.start_to_close)
        heartbeat = seconds(options.heartbeat_timeout)
        limit, limit_kind = start_to_close, "start_to_close"
        if options.schedule_to_close is not None:
            left = task.scheduled_at + (seconds(options.schedule_to_close) or 0.0) - engine.store.now()
            if limit is None or left < limit:
                limit, limit_kind = max(left, 0.0), "schedule_to_close"
        # One scope: its deadline is the attempt's time limit, and stop() cancels
        # it (setting ``info.cancelled`` first), which tells the two apart.
        lease_scope = anyio.CancelScope(
            deadline=anyio.current_time() + limit if limit is not None else math.inf
        )
        self.running[task.id] = (lease_scope, info)
        ended = None if definition.is_async else _ThreadEnd()  # (a thread's end; none for a coroutine)
        token = _current.set(info)
        try:
            with lease_scope:
                result = await self._call(definition, args, kwargs, info, heartbeat, ended)
            if lease_scope.cancelled_caught and not info.cancelled:  # the time limit passed
                if limit_kind == "schedule_to_close":
                    return ActivityOutcome("timed_out", timeout_kind="schedule_to_close")
                error = ApplicationError(
                    f"activity attempt exceeded start_to_close ({start_to_close} s)", type="TimeoutError"
                )
                return self._failed(task, options, error, timeout_kind="start_to_close")
            if lease_scope.cancelled_caught and task.id in self.cancelling:
                if ended is not None:
                    # The run waits for the attempt's end: the thread's, not this wait for it
                    # (stopped at once); it ends by raising (told by heartbeat()) or returning.
                    await anyio.to_thread.run_sync(ended.done.wait, abandon_on_cancel=True)
                    if not ended.raised:
                        return ActivityOutcome("completed", result=engine.codec.encode(ended.value))
                return _cancelled("the workflow cancelled it while it ran")
            if lease_scope.cancelled_caught:
                return None  # lease lost or engine stopping: someone else will run it
            return ActivityOutcome("completed", result=engine.codec.encode(result))
        except _HeartbeatTimeout:
            error = ApplicationError(
                f"activity sent no heartbeat for {heartbeat} s", type="HeartbeatTimeout"
            )
            return self._failed(task, options, error, timeout_kind="heartbeat")
        except Exception as exc:  # noqa: BLE001 - user code: every error is a failed attempt
            return self._failed(task, options, exc)
        finally:
            _current.reset(token)
            self.cancelling.discard(task.id)
            entry = self.running.get(task.id)
            if entry is not None and entry[0] is lease_scope:
                del self.running[task.id]

    async def _call(
        self, definition: Any, args: list[Any], kwargs: dict[str, Any], info: ActivityInfo,
        heartbeat: float | None, ended: _ThreadEnd | None,
    ) -> Any:
        if heartbeat is None:
            return await self._invoke(definition, args, kwargs, ended)
        result: list[Any] = []
        errors: list[Exception] = []
        async with anyio.create_task_group() as tg:

            async def body() -> None:
                try:
                    result.append(await self._invoke(definition, args, kwargs, ended))
                except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped
                    errors.append(exc)
                tg.cancel_scope.cancel()

            async def watchdog() -> None:
                while time.monotonic() - info.last_heartbeat <= heartbeat:
                    await anyio.sleep(min(heartbeat / 4, 1.0))
                tg.cancel_scope.cancel()

            tg.start_soon(body)
            tg.start_soon(watchdog)
        if errors:
            raise errors[0]
        if not result:
            raise _HeartbeatTimeout  # only the watchdog ends the group without a result
        return result[0]

    async def _invoke(
        self, definition: Any, args: list[Any], kwargs: dict[str, Any], ended: _ThreadEnd | None,
    ) -> Any:
        if ended is None:
            return await definition.fn(*args, **kwargs)
        context = contextvars.copy_context()
        call = functools.partial(definition.fn, *args, **kwargs) if kwargs else definition.fn

        def run() -> Any:
            try:
                ended.value = context.run(call, *([] if kwargs else args))
                ended.raised = False
                return ended.value
            finally:
                ended.done.set()  # (not through the event loop: it may be gone, the thread abandoned)

        # Not waited for once stopped (a thread cannot be interrupted); ``ended`` tells when it ends.
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)

    def _options(self, data: dict[str, Any]) -> ActivityOptions:
        """An attempt's options, parsed once per distinct set (most attempts share a handful)."""
        key = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        options = self._parsed.get(key)
        if options is None:
            options = ActivityOptions.from_json(data)
            if len(self._parsed) >= _PARSED_KEPT:
                self._parsed.clear()
            self._parsed[key] = options
        return options

    def _failed(
        self, task: ActivityTask, options: ActivityOptions, exc: BaseException,
        *, non_retryable: bool = False, timeout_kind: str = "",
    ) -> ActivityOutcome:
        failure = failure_from_exception(exc, non_retryable=non_retryable)
        outcome = attempt_failed(options.retry, task.attempt, failure, self._rng, timeout_kind=timeout_kind)
        retry = outcome.retry_delay
        if outcome.kind == "timed_out":
            return outcome
        error = failure.message
        if not error.startswith(failure.type):
            error = f"{failure.type}: {error}"
        log.warning(
            "activity %s (workflow %s, run %s, event %d) attempt %d failed: %s%s", task.activity,
            task.workflow_id, task.run_id, task.seq, task.attempt, error,
            f"; retrying in {retry:.2f} s" if retry is not None else "",
        )
        return outcome



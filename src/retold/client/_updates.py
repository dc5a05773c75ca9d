"""Updates from the caller's side: validate on a replay, record ``UpdateAccepted``, wait for the reply.

The validator is workflow code that only reads, as a query handler: it runs
here, on a replay of the run's committed history (as queries do), so a
rejected update writes nothing anywhere. The accepted event is recorded only
if the run is still in the state the validator saw
(:func:`retold.engine._machine.accept_update`); otherwise the update is
validated again. The reply is the run's ``UpdateCompleted`` event for the
update id, read from the run's event feed.
"""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import (
    ConflictError,
    RetoldError,
    RunFinishedError,
    UpdateFailedError,
    UpdateRejectedError,
    UpdateTimeoutError,
    exception_from_failure,
)
from ..history import events as ev
from ..history.ids import check_id
from ..runtime import replay

if TYPE_CHECKING:
    from ..authoring import Workflow
    from ._operations import RunOperations

__all__ = ["send_update", "update_reply"]

_PATIENCE = 30.0  # seconds an update is validated again while the run keeps moving
_LOOK_AT_MOST = 0.2  # seconds between looks for a reply made in another process


def _accepted(events: list[ev.Event], update_id: str) -> ev.UpdateAccepted | None:
    for event in events:
        if isinstance(event, ev.UpdateAccepted) and event.update_id == update_id:
            return event
    return None


async def send_update(
    ops: RunOperations, ident: str, name: str, args: tuple[Any, ...], update_id: str | None,
) -> tuple[str, str, Any]:
    """Validate and record an update (once per update id); return (run id, update id, the handler's result type).

    Raises:
        UpdateRejectedError: no such handler, or its validator raised (nothing written).
        RunFinishedError: the run is closed and never accepted this update id.
    """
    if not name:
        raise RetoldError("an update name must not be empty")
    update_id = update_id or str(uuid.uuid4())
    check_id("update id", update_id)
    payload = ops.codec.encode(list(args))
    delay, deadline = 0.005, time.monotonic() + _PATIENCE
    while True:
        record = await ops.store.get_run(ident)
        if record.status != "running":
            _, events = await ops.store.load(record.run_id, 0)
            if _accepted(events, update_id) is not None:
                return record.run_id, update_id, Any  # sent before the run closed: its reply (or why none)
            raise RunFinishedError(record.run_id, record.status)
        definition = ops.workflows.get(record.workflow)
        if definition is None:
            raise ops._unknown(record.workflow, "update validators replay the workflow's code here")
        judged = await _validate_on_cached(ops, record.run_id, name, args, update_id)
        if judged is None:
            judged = await _validate_on_replay(ops, definition, record.run_id, name, args, update_id)
        validated_seq, result_type = judged
        if validated_seq < 0:
            return record.run_id, update_id, result_type  # sent before: the same execution, the same reply
        event = ev.UpdateAccepted(seq=0, at=0.0, update_id=update_id, name=name, input=payload)
        try:
            await ops._runs().accept_update(record.run_id, event, validated_seq)
        except ConflictError:
            if time.monotonic() >= deadline:
                raise
            await anyio.sleep(delay)  # the run moved (or a step is in flight): validate on its new state
            delay = min(delay * 2, 0.25)
            continue
        ops.feeds.notify(record.run_id)
        if ops._host is not None:
            ops._host.input_recorded(record.run_id)
        return record.run_id, update_id, result_type


async def _validate_on_cached(
    ops: RunOperations, run_id: str, name: str, args: tuple[Any, ...], update_id: str,
) -> tuple[int, Any] | None:
    """Validate on the hosting engine's cached copy of the run, if it holds one that is up to date.

    Returns (the event number validated at, or -1 if the update id was accepted before; the result
    type), or None to replay instead.
    """
    host = ops._host
    cached = host.cached(run_id) if host is not None else None
    if host is None or cached is None:
        return None
    _, newer = await ops.store.load(run_id, cached.last_seq)
    # Still cached after the load: not taken meanwhile by a step (which may advance it past what is committed).
    if newer or host.cached(run_id) is not cached:
        return None
    if cached.update_accepted(update_id):
        return -1, cached.update_result_type(name)
    try:
        cached.validate_update(name, args)
        return cached.last_seq, cached.update_result_type(name)
    finally:
        if cached.query_refused:
            host.drop_cached(cached)  # refused halfway through a change: the next step replays


async def _validate_on_replay(
    ops: RunOperations, definition: Workflow[..., Any], run_id: str, name: str, args: tuple[Any, ...],
    update_id: str,
) -> tuple[int, Any]:
    """Validate on a replay of the run's committed history (see :func:`_validate_on_cached`)."""
    _, events = await ops.store.load(run_id, 0)
    replica, completion = await ops._steps.run(
        run_id, partial(replay, definition, run_id, ops.codec, events, replay_only=True))
    try:
        completion.unwrap()
        if replica.update_accepted(update_id):
            return -1, replica.update_result_type(name)  # sent before: its reply, typed as the first one's
        replica.validate_update(name, args)
        return (events[-1].seq if events else 0), replica.update_result_type(name)
    finally:
        replica.close()


async def update_reply(
    ops: RunOperations, run_id: str, update_id: str, result_type: Any, timeout: float | None, *,
    sent: bool = False, name: str | None = None,
) -> Any:
    """Wait for the handler of accepted update ``update_id`` to finish in run ``run_id``; return its result.

    Raises:
        UpdateFailedError: the handler raised (the cause), or the run closed first.
        UpdateTimeoutError: ``timeout`` passed first.
        UpdateRejectedError: the run never accepted an update with this id (``sent``: it has, it was
            just sent), or (``name``) not one of that name.
    """
    if not sent:
        accepted = _accepted((await ops.store.load(run_id, 0))[1], update_id)
        if accepted is None or (name is not None and accepted.name != name):
            called = "" if name is None else f" {name!r}"
            raise UpdateRejectedError(f"run {run_id} has no update{called} with id {update_id!r} (never accepted)")
    got: list[Any] = []
    failed: list[Exception] = []
    ops._update_waiters += 1  # a test environment skips time while callers wait (as for result())
    try:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_look_soon, ops, run_id)
                try:
                    got.append(await _read_reply(ops, run_id, update_id, result_type))
                except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
                    failed.append(exc)
                tg.cancel_scope.cancel()
    except TimeoutError:
        assert timeout is not None
        raise UpdateTimeoutError(run_id, update_id, timeout) from None
    finally:
        ops._update_waiters -= 1
    if failed:
        raise failed[0]
    return got[0]


async def _look_soon(ops: RunOperations, run_id: str) -> None:
    """Have the run's event feed look at the store soon, then less often (5 ms, doubling up to 0.2 s).

    A feed sees commits made through this process at once, others only every poll interval:
    a reply from a worker in another process is then seen within milliseconds for a quick
    handler, within 0.2 s for a slow one.
    """
    delay = 0.005
    while True:
        await anyio.sleep(delay)
        ops.feeds.notify(run_id)
        delay = min(delay * 2, _LOOK_AT_MOST)


async def _read_reply(ops: RunOperations, run_id: str, update_id: str, result_type: Any) -> Any:
    seen = False
    async with ops._watch(run_id, 0) as stream:
        async for event in stream:
            if isinstance(event, ev.UpdateAccepted) and event.update_id == update_id:
                seen = True
            elif isinstance(event, ev.UpdateCompleted) and event.update_id == update_id:
                if event.failure is not None:
                    raise UpdateFailedError(
                        f"update {update_id!r} of run {run_id} failed: {event.failure.message}"
                    ) from exception_from_failure(event.failure)
                return ops.codec.decode(event.result, result_type)
            elif isinstance(event, ev.TERMINAL_TYPES):
                if not seen:
                    break
                raise UpdateFailedError(
                    f"run {run_id} closed ({event.type}) before the handler of update {update_id!r} "
                    "finished: it has no reply")
    raise UpdateRejectedError(f"run {run_id} has no update with id {update_id!r} (never accepted)")

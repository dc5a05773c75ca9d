"""Updates inside a run: handlers, validators, and the handler's run as workflow code.

:class:`Updates` is mixed into :class:`~._instance.WorkflowInstance`. A caller
validates an update against a copy of the run (:meth:`Updates.validate_update`,
read-only, like a query); once ``UpdateAccepted`` is in the history, the run
delivers it (:meth:`Updates._accept_update`): the handler runs as a task on the
run's loop, so it may await activities and timers, and its outcome is the
command ``UpdateCompleted``. A replay runs the handler again from the accepted
event and matches its commands like any others.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApplicationError, PayloadError, QueryError, UpdateRejectedError, failure_from_exception
from ..history import events as ev
from . import _guard
from ._outcome import close_value, unguarded

if TYPE_CHECKING:
    from ..authoring import Workflow
    from ..history.codec import Codec
    from ._loop import WorkflowLoop

__all__ = ["Updates"]


class Updates:
    """Update handlers of one run (see the module's docstring); state lives in the instance."""

    workflow: Workflow[..., Any]
    run_id: str
    codec: Codec
    loop: WorkflowLoop
    querying: str | None
    _fatal: BaseException | None
    _update_handlers: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]]
    _update_ids: set[str]

    def _emit(self, cls: type[ev.Event], **fields: Any) -> int:
        raise NotImplementedError

    def _query_args(self, name: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotImplementedError

    def query_result_type(self, name: str) -> Any:
        raise NotImplementedError

    def set_update_handler(
        self, name: str, handler: Callable[..., Any] | None, validator: Callable[..., Any] | None,
    ) -> None:
        """Register (or, with None, remove) the handler of update ``name`` and its validator."""
        if handler is None:
            self._update_handlers.pop(name, None)
        else:
            self._update_handlers[name] = (handler, validator)

    def update_accepted(self, update_id: str) -> bool:
        """Whether the history fed so far accepted an update with this id."""
        return update_id in self._update_ids

    def update_result_type(self, name: str) -> Any:
        """The return annotation of update handler ``name`` (``Any`` if none)."""
        entry = self._update_handlers.get(name)
        return _result_hint(entry[0]) if entry is not None else Any

    def validate_update(self, name: str, args: tuple[Any, ...]) -> None:
        """Run update ``name``'s validator on the current state, writing nothing.

        Raises:
            UpdateRejectedError: no such handler, arguments of the wrong
                type, or the validator raised (the cause).
        """
        entry = self._update_handlers.get(name)
        if entry is None:
            known = ", ".join(sorted(self._update_handlers)) or "none"
            raise UpdateRejectedError(
                f"workflow {self.workflow.name!r} run {self.run_id!r} has no update handler {name!r} (known: {known})")
        handler, validator = entry
        try:
            args = self._query_args(name, handler, args)
        except QueryError as err:
            raise UpdateRejectedError(str(err).replace("query", "update", 1)) from err.__cause__
        if validator is None:
            return
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        self.querying = f"update validator {name}"  # read-only, as a query handler
        try:
            with _guard.guarded():
                result = validator(*args)
            if inspect.isawaitable(result):
                close_value(result)
                raise UpdateRejectedError(
                    f"update {name!r} validator returned an awaitable: validators are plain functions (use `def`)")
        except UpdateRejectedError:
            raise
        except BaseException as exc:
            what = str(exc) if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
            raise UpdateRejectedError(f"update {name!r} was rejected by its validator: {what}") from exc
        finally:
            self.querying = None
            asyncio.events._set_running_loop(previous)
            _guard.take_violation()

    def _accept_update(self, event: ev.UpdateAccepted) -> None:
        """Start the accepted update's handler as a task on the run's loop (a repeated id: nothing)."""
        if event.update_id in self._update_ids:
            return
        self._update_ids.add(event.update_id)
        self.loop.create_task(self._run_update(event), name=f"update {event.name}")

    async def _run_update(self, event: ev.UpdateAccepted) -> None:
        entry = self._update_handlers.get(event.name)
        try:
            if entry is None:
                raise UpdateRejectedError(f"workflow {self.workflow.name!r} has no update handler {event.name!r}")
            handler = entry[0]
            args = self._query_args(event.name, handler, tuple(self.codec.decode(event.input, list[Any])))
            result = handler(*args)
            if inspect.isawaitable(result):
                result = await result
            payload = self.codec.encode(result)
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the update's failure, not the run's
            if self._fatal is not None:
                return  # the task fails (nondeterminism, a sandbox breach): no outcome to record
            with unguarded():  # the traceback's source lines are read from files: retold's doing, not the code's
                failure = failure_from_exception(PayloadError(str(exc)) if isinstance(exc, QueryError) else exc)
            self._emit(ev.UpdateCompleted, accepted=event.seq, update_id=event.update_id, failure=failure)
            return
        if self._fatal is None:
            self._emit(ev.UpdateCompleted, accepted=event.seq, update_id=event.update_id, result=payload)


def _result_hint(handler: Callable[..., Any]) -> Any:
    import typing

    try:
        hint = typing.get_type_hints(handler).get("return", Any)
    except Exception:  # noqa: BLE001 - a forward reference it cannot resolve: untyped
        return Any
    return Any if hint is None else hint

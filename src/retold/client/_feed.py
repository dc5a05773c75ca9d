"""Live event feeds: one shared watcher per watched run, many subscribers.

A subscriber (``RunHandle.watch()``, the SSE endpoint) reads a run's events
from a :class:`_Feed` that holds them in memory. Each feed has one watcher
task that loads new events from the store when the engine or client reports
a commit to that run (:meth:`EventFeeds.notify`) and otherwise every poll interval, so
runs advanced by other processes show up too. A thousand subscribers of one
run cost one query per commit or poll, not a thousand.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, final

import anyio

from .._wake import Wakeup
from ..errors import RetoldError, StoreError
from ..history import events as ev
from ..history.failure import BlockedTask
from ._handle import WorkflowTaskFailure

if TYPE_CHECKING:
    from ..stores import Store

__all__ = ["EventFeeds", "EventStream"]

log = logging.getLogger("retold.engine")


class _Feed:
    """The events of one run read so far, and the watcher that extends them."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.events: list[ev.Event] = []
        self.closed = False  # the run's final event is in ``events``
        self.blocked: BlockedTask | None = None  # the run's workflow task's failure, as last read
        self.stopped = False  # the engine closed: no more events will come
        self.subscribers = 0
        self.poke = Wakeup()
        self.scope = anyio.CancelScope()
        self._changed = anyio.Event()

    def changed(self) -> anyio.Event:
        """An event set the next time ``events`` grows (or the feed stops)."""
        return self._changed

    def stop(self) -> None:
        self.stopped = True
        self.scope.cancel()
        self._changed.set()

    async def watch(self, store: Store, poll_interval: float) -> None:
        with self.scope:
            while not self.closed:
                blocked = self.blocked
                try:
                    record, new = await store.load(self.run_id, len(self.events))
                    blocked = record.task_failure
                except StoreError as exc:  # a hiccup: the next poll tries again
                    log.warning("event feed of run %s: %s", self.run_id, exc)
                    new = []
                if new:
                    self.events.extend(new)
                    self.closed = isinstance(new[-1], ev.TERMINAL_TYPES)
                if new or blocked != self.blocked:
                    self.blocked = None if self.closed else blocked
                    changed, self._changed = self._changed, anyio.Event()
                    changed.set()
                if not self.closed:
                    await self.poke.wait(poll_interval)


class EventFeeds:
    """A client's registry of feeds, keyed by run id."""

    def __init__(self, store: Store, poll_interval: float, spawn: Callable[..., Any], owner: str = "engine") -> None:
        self.owner = owner  # who opens and closes the feeds, for messages
        self._store = store
        self._poll_interval = poll_interval
        self._spawn = spawn
        self._feeds: dict[str, _Feed] = {}
        self._closed = False

    def notify(self, run_id: str | None) -> None:
        """Events were committed to ``run_id`` (None: to some runs, unknown which)."""
        if run_id is None:
            for feed in self._feeds.values():
                feed.poke.set()
        elif run_id in self._feeds:
            self._feeds[run_id].poke.set()

    def subscribe(self, run_id: str) -> _Feed:
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = _Feed(run_id)
            if self._closed:  # the client is shutting down: nothing will be read
                feed.stop()
            else:
                self._spawn(feed.watch, self._store, self._poll_interval)
        feed.subscribers += 1
        return feed

    def unsubscribe(self, feed: _Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0:
            feed.scope.cancel()
            if self._feeds.get(feed.run_id) is feed:
                del self._feeds[feed.run_id]

    def open(self) -> None:
        """The client is open: watchers may start."""
        self._closed = False

    def close(self) -> None:
        """The client is closing: end every watcher and wake every subscriber."""
        self._closed = True
        for feed in self._feeds.values():
            feed.stop()
        self._feeds.clear()

    def __len__(self) -> int:
        return len(self._feeds)


@final
class EventStream:
    """A run's events after a given one: those recorded, then live ones.

    Returned by :meth:`RunHandle.watch <retold.RunHandle.watch>`. Iterate it
    with ``async for``; it ends after the run's final event
    (``WorkflowCompleted``, ``WorkflowFailed``, ``WorkflowCancelled`` or
    ``WorkflowContinuedAsNew``). Waiting for the next event is cancel-safe: a
    ``move_on_after`` around it loses nothing. Use it as an async context
    manager (or call :meth:`aclose`) so that a stream left before the end
    stops its share of the watching at once.

    Attributes:
        run_id: the run whose events these are (known once the stream has
            started: after ``async with`` or the first event).

    The run's history says nothing of a run that is *blocked* (its workflow
    task keeps failing, after a bad deploy): :attr:`blocked` does, as of the
    last time the stream looked (when the engine reports a failed attempt,
    or every poll interval).
    """

    def __init__(self, feeds: EventFeeds, resolve: Callable[[], Awaitable[str]], after_seq: int) -> None:
        self.run_id: str | None = None
        self._feeds = feeds
        self._resolve = resolve
        self._feed: _Feed | None = None
        self._done = False
        self._next = after_seq  # events[_next] is the one to give next

    async def _open(self) -> _Feed | None:
        if self._feed is None and not self._done:
            run_id = await self._resolve()
            if self._feed is None and not self._done:
                self.run_id = run_id
                self._feed = self._feeds.subscribe(run_id)
        return self._feed

    @property
    def blocked(self) -> WorkflowTaskFailure | None:
        """Why the run is blocked, if it is (None before the stream has started)."""
        feed = self._feed
        if feed is None or feed.blocked is None:
            return None
        return WorkflowTaskFailure.from_record(feed.blocked)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ev.Event:
        """The next event, waiting for it to be committed if need be.

        Raises:
            RunNotFoundError: no such run (on the first call).
            RetoldError: the engine or client closed before the run ended.
        """
        while True:
            feed = await self._open()
            if feed is None:
                raise StopAsyncIteration
            if len(feed.events) > self._next:
                event = feed.events[self._next]
                self._next += 1
                return event
            if feed.closed:
                await self.aclose()
                raise StopAsyncIteration
            if feed.stopped:
                await self.aclose()
                raise RetoldError(f"the {self._feeds.owner} closed while watching run {self.run_id!r}")
            await feed.changed().wait()

    async def aclose(self) -> None:
        """Stop following the run (idempotent)."""
        self._done = True
        if self._feed is not None:
            self._feeds.unsubscribe(self._feed)
            self._feed = None

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

"""``GET /runs/{id}/events``: a run's history as Server-Sent Events, resumable.

Each event is one message: ``id:`` its ``seq``, ``event:`` its type,
``data:`` its JSON form (as in the history export). The stream sends the
events after ``Last-Event-ID`` (or ``?after=``), then live ones, and ends
after the run's final event. A reconnect to a finished run with nothing left
to send is answered ``204 No Content``, which tells an ``EventSource`` to stop
reconnecting. While nothing happens, a comment line keeps proxies from
closing the connection.

A blocked run (its workflow task keeps failing: a bad deploy) writes no
event, so the stream says so in a *status* message, which has no ``id:``
(the client's ``Last-Event-ID`` stays the last event's)::

    event: status
    data: {"status": "blocked", "blocked": {"type": "retold.errors.NondeterminismError", "seq": 5, ...}}

and, once an attempt succeeds, ``{"status": "running", "blocked": null}``.
It is sent when the stream starts on a blocked run, and within about a
second of a change.
"""

from __future__ import annotations

import contextlib
import logging

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import retold
from retold.history.export import TERMINAL_TYPES, Event, event_to_dict

__all__ = ["EventStreamResponse", "format_event", "format_status"]

log = logging.getLogger("retold.http")

KEEPALIVE = b": keep-alive\n\n"
STATUS_CHECK = 1.0  # seconds between looks at whether the run is blocked


def format_event(event: Event) -> bytes:
    """One SSE message for an event."""
    data = orjson.dumps(event_to_dict(event))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)


def format_status(blocked: retold.WorkflowTaskFailure | None) -> bytes:
    """A status message: the run is blocked (and why), or no longer is."""
    data = orjson.dumps({"status": "running" if blocked is None else "blocked", "blocked": blocked})
    return b"event: status\ndata: %s\n\n" % data


def _key(blocked: retold.WorkflowTaskFailure | None) -> tuple[str, str, int | None] | None:
    """What a status message is sent again for: another error, not another attempt of the same."""
    return None if blocked is None else (blocked.type, blocked.message, blocked.seq)


class EventStreamResponse(Response):
    """An ASGI response that relays an :class:`retold.EventStream` as SSE.

    Unlike Starlette's ``StreamingResponse`` it always listens for the
    client's disconnect, so a closed tab releases its subscription at once
    rather than at the next keep-alive.
    """

    media_type = "text/event-stream"

    def __init__(self, stream: retold.EventStream, keepalive: float) -> None:
        # As StreamingResponse does: no body, so no Content-Length.
        # X-Accel-Buffering: nginx must not hold the stream back.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._stream = stream
        self._keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            with contextlib.suppress(OSError):  # the client went away mid-send
                await self._relay(send)
            tg.cancel_scope.cancel()

    async def _relay(self, send: Send) -> None:
        async with self._stream as stream:
            shown = None  # the blocked state the client was last told (None: not blocked)
            quiet = 0.0
            event: Event | None = None
            while True:
                blocked = stream.blocked
                if _key(blocked) != shown:
                    shown = _key(blocked)
                    # A run that closes is no longer blocked: its final event says so.
                    if blocked is not None or not isinstance(event, TERMINAL_TYPES):
                        await send({"type": "http.response.body", "body": format_status(blocked), "more_body": True})
                if event is not None:
                    await send({"type": "http.response.body", "body": format_event(event), "more_body": True})
                elif quiet >= self._keepalive:
                    quiet = 0.0
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                event = None
                began = anyio.current_time()
                with anyio.move_on_after(min(self._keepalive - quiet, STATUS_CHECK)):
                    try:
                        event = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    except retold.RetoldError as exc:  # the engine is closing: the client will reconnect
                        log.info("event stream of run %s ends early: %s", stream.run_id, exc)
                        break
                quiet = 0.0 if event is not None else quiet + anyio.current_time() - began
        await send({"type": "http.response.body", "body": b"", "more_body": False})

"""A run's history as a value: ``History``, and its stable JSON form.

``await run.history()`` returns a :class:`History`: a read-only sequence of
events plus the ids of the run it belongs to. ``History.to_json()`` and
``History.from_json()`` convert it to and from a documented JSON document, so
that histories of real runs can be kept in a repository and replayed against
new code (``retold.testing.replay``) before a deploy.

The JSON form (version 1)::

    {
      "format": "retold-history",
      "version": 1,
      "workflow": "onboarding",
      "workflow_id": "user-42",
      "run_id": "0193...",
      "events": [
        {"seq": 1, "at": 1732350000.25, "type": "WorkflowStarted",
         "workflow": "onboarding", "workflow_id": "user-42", "input": ["ada"]},
        {"seq": 2, "at": 1732350000.26, "type": "ActivityScheduled",
         "activity": "send_email", "input": ["ada", "welcome"], "options": {...}},
        ...
      ]
    }

Each event carries ``seq``, ``at`` (seconds since the epoch), ``type`` and
the fields of that event type. A payload field (``input``, ``result``,
``value``) holds the payload as a JSON value when the bytes are JSON that
converts back byte for byte (the default JSON codec); otherwise the field is
named ``<field>_b64`` and holds the bytes in base64 (pickled payloads). Keys
may be added in later versions without changing ``version``; readers ignore
keys they do not know. A change that old readers cannot ignore raises
``version``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, final, overload

import orjson

from ..errors import HistoryFormatError, PayloadError
from .codec import parse_json
from .events import EVENT_TYPES, WorkflowStarted
from .events import TERMINAL_TYPES as TERMINAL_TYPES  # the events that close a run
from .events import Event as Event
from .failure import Failure

__all__ = ["FORMAT", "FORMAT_VERSION", "TERMINAL_TYPES", "Event", "History", "event_from_dict", "event_to_dict"]

FORMAT = "retold-history"
FORMAT_VERSION = 1


def _payload_to_json(data: bytes) -> tuple[bool, Any]:
    """(True, value) if ``data`` is JSON that dumps back to the same bytes."""
    try:
        value = orjson.loads(data)
        if orjson.dumps(value) == data:
            return True, value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError):
        pass
    return False, base64.b64encode(data).decode("ascii")


def event_to_dict(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict (the form used in :meth:`History.to_json`)."""
    cls = type(event)
    out: dict[str, Any] = {"seq": event.seq, "at": event.at, "type": cls.__name__}
    for f in dataclasses.fields(event):
        if f.name in ("seq", "at"):
            continue
        value = getattr(event, f.name)
        if f.name in ("headers", "timeouts", "limits", "search_attributes", "memo") and value is None:
            continue  # added later (trace context, time limits, search attributes, memo): left out when absent,
            # so older exports are unchanged
        if f.name == cls.payload_field:
            as_json, converted = _payload_to_json(value)
            out[f.name if as_json else f"{f.name}_b64"] = converted
        elif isinstance(value, Failure):
            out[f.name] = value.to_json()
        else:
            out[f.name] = value
    return out


def event_from_dict(data: Any, *, where: str = "event") -> Event:
    """Rebuild an event from :func:`event_to_dict`'s form.

    Raises:
        HistoryFormatError: the dict is not an event of a known type.
    """
    if not isinstance(data, dict):
        raise HistoryFormatError(f"{where}: expected an object, got {type(data).__name__}")
    type_name = data.get("type")
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise HistoryFormatError(f"{where}: unknown event type {type_name!r}")
    seq, at = data.get("seq"), data.get("at")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise HistoryFormatError(f"{where}: 'seq' must be a positive integer, got {seq!r}")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise HistoryFormatError(f"{where}: 'at' must be a number, got {at!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("seq", "at"):
            continue
        if f.name == cls.payload_field:
            if f"{f.name}_b64" in data:
                try:
                    kwargs[f.name] = base64.b64decode(data[f"{f.name}_b64"], validate=True)
                except (binascii.Error, TypeError, ValueError) as exc:
                    raise HistoryFormatError(f"{where}: '{f.name}_b64' is not base64: {exc}") from None
            elif f.name in data:
                kwargs[f.name] = orjson.dumps(data[f.name])
            elif f.default is dataclasses.MISSING:
                raise HistoryFormatError(f"{where} ({type_name}): missing field {f.name!r}")
        elif f.name == "failure" and data.get(f.name) is not None:
            if not isinstance(data[f.name], dict):
                raise HistoryFormatError(f"{where} ({type_name}): 'failure' must be an object, got {data[f.name]!r}")
            kwargs[f.name] = Failure.from_json(data[f.name])
        elif f.name in data:
            kwargs[f.name] = data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise HistoryFormatError(f"{where} ({type_name}): missing field {f.name!r}")
    try:
        return cls(seq=seq, at=float(at), **kwargs)
    except TypeError as exc:  # pragma: no cover - every field is checked above
        raise HistoryFormatError(f"{where}: {exc}") from None


@final
class History(Sequence[Event]):
    """A run's events, in order, with the ids of the run.

    A read-only sequence: index it, slice it (a slice is a list of events),
    iterate it. ``to_json``/``from_json`` give the stable JSON form described
    in this module's documentation.
    """

    __slots__ = ("_events", "run_id", "workflow", "workflow_id")

    def __init__(self, events: Sequence[Event], *, workflow: str, workflow_id: str, run_id: str) -> None:
        self._events = tuple(events)
        self.workflow = workflow
        self.workflow_id = workflow_id
        self.run_id = run_id

    @classmethod
    def of(cls, events: Sequence[Event], *, run_id: str = "") -> History:
        """Wrap events whose first is ``WorkflowStarted`` (ids are read from it)."""
        if not events or not isinstance(events[0], WorkflowStarted):
            raise HistoryFormatError("a history must begin with a WorkflowStarted event")
        first = events[0]
        return cls(events, workflow=first.workflow, workflow_id=first.workflow_id, run_id=run_id)

    @property
    def events(self) -> tuple[Event, ...]:
        """The events as a tuple."""
        return self._events

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return list(self._events[index])
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):
            return (self._events, self.workflow, self.workflow_id, self.run_id) == (
                other._events, other.workflow, other.workflow_id, other.run_id,
            )
        if isinstance(other, list | tuple):
            return list(self._events) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<History {self.workflow!r} workflow_id={self.workflow_id!r} run_id={self.run_id!r} events={len(self)}>"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "workflow": self.workflow,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "events": [event_to_dict(e) for e in self._events],
        }

    def to_json(self, *, indent: bool = False) -> bytes:
        """The stable JSON form, as UTF-8 bytes (``indent`` for a readable file)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 if indent else 0)

    @classmethod
    def from_dict(cls, data: Any) -> History:
        """Load the document produced by :meth:`to_dict`.

        Raises:
            HistoryFormatError: not a retold history, a newer version, or an
                event that is malformed or out of sequence.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise HistoryFormatError(f"not a retold history: expected \"format\": {FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise HistoryFormatError(f"history 'version' must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise HistoryFormatError(
                f"history format version {version} is newer than this retold reads ({FORMAT_VERSION}); upgrade retold"
            )
        raw_events = data.get("events")
        if not isinstance(raw_events, list) or not raw_events:
            raise HistoryFormatError("history 'events' must be a non-empty list")
        events = [event_from_dict(item, where=f"events[{i}]") for i, item in enumerate(raw_events)]
        for i, event in enumerate(events):
            if event.seq != i + 1:
                raise HistoryFormatError(f"events[{i}]: expected seq {i + 1}, got {event.seq} (gap or reorder)")
        first = events[0]
        if not isinstance(first, WorkflowStarted):
            raise HistoryFormatError(f"events[0]: a history begins with WorkflowStarted, not {first.type}")
        ids = {}
        for key, default in (("workflow", first.workflow), ("workflow_id", first.workflow_id), ("run_id", "")):
            value = data.get(key, default)
            if not isinstance(value, str):
                raise HistoryFormatError(f"history {key!r} must be a string, got {value!r}")
            ids[key] = value
        return cls(events, **ids)

    @classmethod
    def from_json(cls, data: bytes | str) -> History:
        """Load the JSON form (bytes or str).

        Raises:
            HistoryFormatError: not JSON, or not a valid retold history.
        """
        try:
            parsed = parse_json(data)
        except orjson.JSONDecodeError as exc:
            raise HistoryFormatError(f"history is not valid JSON: {exc}") from None
        except PayloadError as exc:
            raise HistoryFormatError(f"history holds a number retold cannot keep exact: {exc}") from None
        return cls.from_dict(parsed)

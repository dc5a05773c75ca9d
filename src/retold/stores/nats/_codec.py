"""The log's message format: one committed operation of the store, as JSON.

An operation is what a process did to the store's state in one atomic step:
a transaction's writes (the plans it applied, the timers and overdue tasks
it took, in order) or a lease operation (a claim, a renewal, a release...),
with the store clock and lease clock it ran under. Replaying the operations
in log order on an empty state rebuilds the state every process holds.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
from typing import Any

import orjson

from ...errors import StoreError
from ...history import events as ev
from ...history.failure import BlockedTask, Failure
from .._plan import Close, NewActivity, NewRun, Plan, ScheduleRow, TaskChange, TaskRetry

__all__ = ["FORMAT", "decode", "decode_batch", "encode", "encode_batch"]

FORMAT = 1  # the version of this format, in every message

_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (Plan, NewActivity, NewRun, Close, TaskChange,
                                                                TaskRetry, ScheduleRow)}

_TUPLE_FIELDS = {cls: {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
                 for cls in _TYPES.values()}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _REQUIRED


_REQUIRED = object()
# Fields are written only when they differ from their defaults: a message
# stays readable by a version that lacks a field this one added, as long as
# that field was left at its default.
_DEFAULTS = {cls: [(f.name, _default(f)) for f in dataclasses.fields(cls)] for cls in _TYPES.values()}


def encode(value: Any) -> Any:
    """``value`` (plans, events, bytes, plain JSON values) as a JSON value."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return {"~b": base64.b64encode(value).decode()}
    if isinstance(value, ev.Event):
        type_name, meta, payload = ev.encode_event(value)
        return {"~e": [value.seq, value.at, type_name, meta.decode(),
                       None if payload is None else base64.b64encode(payload).decode()]}
    if isinstance(value, Failure | BlockedTask):  # as the history records it: read back by from_json
        return {"~m": [[k, encode(v)] for k, v in value.to_json().items()]}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"~m": [[encode(k), encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _TYPES:
        fields = {}
        for name, default in _DEFAULTS[type(value)]:
            field = getattr(value, name)
            if default is _REQUIRED or field != default:
                fields[name] = encode(field)
        return {"~d": type(value).__name__, "f": fields}
    raise StoreError(f"the NATS store cannot record a value of type {type(value).__name__}")


def decode(value: Any) -> Any:
    """The value :func:`encode` was given (tuples come back as lists)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "~b" in value:
        return base64.b64decode(value["~b"])
    if "~e" in value:
        seq, at, type_name, meta, payload = value["~e"]
        return ev.decode_event(seq, at, type_name, meta.encode(),
                               None if payload is None else base64.b64decode(payload))
    if "~m" in value:
        return {_key(decode(k)): decode(v) for k, v in value["~m"]}
    cls = _TYPES[value["~d"]]
    tuples = _TUPLE_FIELDS[cls]
    fields = {name: tuple(decode(v)) if name in tuples else decode(v) for name, v in value["f"].items()}
    failure = fields.get("failure")
    if isinstance(failure, dict):  # recorded as its JSON object
        fields["failure"] = (BlockedTask if cls is TaskChange else Failure).from_json(failure)
    return cls(**fields)


def _key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


_BY = f"{socket.gethostname()}:{os.getpid()}"


def encode_batch(batch_id: str, ops: list[tuple[str, float, float, Any]]) -> bytes:
    """Operations recorded together, as the bytes of one log message.

    Each is (name, store clock, lease clock, encoded arguments); ``by`` names
    the host and pid that wrote it, for people reading the log.
    """
    return orjson.dumps({"v": FORMAT, "id": batch_id, "by": _BY,
                         "ops": [{"op": name, "now": now, "lease": lease, "args": args}
                                 for name, now, lease, args in ops]})


def decode_batch(data: bytes) -> tuple[str, list[tuple[str, float, float, Any]]]:
    """(batch id, operations) of one log message."""
    message = orjson.loads(data)
    if message.get("v") != FORMAT:
        raise StoreError(f"a message of the NATS store's log is in format {message.get('v')!r}; this version of "
                         f"retold reads format {FORMAT} (upgrade retold on every process sharing the store)")
    return message["id"], [(op["op"], op["now"], op["lease"], op["args"]) for op in message["ops"]]

"""Every header, path and query field checked at the edge, before the engine sees it.

A malformed request is answered 400 (or 413/422 for bodies) with a problem
document naming the field and what it must be; nothing reaches the store,
so nothing is written and no database error (a NUL byte PostgreSQL refuses,
a number SQLite cannot bind) can turn into a 5xx.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.requests import Request

import retold
from retold.client import parse_attribute_value
from retold.history.ids import MAX_ID_LENGTH, check_id

from ._problems import ProblemError

__all__ = [
    "attribute_values",
    "MAX_EVENT_ID", "checked_text", "event_id_header", "idempotency_key", "int_param", "path_id", "path_name",
    "text_param", "time_param",
]

MAX_EVENT_ID = 10**18 - 1
"""The largest event number a client may name (``Last-Event-ID``, ``after``): 18 digits."""

# ASCII digits only: str.isdigit() and int() also take "²", "٣" and "1_0".
_INTEGER = re.compile(r"-?[0-9]{1,20}")
# An Idempotency-Key is a string of visible ASCII (RFC 9110 field values,
# without obs-text): a key in another encoding would be read as Latin-1.
_KEY = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")


def checked_text(what: str, value: str, where: str, *, status: int = 400) -> str:
    """``value`` if it follows the rule of ids (1 to 255 characters, no NUL).

    Raises:
        ProblemError: ``status``, naming ``where``.
    """
    try:
        check_id(what, value)
    except retold.InvalidArgumentsError as exc:
        raise ProblemError(status, f"{where}: {exc}", error="InvalidArgumentsError") from None
    return value



def path_id(request: Request) -> str:
    """The ``{id}`` of a ``/runs/{id}/...`` path: a workflow id or run id.

    Raises:
        ProblemError: 400, empty, over 255 characters, or with a NUL character.
    """
    return checked_text("workflow id", request.path_params["id"], "the run id in the path")


def path_name(request: Request, what: str) -> str:
    """A signal or query ``{name}`` in the path, held to the rule of ids.

    Raises:
        ProblemError: 400, empty, over 255 characters, or with a NUL character.
    """
    return checked_text(what, request.path_params["name"], f"the {what} in the path")


def text_param(request: Request, name: str) -> str | None:
    """A free-text query parameter (a workflow name), held to the rule of ids.

    Raises:
        ProblemError: 400, empty, over 255 characters, or with a NUL character.
    """
    raw = request.query_params.get(name)
    return None if raw is None else checked_text(f"{name} parameter", raw, f"query parameter {name!r}")


def time_param(request: Request, name: str) -> datetime | None:
    """A date-time query parameter in ISO 8601 with a time zone (``2026-11-28T12:00:00Z``).

    Raises:
        ProblemError: 400, not an ISO 8601 date-time, or without a time zone.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ProblemError(400, f"{name} must be an ISO 8601 date-time such as 2026-11-28T12:00:00Z, "
                                f"not {raw[:40]!r}") from None
    if when.tzinfo is None:
        raise ProblemError(400, f"{name} must give a time zone (Z or +01:00, say): {raw[:40]!r} has none")
    return when


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low``..``high``, in ASCII digits.

    Raises:
        ProblemError: 400, not an integer or out of range.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return _integer(raw, name, low, high)


def _integer(raw: str, name: str, low: int, high: int) -> int:
    if _INTEGER.fullmatch(raw) is None:
        raise ProblemError(400, f"{name} must be an integer in ASCII digits, not {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ProblemError(400, f"{name} must be between {low} and {high}, not {value}")
    return value


def event_id_header(request: Request) -> int | None:
    """``Last-Event-ID``: the number of the last event the client has, if it sent one.

    Raises:
        ProblemError: 400, not an event number (at most 18 ASCII digits).
    """
    raw = request.headers.get("last-event-id")
    if raw is None:
        return None
    return _integer(raw.strip(), "Last-Event-ID", 0, MAX_EVENT_ID)


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 visible ASCII characters (inner spaces allowed).

    Raises:
        ProblemError: 400, naming what is wrong with it.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_ID_LENGTH:
        raise ProblemError(
            400, f"the Idempotency-Key header must have 1 to {MAX_ID_LENGTH} characters, not {len(key)}: "
                 "derive a shorter key (a hash of the long one, say)")
    if _KEY.fullmatch(key) is None:
        raise ProblemError(
            400, f"the Idempotency-Key header must be visible ASCII characters (0x21-0x7E, spaces inside), not "
                 f"{key[:40]!r}: encode other characters (base64 or hex, say)")
    return key


def attribute_values(values: dict[str, Any], *, status: int = 422, what: str = "field 'search_attributes'",
                     ) -> dict[str, Any]:
    """Search attribute values from JSON or text: a number or bool as it is, a string in its text form
    (``retold.client.parse_attribute_value``: ``int:3``, ``datetime:2026-01-31T12:00:00Z``, plain text).

    Raises:
        ProblemError: ``status``, a value of another JSON type or a text that does not fit its type.
    """
    found: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str):
            try:
                found[name] = parse_attribute_value(value)
            except retold.InvalidArgumentsError as exc:
                raise ProblemError(status, f"{what} {name!r}: {exc}") from None
        elif isinstance(value, bool | int | float):
            found[name] = value
        else:
            raise ProblemError(status, f"{what} {name!r} must be a string, a number or a bool, "
                                       f"not {type(value).__name__}")
    return found

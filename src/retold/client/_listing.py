"""Lists of runs: pages with an opaque cursor, and search attribute values written as text (HTTP, CLI)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, final

import orjson

from ..errors import InvalidArgumentsError
from ..history.attributes import SearchAttributeValue
from ._handle import RunDescription

__all__ = ["RunPage", "decode_cursor", "encode_cursor", "filters_digest", "parse_attribute_value"]


@final
class RunPage(list[RunDescription]):
    """A page of runs (a list), and the cursor of the next page.

    Attributes:
        next_cursor: pass it as ``list_runs(cursor=...)`` with the same
            filters for the runs after this page; None on the last page.
    """

    next_cursor: str | None

    def __init__(self, runs: Iterable[RunDescription] = (), next_cursor: str | None = None) -> None:
        super().__init__(runs)
        self.next_cursor = next_cursor


def filters_digest(filters: Any) -> str:
    """A short digest of a list's filters, kept in its cursors (a cursor fits the filters it came from)."""
    return hashlib.sha256(orjson.dumps(filters, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def encode_cursor(created_at: float, run_id: str, digest: str) -> str:
    """The cursor after a run: where it stands in the list's order, and the list's filters."""
    return base64.urlsafe_b64encode(orjson.dumps([1, created_at, run_id, digest])).decode().rstrip("=")


def decode_cursor(cursor: str, digest: str) -> tuple[float, str]:
    """(created_at, run_id) of a cursor made by :func:`encode_cursor` for these filters.

    Raises:
        InvalidArgumentsError: not such a cursor, or one of a list with other filters.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, created_at, run_id, made_for = orjson.loads(raw)
        ok = version == 1 and isinstance(created_at, int | float) and isinstance(run_id, str)
    except (ValueError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise InvalidArgumentsError(f"cursor {cursor[:40]!r} is not a cursor of a list of runs")
    if made_for != digest:
        raise InvalidArgumentsError("this cursor belongs to a list with other filters: pass the filters it was "
                                    "made with, or start again without a cursor")
    return float(created_at), run_id


_TYPES = ("str", "int", "float", "bool", "datetime")


def parse_attribute_value(text: str) -> SearchAttributeValue:
    """A search attribute value written as text: ``TYPE:VALUE`` (str, int, float, bool, datetime) or plain text.

    ``"acme"`` and ``"str:acme"`` are the text ``acme``; ``"int:3"`` is 3;
    ``"float:2.5"``; ``"bool:true"`` / ``"bool:false"``;
    ``"datetime:2026-01-31T12:00:00+00:00"`` (with a time zone).

    Raises:
        InvalidArgumentsError: a value that does not fit its type.
    """
    kind, sep, rest = text.partition(":")
    if not sep or kind not in _TYPES:
        return text
    try:
        if kind == "int":
            return int(rest)
        if kind == "float":
            return float(rest)
        if kind == "bool":
            if rest not in ("true", "false"):
                raise ValueError("true or false")
            return rest == "true"
        if kind == "datetime":
            when = datetime.fromisoformat(rest)
            if when.tzinfo is None:
                raise ValueError("it needs a time zone, e.g. +00:00 or Z")
            return when
    except ValueError as err:
        raise InvalidArgumentsError(f"search attribute value {text!r} is not a {kind}: {err}") from None
    return rest

"""Search attributes: typed values a run is found by, and the one stored form of each on every store.

A search attribute's name is 1 to 64 characters, a letter or ``_`` then
letters, digits, ``_``, ``.`` or ``-``. Its value is one of five types,
stored as a tagged string (in events, in the stores' indexes) that two
equal values share and values of different types never do:

========  =============================  ===========================
type      value                          stored form
========  =============================  ===========================
str       at most 256 characters          ``s:`` + the text
int       -2**63 .. 2**63-1               ``i:`` + its decimal form
float     finite                          ``f:`` + ``repr(value)``
bool      True / False                    ``b:true`` / ``b:false``
datetime  aware (with a time zone)        ``d:`` + UTC ISO 8601, to the microsecond
========  =============================  ===========================

So a filter matches a value of its own type only: ``1`` (int) does not
find ``1.0`` (float), and a datetime finds the same instant in any zone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Union

import orjson

from ..errors import InvalidArgumentsError

__all__ = [
    "MAX_ATTRIBUTES", "SearchAttributeValue", "decode_attributes", "decode_value", "encode_attributes",
    "check_memo", "encode_value", "merge",
]

SearchAttributeValue = Union[str, int, float, bool, datetime]  # noqa: UP007 - a Union takes a docstring
SearchAttributeValue.__doc__ = """The types a search attribute's value may have: str, int, float, bool, datetime.

A datetime must be aware (with a time zone); values of different types
never match (``3`` is not ``3.0`` nor ``"3"``). See docs/finding-runs.md."""

MAX_ATTRIBUTES = 64
"""The most search attributes a run may have."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_MAX_TEXT = 256


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgumentsError(
            f"search attribute name {name!r} is not valid: 1 to 64 characters, a letter or '_' first, then "
            f"letters, digits, '_', '.' or '-'")
    return name


def encode_value(name: str, value: Any) -> str:
    """``value``'s stored form (see the module's docstring).

    Raises:
        InvalidArgumentsError: a value of another type, a naive datetime, a
            float that is not finite, an int out of range or a text too long.
    """
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidArgumentsError(f"search attribute {name!r}: int {value} is out of the 64-bit range")
        return f"i:{value}"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentsError(f"search attribute {name!r}: float {value!r} is not finite")
        return f"f:{value!r}"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgumentsError(
                f"search attribute {name!r}: datetime {value.isoformat()} is naive; give it a time zone")
        return "d:" + value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise InvalidArgumentsError(
                f"search attribute {name!r}: text of {len(value)} characters (at most {_MAX_TEXT})")
        if "\x00" in value:
            raise InvalidArgumentsError(f"search attribute {name!r}: text must not contain a NUL character")
        return f"s:{value}"
    raise InvalidArgumentsError(
        f"search attribute {name!r}: a {type(value).__name__} is not a search attribute type "
        f"(str, int, float, bool or an aware datetime)")


def encode_attributes(values: Mapping[str, Any] | None, *, removals: bool = False) -> dict[str, str | None]:
    """Search attributes in their stored forms, checked; with ``removals``, None removes an attribute.

    Raises:
        InvalidArgumentsError: not a mapping, a bad name, a bad value (see
            :func:`encode_value`) or more than :data:`MAX_ATTRIBUTES` of them.
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidArgumentsError(f"search attributes must be a dict of name to value, got {type(values).__name__}")
    if len(values) > MAX_ATTRIBUTES:
        raise InvalidArgumentsError(f"at most {MAX_ATTRIBUTES} search attributes, got {len(values)}")
    encoded: dict[str, str | None] = {}
    for name, value in values.items():
        _check_name(name)
        if value is None and removals:
            encoded[name] = None
        else:
            encoded[name] = encode_value(name, value)
    return encoded


def decode_value(stored: str) -> SearchAttributeValue:
    """The value a stored form holds."""
    tag, text = stored[:2], stored[2:]
    if tag == "s:":
        return text
    if tag == "i:":
        return int(text)
    if tag == "f:":
        return float(text)
    if tag == "b:":
        return text == "true"
    if tag == "d:":
        return datetime.fromisoformat(text)
    raise ValueError(f"not a stored search attribute: {stored!r}")


def decode_attributes(stored: Mapping[str, str] | None) -> dict[str, SearchAttributeValue]:
    """A run's search attributes from their stored forms, by name."""
    return {name: decode_value(value) for name, value in sorted((stored or {}).items())}


def merge(current: Mapping[str, str] | None, changes: Mapping[str, str | None]) -> dict[str, str]:
    """``current`` with ``changes`` applied (None removes a name)."""
    merged = dict(current or {})
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


MAX_MEMO_BYTES = 64 * 1024


def check_memo(memo: Any) -> dict[str, Any]:
    """A memo as stored: a dict of JSON values (at most 64 KiB of JSON), copied.

    Raises:
        InvalidArgumentsError: not a dict with str keys, a value with no JSON
            form, or too large.
    """
    if not isinstance(memo, Mapping) or not all(isinstance(k, str) for k in memo):
        raise InvalidArgumentsError(f"a memo must be a dict with str keys, got {type(memo).__name__}")
    try:
        data = orjson.dumps(dict(memo))
    except TypeError as err:
        raise InvalidArgumentsError(f"a memo must hold JSON values (str, numbers, bool, None, lists, dicts): {err}"
                                    ) from None
    if len(data) > MAX_MEMO_BYTES:
        raise InvalidArgumentsError(f"a memo may have at most {MAX_MEMO_BYTES} bytes of JSON, this one has {len(data)}")
    copied: dict[str, Any] = orjson.loads(data)
    return copied

"""The one rule for workflow ids and idempotency keys, the same on every store."""

from __future__ import annotations

from ..errors import InvalidArgumentsError

__all__ = ["MAX_ID_LENGTH", "check_id", "too_long"]

MAX_ID_LENGTH = 255
"""The longest workflow id or idempotency key, in characters, on every store."""


def check_id(what: str, value: str | None) -> None:
    """Refuse an id no store can hold, before anything is written.

    Raises:
        InvalidArgumentsError: ``value`` is not a string, is empty, longer
            than :data:`MAX_ID_LENGTH` characters, or holds a NUL character.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgumentsError(f"a {what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentsError(f"a {what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentsError(
            f"a {what} may have at most {MAX_ID_LENGTH} characters, this one has {len(value)} "
            f"({value[:40]!r}...): derive a shorter one (a hash of the long part, say)"
        )
    if "\x00" in value:
        raise InvalidArgumentsError(f"a {what} must not contain a NUL character: {value!r}")


def too_long(what: str, value: str) -> str | None:
    """Why ``value`` is too long to store (beside the ids: names, task queues), or None if it is not."""
    if len(value) <= MAX_ID_LENGTH:
        return None
    return (f"{what} may have at most {MAX_ID_LENGTH} characters (the limit of ids, on every store), "
            f"this one has {len(value)} ({value[:40]!r}...)")

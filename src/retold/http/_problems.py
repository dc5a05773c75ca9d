"""Errors as RFC 9457 problem details, JSON bodies read with a size limit."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

import retold
from retold.history.codec import parse_json

__all__ = ["JSONResponse", "ProblemError", "parse_body_json", "problem_response", "read_json"]

log = logging.getLogger("retold.http")

PROBLEM_TYPE = "application/problem+json"


class JSONResponse(Response):
    """A response serialised by orjson (dataclasses and datetimes included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ProblemError(Exception):
    """An error to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem details response: ``type``, ``title``, ``status``, ``detail`` and extensions."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_TYPE)


# The status each retold error is answered with; subclasses first.
_STATUS: list[tuple[type[retold.RetoldError], int]] = [
    (retold.RunNotFoundError, 404),
    (retold.ScheduleNotFoundError, 404),
    (retold.NotRegisteredError, 404),
    (retold.InvalidArgumentsError, 422),
    (retold.PayloadError, 422),
    (retold.QueryError, 422),
    (retold.UpdateRejectedError, 422),
    (retold.UpdateFailedError, 409),
    (retold.RunFinishedError, 409),
    (retold.SignalBufferFullError, 429),
    (retold.IdempotencyError, 409),
    (retold.StoreError, 503),
]


def retold_error_response(exc: retold.RetoldError) -> Response:
    """Map an error from the client API to its problem response."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            if status >= 500:
                log.warning("retold HTTP API: %s", exc)
            return problem_response(status, str(exc), error=type(exc).__name__)
    return problem_response(400, str(exc), error=type(exc).__name__)


async def handle_problem(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`ProblemError`."""
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, exc.headers, **exc.extra)


async def handle_retold_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`retold.RetoldError`."""
    assert isinstance(exc, retold.RetoldError)
    return retold_error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, as problem details."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else f"{request.method} {request.url.path}"
    return problem_response(exc.status_code, detail, dict(exc.headers or {}))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else is a bug: log it, answer 500 without internals."""
    log.error("retold HTTP API: %s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error; the server log has the details")


async def read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON (None if empty), at most ``limit`` bytes.

    The limit is enforced while the body streams in: a client sending more is
    answered 413 without the rest being read.

    Raises:
        ProblemError: 413 over the limit, 415 not JSON, 400 malformed JSON.
    """
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ProblemError(415, f"send JSON (Content-Type: application/json), not {content_type}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the body is over the limit of {limit} bytes", headers={"Connection": "close"})
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        return None
    return parse_body_json(body, "the body")


def parse_body_json(data: bytes | str, what: str) -> Any:
    """JSON from a client, numbers exact.

    Raises:
        ProblemError: 400 malformed JSON, 422 an integer beyond the 64-bit
            range (never turned into a float).
    """
    try:
        return parse_json(data)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(400, f"{what} is not valid JSON: {exc}") from None
    except retold.PayloadError as exc:
        raise ProblemError(422, f"{what}: {exc}", error="PayloadError") from None


def expect_object(body: Any, fields: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """Check that a body is an object with only these fields, of these types.

    Raises:
        ProblemError: 422, naming the offending field.
    """
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ProblemError(422, f"the body must be a JSON object, not {_json_type(body)}")
    for key, value in body.items():
        allowed = fields.get(key)
        if allowed is None:
            raise ProblemError(422, f"unknown field {key!r}; expected {', '.join(repr(f) for f in fields)}")
        if allowed and not isinstance(value, allowed):
            raise ProblemError(422, f"field {key!r} must be {' or '.join(_json_name(t) for t in allowed)}, "
                               f"not {_json_type(value)}")
    return body


def _json_name(tp: type) -> str:
    return {list: "an array", str: "a string", dict: "an object", int: "an integer",
            type(None): "null"}.get(tp, tp.__name__)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _json_name(type(value))

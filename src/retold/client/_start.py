"""What a start stores: the input, checked and encoded, and the hash an idempotent start compares."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from ..authoring import MAX_TIME_LIMIT, Workflow, pack_input
from ..errors import ConfigurationError, PayloadError
from ..history.codec import Codec, JsonCodec, PickleCodec, start_digest

__all__ = ["encode_start", "start_options", "time_limits"]


def _plain_form(codec: Codec, payload: bytes) -> bytes:
    """What an idempotent start compares: the values, not how a codec wrapped them.

    retold's own codecs encode the same values to the same bytes. Another
    codec may not (an encrypting one draws a random nonce): for it, the
    decoded values as canonical JSON, when they are JSON values.
    """
    if isinstance(codec, JsonCodec | PickleCodec):
        return payload
    try:
        return orjson.dumps(
            codec.decode(payload, Any), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
        )
    except (PayloadError, TypeError):
        return payload


def encode_start(
    codec: Codec, name: str, typed: Workflow[..., Any] | None, args: tuple[Any, ...], kwargs: dict[str, Any],
) -> tuple[bytes, str, Any]:
    """The start's payload, its input hash and the run's result type (Any when untyped).

    Raises:
        InvalidArgumentsError: the arguments do not fit the workflow's
            signature or types; nothing is stored.
        PayloadError: an argument cannot be encoded.
    """
    result_type: Any = Any
    if typed is not None:
        # What the run's first workflow task will decode, checked before anything is stored.
        payload = typed.types.encode_input(codec, "workflow", name, args, kwargs)
        typed.types.validate("workflow", name, codec, payload)
        result_type = typed.types.return_type
    else:
        payload = codec.encode(pack_input(args, kwargs))
    digest = start_digest(name, _plain_form(codec, payload))
    return payload, digest, result_type


_LIMITS = ("run_timeout", "execution_timeout", "start_delay")


def time_limits(values: dict[str, Any]) -> dict[str, float] | None:
    """A start's time limits in seconds (from timedeltas or numbers), checked; None if there are none."""
    limits: dict[str, float] = {}
    for name in _LIMITS:
        value = values.get(name)
        if value is None:
            continue
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_TIME_LIMIT:
            raise ConfigurationError(f"{name} must be a positive timedelta or number of seconds (at most 100 years), "
                                     f"got {value!r}")
        limits[name] = float(seconds)
    return limits or None


def start_options(
    workflow: Workflow[Any, Any] | str, kwargs: dict[str, Any],
) -> tuple[dict[str, Any], str | None, str | None, str | None, dict[str, float] | None]:
    """(workflow arguments, id, idempotency key, id reuse policy, time limits) of a start's call.

    A workflow given by name takes its options as keywords; a decorated one
    carries them (``with_options``) and its keywords are all its own.
    """
    if isinstance(workflow, str):
        options = dict(kwargs)
        workflow_id, idempotency_key = options.pop("id", None), options.pop("idempotency_key", None)
        policy = options.pop("id_reuse_policy", None)
        return options, workflow_id, idempotency_key, policy, time_limits(
            {name: options.pop(name, None) for name in _LIMITS})
    if isinstance(workflow, Workflow):
        limits = time_limits({name: getattr(workflow, name) for name in _LIMITS})
        return kwargs, workflow.id, workflow.idempotency_key, workflow.id_reuse_policy, limits
    return kwargs, None, None, None, None

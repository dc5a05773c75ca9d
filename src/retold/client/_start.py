"""What a start stores: the input, checked and encoded, and the hash an idempotent start compares."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..authoring import Workflow, pack_input
from ..errors import PayloadError
from ..history.codec import Codec, JsonCodec, PickleCodec

__all__ = ["encode_start"]


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
    digest = hashlib.sha256(name.encode() + b"\0" + _plain_form(codec, payload)).hexdigest()
    return payload, digest, result_type

"""Payload codecs: how arguments, results and signal values become bytes.

The default :class:`JsonCodec` writes JSON with orjson and, on the way back,
rebuilds the annotated type with cattrs: dataclasses, attrs classes, enums,
``datetime``/``date``, ``UUID``, ``Decimal``, tuples, sets, typed dicts and
pydantic models (when pydantic is installed). Integers stay exact: JSON
carries integers from -2**63 to 2**64-1 (:func:`parse_json` refuses larger
ones instead of turning them into floats, as a plain ``orjson.loads`` would).

:class:`PickleCodec` (cloudpickle) takes any Python object, but unpickling
runs code named by the bytes: it must only ever read bytes this process
family wrote; never use it on input that came from outside.
"""

from __future__ import annotations

import decimal
import json
import pickle
import re
import uuid
from typing import Any, Protocol, final, runtime_checkable

import cattrs
import cloudpickle
import orjson
from cattrs.preconf.orjson import make_converter

from ..errors import PayloadError

__all__ = ["MAX_JSON_INT", "MIN_JSON_INT", "Codec", "JsonCodec", "PickleCodec", "parse_json"]

MIN_JSON_INT = -(2**63)
"""The smallest integer a JSON payload may hold (orjson's range)."""
MAX_JSON_INT = 2**64 - 1
"""The largest integer a JSON payload may hold (orjson's range)."""

# An integer outside the 64-bit range has at least 19 digits in a row. orjson
# parses such a literal as a float, silently; bytes without such a run cannot
# hold one, so only the rest take the slower, exact path.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _exact_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    # int() of thousands of digits is slow (and refused past 4,300): the range needs at most 20.
    if digits > 20 or not MIN_JSON_INT <= int(literal) <= MAX_JSON_INT:
        shown = literal if len(literal) <= 40 else f"{literal[:40]}..."
        raise PayloadError(
            f"the integer {shown} ({digits} digits) is outside the range JSON payloads carry exactly "
            f"(-2**63 to 2**64-1); send it as a string (a parameter annotated Decimal or str keeps it exact)"
        )
    return int(literal)


def parse_json(data: bytes | str) -> Any:
    """Parse JSON, keeping every number exact: orjson's speed, without its floats for big integers.

    Raises:
        orjson.JSONDecodeError: ``data`` is not valid JSON.
        PayloadError: an integer is outside -2**63 to 2**64-1 (orjson would
            have made it a float).
    """
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw) is None:
        return value
    # orjson has accepted the text, so it has no NaN, Infinity or lone
    # surrogate, which the standard parser would let through.
    return json.loads(raw, parse_int=_exact_int)


@runtime_checkable
class Codec(Protocol):
    """Turns payload values into bytes and back."""

    name: str

    def encode(self, value: Any) -> bytes:
        """Encode one value; raise :class:`~retold.PayloadError` if impossible."""
        ...

    def decode(self, data: bytes, type_: Any = Any) -> Any:
        """Decode bytes written by :meth:`encode` into an instance of ``type_``."""
        ...

    def convert(self, value: Any, type_: Any) -> Any:
        """Turn one element of a decoded ``list[Any]`` into ``type_``."""
        ...


def _pydantic_hooks(converter: cattrs.Converter) -> None:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - pydantic is optional
        return

    def is_model(tp: Any) -> bool:
        return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)

    converter.register_unstructure_hook_func(
        lambda tp: is_model(tp), lambda value: value.model_dump(mode="json")
    )
    converter.register_structure_hook_func(
        is_model, lambda data, tp: tp.model_validate(data)
    )


def _strict_hooks(converter: cattrs.Converter) -> None:
    """No silent coercion: 1.5 is not an int, "false" is not a bool, 5 is not a str.

    Numeric strings still become numbers: JSON object keys are strings, so
    ``dict[int, str]`` needs them.
    """

    def to_int(value: Any, _: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value)
        raise TypeError(f"expected an integer, got {type(value).__name__} {value!r:.40}")

    def to_float(value: Any, _: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value)
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r:.40}")

    def to_str(value: Any, _: Any) -> str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {type(value).__name__} {value!r:.40}")

    def to_bool(value: Any, _: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {type(value).__name__} {value!r:.40}")

    converter.register_structure_hook(int, to_int)
    converter.register_structure_hook(float, to_float)
    converter.register_structure_hook(str, to_str)
    converter.register_structure_hook(bool, to_bool)


@final
class JsonCodec:
    """JSON with orjson; values decoded into their annotated types by cattrs."""

    name = "json"

    def __init__(self) -> None:
        conv = make_converter()
        conv.register_unstructure_hook(uuid.UUID, str)
        conv.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(str(v)))
        conv.register_unstructure_hook(decimal.Decimal, str)
        conv.register_structure_hook(decimal.Decimal, lambda v, _: decimal.Decimal(str(v)))
        _strict_hooks(conv)
        _pydantic_hooks(conv)
        self._conv = conv

    def encode(self, value: Any) -> bytes:
        """Encode ``value`` as JSON bytes.

        Raises:
            PayloadError: the value has no JSON form, or holds an integer
                outside -2**63 to 2**64-1.
        """
        try:
            return orjson.dumps(self._conv.unstructure(value), option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, orjson.JSONEncodeError, cattrs.BaseValidationError) as exc:
            hint = ("; JSON payloads carry integers from -2**63 to 2**64-1 exactly: pass a larger one as a "
                    "Decimal or str" if "Integer exceeds" in str(exc) else "")
            raise PayloadError(
                f"cannot encode {type(value).__name__} value {value!r:.80} as JSON: {exc}{hint}"
            ) from exc

    def decode(self, data: bytes, type_: Any = Any) -> Any:
        """Decode JSON bytes and structure them into ``type_``.

        Raises:
            PayloadError: not JSON, an integer outside the exact range, or a
                value that does not fit ``type_``.
        """
        try:
            raw = parse_json(data)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"payload is not valid JSON: {exc}") from exc
        return self.convert(raw, type_)

    def convert(self, value: Any, type_: Any) -> Any:
        """Structure plain JSON data into ``type_``."""
        if type_ is Any or type_ is object or (type_ is type(None) and value is None):
            return value
        try:
            return self._conv.structure(value, type_)
        except Exception as exc:
            # cattrs says where in a nested value it failed ("... @ $.quantity").
            why = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else exc
            raise PayloadError(
                f"cannot decode {value!r:.80} as {getattr(type_, '__name__', type_)}: {why}"
            ) from exc


@final
class PickleCodec:
    """cloudpickle: any Python value. Opt-in, for trusted payloads only.

    Unpickling runs code: the bytes name functions that are called while
    they load. Decode only payloads your own processes wrote, from a store or
    file only they can write; never a history file from someone else.
    """

    name = "pickle"

    def encode(self, value: Any) -> bytes:
        """Pickle ``value`` with cloudpickle."""
        try:
            data: bytes = cloudpickle.dumps(value)
            return data
        except Exception as exc:
            raise PayloadError(f"cannot pickle {type(value).__name__}: {exc}") from exc

    def decode(self, data: bytes, type_: Any = Any) -> Any:
        """Unpickle bytes this process family wrote."""
        try:
            return pickle.loads(data)  # noqa: S301 - opt-in codec for trusted stores only
        except Exception as exc:
            raise PayloadError(f"cannot unpickle payload: {exc}") from exc

    def convert(self, value: Any, type_: Any) -> Any:
        """Return ``value``: pickled values keep their type."""
        return value

"""Payload codecs: how arguments, results and signal values become bytes.

The default :class:`JsonCodec` writes JSON with orjson and, on the way back,
rebuilds the annotated type with cattrs: dataclasses, attrs classes, enums,
``datetime``/``date``, ``timedelta`` (as seconds), ``UUID``, ``Decimal``, tuples, sets,
typed dicts and pydantic models (when pydantic is installed). Integers stay
exact: JSON carries integers from -2**63 to 2**64-1 (:func:`parse_json`
refuses larger ones instead of turning them into floats, as a plain
``orjson.loads`` would).

:class:`PickleCodec` (cloudpickle) takes any Python object, but unpickling
runs code named by the bytes: it must only ever read bytes this process
family wrote; never use it on input that came from outside.
"""

from __future__ import annotations

import collections
import decimal
import enum
import hashlib
import json
import pickle
import re
import sys
import types
import typing
import uuid
from collections import abc
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NewType, Protocol, final, runtime_checkable

import cattrs
import cattrs.cols
import cattrs.v
import cloudpickle
import orjson
from cattrs.preconf.orjson import make_converter

from ..errors import PayloadError

__all__ = ["MAX_JSON_INT", "MIN_JSON_INT", "Codec", "JsonCodec", "PickleCodec", "parse_json", "start_digest"]

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
    # pydantic is optional, and importing it costs a process 50-100 ms: a
    # model exists only once its program imported pydantic, so that is when
    # a type is looked at as one.
    def is_model(tp: Any) -> bool:
        pydantic = sys.modules.get("pydantic")
        return pydantic is not None and isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)

    converter.register_unstructure_hook_func(
        lambda tp: is_model(tp), lambda value: value.model_dump(mode="json")
    )
    converter.register_structure_hook_func(
        is_model, lambda data, tp: tp.model_validate(data)
    )


class _MismatchError(TypeError):
    """A value of the wrong JSON type; its message is shown as is."""


_SEQUENCES = frozenset({
    list, tuple, set, frozenset, collections.deque, abc.Sequence, abc.MutableSequence,
    abc.Set, abc.MutableSet, abc.Collection, abc.Iterable,
})
_MAPPINGS = frozenset({
    dict, collections.OrderedDict, collections.defaultdict, abc.Mapping, abc.MutableMapping,
})
_IntKey = NewType("_IntKey", int)
_FloatKey = NewType("_FloatKey", float)


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {value!r:.40}"


def _strict_hooks(converter: cattrs.Converter) -> None:
    """No silent coercion: 1.5 is not an int, "2" is not an int, "ab" is not a list.

    The only conversions are those the JSON form needs: an integral number is
    an int (JSON does not tell 2.0 from 2), an int is a float, and a number
    that is a key of an object (always a string in JSON) is read back from
    its string, for ``dict[int, str]``.
    """

    # The int, float and str hooks are found for IntEnum, StrEnum and
    # (int, Enum) classes too (subclasses): those are enums, not numbers.

    def to_int(value: Any, tp: Any) -> int:
        if tp is not int and _is_enum(tp):
            return _to_enum(value, tp)  # type: ignore[no-any-return]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _MismatchError(f"expected an integer, {_got(value)}")

    def to_float(value: Any, tp: Any) -> float:
        if tp is not float and _is_enum(tp):
            return _to_enum(value, tp)  # type: ignore[no-any-return]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _MismatchError(f"expected a number, {_got(value)}")

    def to_str(value: Any, tp: Any) -> str:
        if tp is not str and _is_enum(tp):
            return _to_enum(value, tp)  # type: ignore[no-any-return]
        if isinstance(value, str):
            return value
        raise _MismatchError(f"expected a string, {_got(value)}")

    def to_bool(value: Any, _: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise _MismatchError(f"expected true or false, {_got(value)}")

    def int_key(value: Any, _: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        return to_int(value, int)

    def float_key(value: Any, _: Any) -> float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        return to_float(value, float)

    converter.register_structure_hook(int, to_int)
    converter.register_structure_hook(float, to_float)
    converter.register_structure_hook(str, to_str)
    converter.register_structure_hook(bool, to_bool)
    converter.register_structure_hook(_IntKey, int_key)
    converter.register_structure_hook(_FloatKey, float_key)

    # Containers: a string is not a list of characters, an object is not a
    # list of its keys, a list is not an object.
    wrapping: set[Any] = set()

    def is_container(tp: Any) -> bool:
        if tp in wrapping:
            return False
        origin = typing.get_origin(tp) or tp
        return origin in _SEQUENCES or origin in _MAPPINGS

    def container_hook(tp: Any) -> Callable[[Any, Any], Any]:
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        mapping = origin in _MAPPINGS
        keys = {int: _IntKey, float: _FloatKey}.get(args[0]) if mapping and args else None
        if keys is not None:
            inner: Callable[[Any, Any], Any] = cattrs.cols.mapping_structure_factory(
                tp, converter, key_type=keys, val_type=args[1] if len(args) > 1 else Any
            )
        else:
            wrapping.add(tp)
            try:
                inner = converter.get_structure_hook(tp, cache_result=False)
            finally:
                wrapping.discard(tp)

        def hook(value: Any, type_: Any) -> Any:
            if mapping and not isinstance(value, abc.Mapping):
                raise _MismatchError(f"expected an object, {_got(value)}")
            if not mapping and (isinstance(value, str | bytes | bytearray | abc.Mapping)
                                or not isinstance(value, abc.Collection)):
                raise _MismatchError(f"expected an array, {_got(value)}")
            return inner(value, type_)

        return hook

    converter.register_structure_hook_factory(is_container, container_hook)


def _to_uuid(value: Any, _: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise _MismatchError(f"expected a UUID as a string, {_got(value)}")
    return uuid.UUID(value)


def _to_decimal(value: Any, _: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(value)
    if not isinstance(value, str):
        raise _MismatchError(f"expected a decimal as a string (a float would lose digits), {_got(value)}")
    try:
        return decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"invalid decimal {value!r:.40}") from None


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _to_enum(value: Any, tp: Any) -> Any:
    """A member of the enum ``tp`` from its JSON form (``IntEnum``/``StrEnum`` included).

    A member whose value is a tuple is written as a JSON array and read back
    from it; an integer-valued member used as a dict key is read from its string.
    """
    if isinstance(value, tp):
        return value
    candidates = [value]
    if isinstance(value, list):
        candidates.append(_as_tuple(value))
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        candidates.append(int(value))
    for candidate in candidates:
        if isinstance(candidate, bool) and not any(isinstance(m.value, bool) for m in tp):
            continue  # JSON true is not the member whose value is 1
        try:
            return tp(candidate)
        except (ValueError, TypeError):
            continue
    known = ", ".join(repr(member.value) for member in tp)
    raise _MismatchError(f"{value!r:.40} is not a value of {tp.__name__} (values: {known:.120})")


def _union_hooks(converter: cattrs.Converter) -> None:
    """A union with an enum member (``Fruit | Colour``, ``Fruit | int``, ``Fruit | None``):
    the first member, in annotation order, that accepts the value.

    cattrs alone refuses a union of two enums and reads ``Fruit | int`` as a plain int.
    """

    def is_enum_union(tp: Any) -> bool:
        return typing.get_origin(tp) in (typing.Union, types.UnionType) and any(
            _is_enum(member) for member in typing.get_args(tp)
        )

    def union_hook(tp: Any) -> Callable[[Any, Any], Any]:
        members = [member for member in typing.get_args(tp) if member is not type(None)]
        optional = len(members) < len(typing.get_args(tp))

        def hook(value: Any, _: Any) -> Any:
            if value is None and optional:
                return None
            if len(members) == 1:  # Fruit | None: the enum's own message
                return converter.structure(value, members[0])
            for member in members:
                try:
                    return converter.structure(value, member)
                except Exception:  # noqa: BLE001, S112 - the next member may take it
                    continue
            names = " | ".join("None" if member is type(None) else _type_name(member)
                               for member in typing.get_args(tp))
            raise _MismatchError(f"{value!r:.40} is not a value of any of {names}")

        return hook

    converter.register_structure_hook_factory(is_enum_union, union_hook)


def _as_tuple(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_as_tuple(item) if isinstance(item, list) else item for item in value)


def _type_name(tp: Any) -> str:
    if typing.get_args(tp) or not hasattr(tp, "__name__"):
        return re.sub(r"\b[\w.]+\.(\w+)", r"\1", str(tp))  # list[shop.orders.Line] -> list[Line]
    return str(tp.__name__)


def _format_error(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, _MismatchError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _duration_hooks(converter: cattrs.Converter) -> None:
    """``timedelta`` as a number of seconds, the form retold's own API takes."""

    def to_timedelta(value: Any, _: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        raise TypeError(f"expected a number of seconds, got {type(value).__name__} {value!r:.40}")

    converter.register_unstructure_hook(timedelta, lambda value: value.total_seconds())
    converter.register_structure_hook(timedelta, to_timedelta)


@final
class JsonCodec:
    """JSON with orjson; values decoded into their annotated types by cattrs."""

    name = "json"

    def __init__(self) -> None:
        conv = make_converter()
        conv.register_unstructure_hook(uuid.UUID, str)
        conv.register_structure_hook(uuid.UUID, _to_uuid)
        conv.register_unstructure_hook(decimal.Decimal, str)
        conv.register_structure_hook(decimal.Decimal, _to_decimal)
        _duration_hooks(conv)
        _strict_hooks(conv)
        _union_hooks(conv)
        conv.register_structure_hook(enum.Enum, _to_enum)
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
            why = (
                "; ".join(cattrs.transform_error(exc, format_exception=_format_error))
                if isinstance(exc, cattrs.BaseValidationError) else exc
            )
            raise PayloadError(
                f"cannot decode {value!r:.80} as {_type_name(type_)}: {why}"
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


def start_digest(workflow: str, plain_input: bytes) -> str:
    """What an idempotent start compares: the workflow's name and its input's plain form (hex SHA-256)."""
    return hashlib.sha256(workflow.encode() + b"\0" + plain_input).hexdigest()

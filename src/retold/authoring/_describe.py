"""Workflow and activity definitions as JSON: names, parameters and their JSON Schema, what their code calls.

Served by ``GET /workflows`` and recorded by each engine in its registration,
so that processes hosting nothing can list what the live engines run.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import types
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from types import CodeType, ModuleType
from typing import Any

from ._decorators import Activity, Workflow

__all__ = ["args_schema", "describe_registry", "json_schema"]

_FORMATS: dict[Any, dict[str, Any]] = {
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    decimal.Decimal: {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"},
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    type(None): {"type": "null"},
}


def json_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of an annotation's JSON form, as the JSON codec reads it.

    Covers what the codec converts (primitives, containers, unions,
    literals, enums, dataclasses, datetimes, UUIDs, decimals); anything else
    is described as any JSON value.
    """
    if tp in _FORMATS:
        return dict(_FORMATS[tp])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return json_schema(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema(args[0])}
        items = [json_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in (list, set, frozenset) or (isinstance(origin, type) and issubclass(origin, Sequence)):
        return {"type": "array", "items": json_schema(args[0])} if args else {"type": "array"}
    if origin is dict or (isinstance(origin, type) and issubclass(origin, Mapping)):
        if args and args[0] is str:
            return {"type": "object", "additionalProperties": json_schema(args[1])}
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        try:
            hints = typing.get_type_hints(tp)
        except Exception:  # noqa: BLE001 - unresolvable annotations: any object
            return {"type": "object"}
        fields = [f for f in dataclasses.fields(tp) if f.init]
        return {
            "type": "object",
            "properties": {f.name: json_schema(hints.get(f.name, Any)) for f in fields},
            "required": [
                f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ],
        }
    return {}


def args_schema(fn: Any) -> dict[str, Any]:
    """The JSON Schema of a function's positional arguments, as a JSON array."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: any values
        hints = {}
    params = list(inspect.signature(fn).parameters.values())
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    fixed = [p for p in params if p.kind in positional]
    schema: dict[str, Any] = {"type": "array", "minItems": sum(p.default is inspect.Parameter.empty for p in fixed)}
    if fixed:  # JSON Schema wants prefixItems non-empty
        schema["prefixItems"] = [json_schema(hints.get(p.name, Any)) for p in fixed]
    if not variadic:
        schema["maxItems"] = len(fixed)
    return schema


def _type_name(tp: Any) -> str:
    if tp is inspect.Parameter.empty:
        return "any"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _signature(fn: Any) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations are described as written
        hints = {}
    params = [
        {"name": p.name, "type": _type_name(hints.get(p.name, p.annotation)),
         "required": p.default is inspect.Parameter.empty}
        for p in inspect.signature(fn).parameters.values()
    ]
    returns = _type_name(hints.get("return", inspect.signature(fn).return_annotation))
    return {"parameters": params, "returns": returns}


def _summary(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def _names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, CodeType):  # nested functions, lambdas, comprehensions
            yield from _names(const)


def referenced(fn: Any) -> list[Any]:
    """The objects a function's code names: globals, closure cells, module attributes.

    Best effort, from the compiled code: ``retold.execute(charge, ...)`` names
    ``charge``; an activity chosen at run time from a dict is not found.
    """
    names = set(_names(fn.__code__))
    scope: dict[str, Any] = dict(fn.__globals__)
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    found = [scope[n] for n in sorted(names) if n in scope]
    modules = [obj for obj in found if isinstance(obj, ModuleType)]
    found += [
        getattr(m, n) for m in modules for n in sorted(names)
        if isinstance(getattr(m, n, None), Activity | Workflow)
    ]
    return found


def describe_registry(
    known: Mapping[str, Workflow[..., Any]], hosted: Mapping[str, Activity[..., Any]] | None
) -> dict[str, Any]:
    """Workflows (with the activities and child workflows their code names) and activities.

    Args:
        known: the workflows the app starts, by name.
        hosted: the activities the app's engine runs; None (a client's app,
            which runs none): those the workflows' code names.
    """
    references = {wf.name: referenced(wf.fn) for wf in known.values()}
    if hosted is None:
        hosted = {r.name: r for refs in references.values() for r in refs if isinstance(r, Activity)}
    activities = {a.name: a for a in hosted.values()}
    workflows = []
    for wf in sorted(known.values(), key=lambda w: w.name):
        refs = references[wf.name]
        workflows.append({
            "name": wf.name,
            "description": _summary(wf.fn),
            **_signature(wf.fn),
            "activities": sorted({r.name for r in refs if isinstance(r, Activity) and r.name in activities}),
            "children": sorted({r.name for r in refs if isinstance(r, Workflow) and r.name in known}),
            "args_schema": args_schema(wf.fn),
        })
    return {
        "workflows": workflows,
        "activities": [
            {"name": a.name, "description": _summary(a.fn), **_signature(a.fn), "task_queue": a.options.task_queue}
            for a in sorted(activities.values(), key=lambda a: a.name)
        ],
    }

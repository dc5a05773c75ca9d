"""The ``@workflow`` and ``@activity`` decorators and the objects they make."""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Self, TypeVar, final, overload

from ..errors import ConfigurationError, InvalidArgumentsError, PayloadError
from ..history.attributes import SearchAttributeValue, check_memo, encode_attributes
from ..history.ids import too_long
from ._options import DEFAULT_RETRY, ActivityCancellationType, ActivityOptions, RetryPolicy

if TYPE_CHECKING:
    from ..history.codec import Codec

__all__ = [
    "ID_REUSE_POLICIES", "MAX_TIME_LIMIT", "PARENT_CLOSE_POLICIES", "Activity", "AsyncActivity", "IdReusePolicy",
    "ParentClosePolicy", "SyncActivity", "Workflow", "activity", "workflow", "workflow_ref",
]

MAX_TIME_LIMIT = 100 * 366 * 86400.0  # a run timeout, execution timeout or start delay: at most 100 years

IdReusePolicy = Literal["allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate"]
IdReusePolicy.__doc__ = """What a start does when its workflow id's run is closed (``with_options(id_reuse_policy=)``).

``"allow_duplicate"``: a new run; ``"allow_duplicate_failed_only"``: a new run
if the closed one failed, was cancelled or terminated; ``"reject_duplicate"``:
IdempotencyError. None (the default): the same input returns the closed run.
"""
ID_REUSE_POLICIES: tuple[IdReusePolicy, ...] = ("allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate")

ParentClosePolicy = Literal["request_cancel", "terminate", "abandon"]
ParentClosePolicy.__doc__ = """What a parent's close does to an open child (``with_options(parent_close_policy=)``).

``"request_cancel"`` (the default): the child is asked to cancel (its code
sees ``CancelledError`` and may clean up); ``"terminate"``: it is closed at
once as terminated, its code not asked; ``"abandon"``: it runs on, on its own.
"""
PARENT_CLOSE_POLICIES: tuple[ParentClosePolicy, ...] = ("request_cancel", "terminate", "abandon")

R = TypeVar("R")
P = ParamSpec("P")

# Per-call activity options: given as keyword arguments to ``retold.execute`` before
# the call sites were typed by the activity's own parameters.
_ACTIVITY_OPTIONS = ("retry", "start_to_close", "schedule_to_close", "heartbeat_timeout", "task_queue",
                     "cancellation_type")


class _Signature:
    """Parameter and return types of a function, resolved once on first use."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.signature = inspect.signature(fn)
        self._hints: dict[str, Any] | None = None
        self._types: dict[int, list[Any]] = {}
        # Positional arguments alone bind as they are when every parameter may
        # be given by position (no ``*args``, ``**kwargs`` or keyword-only):
        # their count between the required and all. None: ask ``inspect``.
        params = list(self.signature.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._positional: tuple[int, int] | None = (
            (sum(p.default is p.empty for p in params), len(params))
            if all(p.kind in positional for p in params) else None)

    @property
    def hints(self) -> dict[str, Any]:
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self._fn)
            except Exception:  # noqa: BLE001 - unresolvable hints decode as Any
                self._hints = {}
        return self._hints

    def param_types(self, count: int) -> list[Any]:
        """The annotated types of ``count`` positional arguments (computed once per count)."""
        types = self._types.get(count)
        if types is None:
            params = list(self.signature.parameters.values())
            types = []
            for i in range(count):
                param = params[min(i, len(params) - 1)] if params else None
                types.append(self.hints.get(param.name, Any) if param is not None else Any)
            if len(self._types) < 64:
                self._types[count] = types
        return types

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``inspect.Signature.bind``'s canonical form; raises TypeError as it does."""
        simple = self._positional
        if simple is not None and not kwargs and simple[0] <= len(args) <= simple[1]:
            return tuple(args), {}
        bound = self.signature.bind(*args, **(kwargs or {}))
        return bound.args, bound.kwargs

    def keyword_type(self, name: str) -> Any:
        """The annotated type of keyword argument ``name`` (that of ``**kwargs`` if not a parameter)."""
        param = self.signature.parameters.get(name)
        if param is None or param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
            var = [p for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD]
            param = var[0] if var else None
        return self.hints.get(param.name, Any) if param is not None else Any

    @property
    def return_type(self) -> Any:
        return self.hints.get("return", Any)

    def bind(
        self, kind: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments in their canonical form: positional where they can be,
        keyword only for keyword-only parameters and those after a skipped default.

        Raises:
            InvalidArgumentsError: they do not fit the signature (the message
                names the argument).
        """
        try:
            return self._bind(args, kwargs)
        except TypeError as exc:
            hint = ""
            wrong = [k for k in kwargs or () if k in _ACTIVITY_OPTIONS and k not in self.signature.parameters]
            if kind == "activity" and wrong:
                hint = f"; per-call options go through {name}.with_options({wrong[0]}=...)"
            elif kind == "workflow" and any(k in ("id", "idempotency_key") for k in kwargs or ()):
                hint = "; start options go through the workflow's .with_options(id=..., idempotency_key=...)"
            raise InvalidArgumentsError(f"{kind} {name!r}: {exc}{hint}") from None

    def check(
        self, kind: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Bind the arguments (:meth:`bind`) and check each against its annotation."""
        args, bound_kwargs = self.bind(kind, name, args, kwargs)
        for i, (value, expected) in enumerate(zip(args, self.param_types(len(args)), strict=True)):
            if not _instance_of(value, expected):
                raise InvalidArgumentsError(
                    f"{kind} {name!r}: argument {i + 1} should be "
                    f"{_type_name(expected)}, got {type(value).__name__} {value!r:.60}"
                )
        for key, value in bound_kwargs.items():
            expected = self.keyword_type(key)
            if not _instance_of(value, expected):
                raise InvalidArgumentsError(
                    f"{kind} {name!r}: argument {key!r} should be "
                    f"{_type_name(expected)}, got {type(value).__name__} {value!r:.60}"
                )
        return args, bound_kwargs

    def encode_input(
        self, codec: Any, kind: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None,
        *, check_types: bool = True,
    ) -> bytes:
        """Check the arguments and encode them as the history records them:
        a list of positional arguments, or ``{"args": [...], "kwargs": {...}}``
        when some must go by keyword.

        ``check_types=False`` only binds them to the signature: an activity's
        values are converted to its parameter types where it runs, and one
        that does not convert fails that activity (as it always has).
        """
        if check_types:
            bound_args, bound_kwargs = self.check(kind, name, tuple(args), kwargs)
        else:
            bound_args, bound_kwargs = self.bind(kind, name, args, kwargs)
        data: bytes = codec.encode(pack_input(bound_args, bound_kwargs))
        return data

    def decode_args(
        self, kind: str, name: str, codec: Codec, data: bytes
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments encoded as ``data`` (see :meth:`encode_input`), each
        decoded into its parameter's type: positional, then keyword.

        The one validator of arguments: a run's first workflow task reads its
        input with it, and every start runs it before anything is stored.
        ``codec.convert`` checks the whole value, so the error names the
        argument and the path of the bad value in it (``$[0].qty``).
        """
        raw = codec.decode(data, Any)
        if not isinstance(raw, list) and not (isinstance(raw, dict) and isinstance(raw.get("args"), list)):
            raise PayloadError(f"{kind} {name!r}: the arguments are not a list but {type(raw).__name__}")
        raw_args, raw_kwargs = unpack_input(raw)
        params = list(self.signature.parameters.values())
        out = []
        for i, (value, expected) in enumerate(zip(raw_args, self.param_types(len(raw_args)), strict=True)):
            try:
                out.append(codec.convert(value, expected))
            except PayloadError as exc:
                param = f" ({params[min(i, len(params) - 1)].name})" if params else ""
                raise PayloadError(f"{kind} {name!r}: argument {i + 1}{param}: {exc}") from exc
        kwargs: dict[str, Any] = {}
        for key, value in raw_kwargs.items():
            try:
                kwargs[key] = codec.convert(value, self.keyword_type(key))
            except PayloadError as exc:
                raise PayloadError(f"{kind} {name!r}: argument {key!r}: {exc}") from exc
        return tuple(out), kwargs

    def validate(
        self, kind: str, name: str, codec: Codec, data: bytes
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """:meth:`decode_args` for a start: the arguments must fit the signature and decode.

        Raises:
            InvalidArgumentsError: naming the argument and the path of the bad value.
        """
        try:
            args, kwargs = self.decode_args(kind, name, codec, data)
        except PayloadError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        try:
            self._bind(args, kwargs)
        except TypeError as exc:
            raise InvalidArgumentsError(f"{kind} {name!r}: {exc}") from None
        return args, kwargs


def pack_input(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Arguments as one payload value: the list of positional arguments, as
    histories have always recorded them, or ``{"args": [...], "kwargs": {...}}``."""
    if not kwargs:
        return list(args)
    return {"args": list(args), "kwargs": dict(kwargs)}


def unpack_input(value: Any) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of a :func:`pack_input` value."""
    if isinstance(value, dict):
        return list(value.get("args", ())), dict(value.get("kwargs", {}))
    return list(value), {}


def _plain(tp: Any) -> bool:
    """``int``, ``float``, ``str``, ``bool``, ``None`` or a union of them."""
    if tp in (int, float, str, bool, None, type(None)):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return all(_plain(arg) for arg in typing.get_args(tp))
    return False


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _instance_of(value: Any, expected: Any) -> bool:
    """A shallow runtime check of ``value`` against an annotation."""
    if expected is Any or expected is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(expected)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_instance_of(value, arg) for arg in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if origin is typing.Annotated:
        return _instance_of(value, typing.get_args(expected)[0])
    target = origin if origin is not None else expected
    if expected is type(None) or expected is None:
        return value is None
    if not isinstance(target, type):
        return True  # TypeVars, NewType, protocols: accept, the codec decides
    if target is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if target is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if target is tuple and isinstance(value, list):
        return True
    try:
        return isinstance(value, target)
    except TypeError:
        return True


class _Definition:
    """What workflows and activities share: a name and a typed signature."""

    name: str
    fn: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any], name: str | None) -> None:
        if name is not None and not name:
            raise ConfigurationError("a workflow or activity name must not be empty")
        self.fn = fn
        self.name = name or fn.__qualname__
        problem = too_long(f"the name of {fn.__qualname__}", self.name)
        if problem:
            raise ConfigurationError(problem)
        self.types = _Signature(fn)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Workflow(_Definition, Generic[P, R]):
    """A workflow definition made by ``@retold.workflow``.

    Call it only through ``engine.start()`` or ``retold.execute_child()``,
    which check their arguments against the function's (positional, keyword,
    keyword-only, defaults), for mypy and at run time.

    Attributes:
        id: the workflow id the next start uses (see :meth:`with_options`).
        idempotency_key: the idempotency key the next start uses.
        id_reuse_policy: what the next start does if its id's run is closed.
        parent_close_policy: started as a child, what its parent's close does
            to it while it is open.
        search_attributes: the search attributes the next start sets (stored
            forms, ``retold.history.attributes``).
        memo: the memo the next start sets.
        signals: the declared type of each signal, by name (``signals=`` of
            ``@retold.workflow``).
    """

    id: str | None = None
    idempotency_key: str | None = None
    id_reuse_policy: IdReusePolicy | None = None
    parent_close_policy: ParentClosePolicy | None = None
    reference: bool = False  # made by retold.workflow_ref: a name, no code
    run_timeout: float | None = None
    execution_timeout: float | None = None
    start_delay: float | None = None
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None

    def __init__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], name: str | None,
        signals: Mapping[str, Any] | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"@workflow needs an async def function, got {fn!r}"
            )
        super().__init__(fn, name)
        self.signals: dict[str, Any] = {}
        for signal, type_ in (signals or {}).items():
            if not isinstance(signal, str) or not signal:
                raise ConfigurationError(
                    f"@workflow {self.name!r}: signals= maps signal names (non-empty strings) to "
                    f"types, got the key {signal!r}"
                )
            if not (isinstance(type_, type) or typing.get_origin(type_) is not None or type_ is Any):
                raise ConfigurationError(
                    f"@workflow {self.name!r}: the type of signal {signal!r} must be a type "
                    f"(int, a dataclass, list[str], ...), got {type_!r}"
                )
            self.signals[signal] = type_

    def with_options(
        self, *, id: str | None = None, idempotency_key: str | None = None,  # noqa: A002 - the public name
        id_reuse_policy: IdReusePolicy | None = None, run_timeout: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None, start_delay: timedelta | float | None = None,
        parent_close_policy: ParentClosePolicy | None = None,
        search_attributes: Mapping[str, SearchAttributeValue] | None = None, memo: Mapping[str, Any] | None = None,
    ) -> Workflow[P, R]:
        """This workflow with start options, for ``engine.start`` and ``retold.start_child``::

            await engine.start(checkout.with_options(id="order-42"), "order-42", 500)

        Args:
            id: the workflow id (starting again with it returns the same run).
            idempotency_key: a key that makes the start idempotent.
            id_reuse_policy: what a start (``engine.start``, ``signal_with_start``)
                does when the id's run is closed: ``"allow_duplicate"`` starts
                a new run, ``"allow_duplicate_failed_only"`` only if that run
                failed, was cancelled or terminated, ``"reject_duplicate"``
                raises IdempotencyError. Default (None): the same input returns
                the closed run, other input raises IdempotencyError.
            run_timeout: the run closes as ``timed_out`` this long after it
                started (each run of a continue-as-new chain anew).
            execution_timeout: the same, counted from the first start, across
                continue-as-new.
            start_delay: the run's code starts this long after the start
                (signals sent meanwhile wait for it).
            parent_close_policy: for a child (``retold.start_child``,
                ``retold.execute_child``), what its parent's close does to it
                while it is open: ``"request_cancel"`` (the default) asks it
                to cancel, ``"terminate"`` closes it at once, ``"abandon"``
                leaves it running.
            search_attributes: the run's search attributes, which lists
                filter runs by (str, int, float, bool or aware datetime
                values; docs/finding-runs.md).
            memo: JSON values kept with the run and returned by ``describe``
                (never searched).

        Raises:
            ConfigurationError: a bad option.
            InvalidArgumentsError: a bad search attribute name or value, or a
                memo that is not a dict of JSON values.
        """
        if id_reuse_policy is not None and id_reuse_policy not in ID_REUSE_POLICIES:
            raise ConfigurationError(
                f"id_reuse_policy must be one of {', '.join(map(repr, ID_REUSE_POLICIES))} (or None), "
                f"not {id_reuse_policy!r}")
        if parent_close_policy is not None and parent_close_policy not in PARENT_CLOSE_POLICIES:
            raise ConfigurationError(
                f"parent_close_policy must be one of {', '.join(map(repr, PARENT_CLOSE_POLICIES))} (or None), "
                f"not {parent_close_policy!r}")
        clone = copy.copy(self)  # the id and key are checked when the start uses them
        if parent_close_policy is not None:
            clone.parent_close_policy = parent_close_policy
        clone.id = id if id is not None else self.id
        clone.idempotency_key = idempotency_key if idempotency_key is not None else self.idempotency_key
        clone.id_reuse_policy = id_reuse_policy if id_reuse_policy is not None else self.id_reuse_policy
        for name, value in (("run_timeout", run_timeout), ("execution_timeout", execution_timeout),
                            ("start_delay", start_delay)):
            if value is None:
                continue
            seconds = value.total_seconds() if isinstance(value, timedelta) else value
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0 \
                    or seconds > MAX_TIME_LIMIT:
                raise ConfigurationError(f"{name} must be a positive timedelta or number of seconds (at most 100 "
                                         f"years), got {value!r}")
            setattr(clone, name, float(seconds))
        if search_attributes is not None:
            encoded = encode_attributes(search_attributes)
            clone.search_attributes = {name: value for name, value in encoded.items() if value is not None}
        if memo is not None:
            clone.memo = check_memo(memo)
        return clone

    def same(self, other: object) -> bool:
        """Whether ``other`` is this workflow (perhaps with other start options)."""
        return isinstance(other, Workflow) and other.fn is self.fn and other.name == self.name


class Activity(_Definition, Generic[P, R]):
    """An activity definition made by ``@retold.activity``.

    Attributes:
        options: the activity's default options.
        is_async: whether the function is ``async def``.
    """

    def __init__(self, fn: Callable[P, Any], name: str | None, options: ActivityOptions) -> None:
        super().__init__(fn, name)
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        start_to_close: timedelta | float | None = None,
        schedule_to_close: timedelta | float | None = None,
        heartbeat_timeout: timedelta | float | None = None,
        task_queue: str | None = None,
        cancellation_type: ActivityCancellationType | None = None,
    ) -> Self:
        """This activity with some options replaced, for one ``retold.execute`` call::

            await retold.execute(charge.with_options(start_to_close=30), order_id, cents)
        """
        clone = copy.copy(self)
        clone.options = self.options.merge(
            retry=retry, start_to_close=start_to_close, schedule_to_close=schedule_to_close,
            heartbeat_timeout=heartbeat_timeout, task_queue=task_queue, cancellation_type=cancellation_type,
        )
        return clone


@final
class AsyncActivity(Activity[P, R]):
    """An activity made from an ``async def`` function."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function directly, outside any workflow (for tests)."""
        result: R = await self.fn(*args, **kwargs)
        return result


@final
class SyncActivity(Activity[P, R]):
    """An activity made from a plain function; the engine runs it in a thread."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function directly, outside any workflow (for tests)."""
        result: R = self.fn(*args, **kwargs)
        return result


@overload
def workflow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *, name: str | None = None, signals: Mapping[str, Any] | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]: ...
def workflow(
    fn: Any = None, /, *, name: str | None = None, signals: Mapping[str, Any] | None = None
) -> Any:
    """Mark an ``async def`` function as a workflow.

    Use bare (``@retold.workflow``) or with a name
    (``@retold.workflow(name="checkout")``); the default name is the
    function's qualified name. The name is what the history records, so keep
    it stable across deploys.

    ``signals={"approve": bool}`` declares the type of each signal's value:
    ``signal()`` then refuses a value that does not decode as that type
    (nothing is written), and ``retold.wait_signal(name)`` decodes into it.
    """
    if fn is None:
        return lambda f: Workflow(f, name, signals)
    return Workflow(fn, name, signals)


def workflow_ref(name: str) -> Workflow[..., Any]:
    """A workflow known by name only, for code that does not import it (it runs on other workers)::

        await retold.execute_child(retold.workflow_ref("resize").with_options(id=...), image, 128)
        await engine.start(retold.workflow_ref("nightly_report"), "2026-11-29")

    Its arguments are recorded as given (JSON values), not checked against a
    signature: the engine that runs it decodes them into its parameters'
    types, and a run whose input does not fit fails there. Results come
    back as plain JSON values. Do not host it: it has no code.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"retold.workflow_ref() needs a workflow's name, got {name!r}")

    async def by_name(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError(
            f"workflow {name!r} was given by name only (retold.workflow_ref): it has no code to run here; "
            f"host the @retold.workflow itself")

    by_name.__qualname__ = by_name.__name__ = name
    ref: Workflow[..., Any] = Workflow(by_name, name)
    ref.reference = True
    return ref


class _ActivityDecorator:
    def __init__(self, name: str | None, options: ActivityOptions) -> None:
        self._name = name
        self._options = options

    @overload
    def __call__(  # type: ignore[overload-overlap]  # async first: its R is the awaited type
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncActivity[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncActivity[P, R]: ...
    def __call__(self, fn: Any, /) -> Any:
        if inspect.iscoroutinefunction(fn):
            return AsyncActivity(fn, self._name, self._options)
        if not callable(fn):
            raise ConfigurationError(f"@activity needs a function, got {fn!r}")
        return SyncActivity(fn, self._name, self._options)


@overload
def activity(  # type: ignore[overload-overlap]  # async first: its R is the awaited type
    fn: Callable[P, Coroutine[Any, Any, R]], /
) -> AsyncActivity[P, R]: ...
@overload
def activity(fn: Callable[P, R], /) -> SyncActivity[P, R]: ...
@overload
def activity(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    task_queue: str = "default",
    cancellation_type: ActivityCancellationType = "try_cancel",
) -> _ActivityDecorator: ...
def activity(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    task_queue: str = "default",
    cancellation_type: ActivityCancellationType = "try_cancel",
) -> Any:
    """Mark a function as an activity: work with side effects, run at least once.

    ``async def`` activities run on the engine's event loop; plain functions
    run in a worker thread.

    Args:
        fn: the function, when used bare (``@retold.activity``).
        name: the registered name; defaults to the qualified function name.
        retry: the retry policy (default: unlimited attempts, 1 s doubling to 100 s).
        start_to_close: limit on each attempt.
        schedule_to_close: limit on all attempts together.
        heartbeat_timeout: fail an attempt silent for this long.
        task_queue: the queue whose workers run it.
        cancellation_type: what workflow code that stops waiting for it does
            to it: ``"try_cancel"`` (withdraw it and tell a running attempt),
            ``"wait_cancellation_completed"`` (the same, and the wait ends only
            once the attempt has ended) or ``"abandon"`` (leave it running;
            see ``retold.ActivityCancellationType``).
    """
    options = ActivityOptions(
        retry=retry or DEFAULT_RETRY,
        start_to_close=start_to_close,
        schedule_to_close=schedule_to_close,
        heartbeat_timeout=heartbeat_timeout,
        task_queue=task_queue,
        cancellation_type=cancellation_type,
    )
    decorator = _ActivityDecorator(name, options)
    if fn is None:
        return decorator
    return decorator(fn)

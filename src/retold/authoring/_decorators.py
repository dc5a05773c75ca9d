"""The ``@workflow`` and ``@activity`` decorators and the objects they make."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, TypeVarTuple, final, overload

from ..errors import ConfigurationError, InvalidArgumentsError, PayloadError
from ._options import DEFAULT_RETRY, ActivityOptions, RetryPolicy

if TYPE_CHECKING:
    from ..history.codec import Codec

__all__ = ["Activity", "AsyncActivity", "SyncActivity", "Workflow", "activity", "workflow"]

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class _Signature:
    """Parameter and return types of a function, resolved once on first use."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.signature = inspect.signature(fn)
        self._hints: dict[str, Any] | None = None

    @property
    def hints(self) -> dict[str, Any]:
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self._fn)
            except Exception:  # noqa: BLE001 - unresolvable hints decode as Any
                self._hints = {}
        return self._hints

    def param_types(self, count: int) -> list[Any]:
        params = list(self.signature.parameters.values())
        types: list[Any] = []
        for i in range(count):
            param = params[min(i, len(params) - 1)] if params else None
            types.append(self.hints.get(param.name, Any) if param is not None else Any)
        return types

    @property
    def return_type(self) -> Any:
        return self.hints.get("return", Any)

    def check(self, kind: str, name: str, args: tuple[Any, ...]) -> None:
        try:
            self.signature.bind(*args)
        except TypeError as exc:
            raise InvalidArgumentsError(f"{kind} {name!r}: {exc}") from None
        for i, (value, expected) in enumerate(zip(args, self.param_types(len(args)), strict=True)):
            if not _instance_of(value, expected):
                raise InvalidArgumentsError(
                    f"{kind} {name!r}: argument {i + 1} should be "
                    f"{_type_name(expected)}, got {type(value).__name__} {value!r:.60}"
                )


    def decode_args(self, kind: str, name: str, codec: Codec, data: bytes) -> tuple[Any, ...]:
        """The arguments encoded as ``data``, each decoded into its parameter's type.

        The one validator of arguments: a run's first workflow task reads its
        input with it, and every start runs it before anything is stored.
        ``codec.convert`` checks the whole value, so the error names the
        argument and the path of the bad value in it (``$[0].qty``).
        """
        raw = codec.decode(data, list[Any])
        if not isinstance(raw, list):
            raise PayloadError(f"{kind} {name!r}: the arguments are not a list but {type(raw).__name__}")
        params = list(self.signature.parameters.values())
        out = []
        for i, (value, expected) in enumerate(zip(raw, self.param_types(len(raw)), strict=True)):
            try:
                out.append(codec.convert(value, expected))
            except PayloadError as exc:
                param = f" ({params[min(i, len(params) - 1)].name})" if params else ""
                raise PayloadError(f"{kind} {name!r}: argument {i + 1}{param}: {exc}") from exc
        return tuple(out)

    def validate(self, kind: str, name: str, codec: Codec, data: bytes) -> tuple[Any, ...]:
        """:meth:`decode_args` for a start: the arguments must fit the signature and decode.

        Raises:
            InvalidArgumentsError: naming the argument and the path of the bad value.
        """
        try:
            args = self.decode_args(kind, name, codec, data)
        except PayloadError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        try:
            self.signature.bind(*args)
        except TypeError as exc:
            raise InvalidArgumentsError(f"{kind} {name!r}: {exc}") from None
        return args


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
        self.types = _Signature(fn)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Workflow(_Definition, Generic[*Ts, R]):
    """A workflow definition made by ``@retold.workflow``.

    Call it only through ``engine.start()`` or ``retold.execute_child()``.
    """

    def __init__(self, fn: Callable[[*Ts], Coroutine[Any, Any, R]], name: str | None) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"@workflow needs an async def function, got {fn!r}"
            )
        super().__init__(fn, name)


class Activity(_Definition, Generic[*Ts, R]):
    """An activity definition made by ``@retold.activity``.

    Attributes:
        options: the activity's default options.
        is_async: whether the function is ``async def``.
    """

    def __init__(self, fn: Callable[[*Ts], Any], name: str | None, options: ActivityOptions) -> None:
        super().__init__(fn, name)
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)


@final
class AsyncActivity(Activity[*Ts, R]):
    """An activity made from an ``async def`` function."""

    async def __call__(self, *args: *Ts) -> R:
        """Run the function directly, outside any workflow (for tests)."""
        result: R = await self.fn(*args)
        return result


@final
class SyncActivity(Activity[*Ts, R]):
    """An activity made from a plain function; the engine runs it in a thread."""

    def __call__(self, *args: *Ts) -> R:
        """Run the function directly, outside any workflow (for tests)."""
        result: R = self.fn(*args)
        return result


@overload
def workflow(fn: Callable[[*Ts], Coroutine[Any, Any, R]], /) -> Workflow[*Ts, R]: ...
@overload
def workflow(
    *, name: str | None = None
) -> Callable[[Callable[[*Ts], Coroutine[Any, Any, R]]], Workflow[*Ts, R]]: ...
def workflow(fn: Any = None, /, *, name: str | None = None) -> Any:
    """Mark an ``async def`` function as a workflow.

    Use bare (``@retold.workflow``) or with a name
    (``@retold.workflow(name="checkout")``); the default name is the
    function's qualified name. The name is what the history records, so keep
    it stable across deploys.
    """
    if fn is None:
        return lambda f: Workflow(f, name)
    return Workflow(fn, name)


class _ActivityDecorator:
    def __init__(self, name: str | None, options: ActivityOptions) -> None:
        self._name = name
        self._options = options

    @overload
    def __call__(  # type: ignore[overload-overlap]  # async first: its R is the awaited type
        self, fn: Callable[[*Ts], Coroutine[Any, Any, R]], /
    ) -> AsyncActivity[*Ts, R]: ...
    @overload
    def __call__(self, fn: Callable[[*Ts], R], /) -> SyncActivity[*Ts, R]: ...
    def __call__(self, fn: Any, /) -> Any:
        if inspect.iscoroutinefunction(fn):
            return AsyncActivity(fn, self._name, self._options)
        if not callable(fn):
            raise ConfigurationError(f"@activity needs a function, got {fn!r}")
        return SyncActivity(fn, self._name, self._options)


@overload
def activity(  # type: ignore[overload-overlap]  # async first: its R is the awaited type
    fn: Callable[[*Ts], Coroutine[Any, Any, R]], /
) -> AsyncActivity[*Ts, R]: ...
@overload
def activity(fn: Callable[[*Ts], R], /) -> SyncActivity[*Ts, R]: ...
@overload
def activity(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close: timedelta | None = None,
    schedule_to_close: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    task_queue: str = "default",
) -> _ActivityDecorator: ...
def activity(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close: timedelta | None = None,
    schedule_to_close: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    task_queue: str = "default",
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
    """
    options = ActivityOptions(
        retry=retry or DEFAULT_RETRY,
        start_to_close=start_to_close,
        schedule_to_close=schedule_to_close,
        heartbeat_timeout=heartbeat_timeout,
        task_queue=task_queue,
    )
    decorator = _ActivityDecorator(name, options)
    if fn is None:
        return decorator
    return decorator(fn)

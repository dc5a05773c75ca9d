"""Arguments bind to a signature exactly as ``inspect.Signature.bind`` binds them, fast path or not."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retold.authoring._decorators import _Signature
from retold.errors import InvalidArgumentsError


def plain(a: int, b: int, c: int = 3) -> None: ...
def no_params() -> None: ...
def positional_only(a: int, /, b: int = 2) -> None: ...
def var_args(a: int, *rest: int) -> None: ...
def keyword_only(a: int, *, b: int = 2) -> None: ...
def var_keywords(a: int, b: int = 2, **more: int) -> None: ...
def all_kinds(a: int, /, b: int, c: int = 3, *rest: int, d: int = 4, **more: int) -> None: ...


FUNCTIONS = [plain, no_params, positional_only, var_args, keyword_only, var_keywords, all_kinds]


def _expected(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | str:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return bound.args, bound.kwargs


@given(fn=st.sampled_from(FUNCTIONS), count=st.integers(0, 5),
       names=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "rest", "more"]), unique=True, max_size=3))
def test_binding_matches_inspect(fn: Any, count: int, names: list[str]) -> None:
    args = tuple(range(10, 10 + count))
    kwargs = {name: i for i, name in enumerate(names)}
    expected = _expected(fn, args, kwargs)
    signature = _Signature(fn)
    if isinstance(expected, str):
        with pytest.raises(InvalidArgumentsError) as info:
            signature.bind("activity", fn.__name__, args, kwargs)
        assert expected in str(info.value)
    else:
        assert signature.bind("activity", fn.__name__, args, kwargs) == expected


@pytest.mark.parametrize("args", [(1,), (1, 2, 3, 4)])
def test_a_wrong_count_of_positional_arguments_is_refused_on_the_fast_path(args: tuple[int, ...]) -> None:
    with pytest.raises(InvalidArgumentsError, match="argument"):
        _Signature(plain).bind("workflow", "plain", args)


def test_types_per_count_are_the_annotations() -> None:
    signature = _Signature(var_args)
    assert signature.param_types(3) == [int, int, int]
    assert signature.param_types(3) is signature.param_types(3)  # computed once

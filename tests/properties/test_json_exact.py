"""Fuzz: any JSON value the API accepts round-trips through the codec exactly.

A client's JSON (a signal value, an argument) is parsed at the HTTP edge with
:func:`retold.history.codec.parse_json`, encoded by the codec into the
history and decoded for the workflow. Every step must keep the value as it
was sent: an integer stays an integer of the same value (never a float), a
float keeps its bits, a string its characters. Integers the codec cannot
carry (outside -2**63..2**64-1) are refused with a PayloadError, never rounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest

import retold
from retold.history.codec import MAX_JSON_INT, MIN_JSON_INT, parse_json

EDGES = [MAX_JSON_INT, MAX_JSON_INT + 1, MIN_JSON_INT, MIN_JSON_INT - 1, 2**53 + 1, 2**63, 2**100, -(2**100)]

scalars = (
    st.none() | st.booleans()
    | st.integers() | st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(EDGES)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)


def same_json(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def any_int(value: Any, test: Callable[[int], bool]) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return test(value)
    if isinstance(value, list):
        return any(any_int(v, test) for v in value)
    if isinstance(value, dict):
        return any(any_int(v, test) for v in value.values())
    return False


def out_of_range(n: int) -> bool:
    return not MIN_JSON_INT <= n <= MAX_JSON_INT


@hypothesis.settings(max_examples=400, deadline=None, database=None)
@hypothesis.given(value=json_values, ensure_ascii=st.booleans())
def test_any_json_value_the_api_accepts_round_trips_exactly(value: Any, ensure_ascii: bool) -> None:
    sent = json.dumps(value, ensure_ascii=ensure_ascii)
    codec = retold.JsonCodec()
    if any_int(value, out_of_range):
        # Refused, naming the problem, on the way in and on the way out: never rounded.
        with pytest.raises(retold.PayloadError, match="outside the range"):
            parse_json(sent.encode())
        with pytest.raises(retold.PayloadError, match="2\\*\\*64-1"):
            codec.encode(value)
        return
    parsed = parse_json(sent.encode())
    assert same_json(parsed, value)
    assert same_json(parse_json(sent), value)  # text as well as bytes
    # As the engine stores an argument or a signal value, and as a workflow reads it back.
    assert same_json(codec.decode(codec.encode(parsed)), value)
    assert same_json(codec.decode(codec.encode([parsed]))[0], value)


def test_the_fuzzer_reaches_both_sides_of_the_range() -> None:
    # Not a tautology: the edges are in the strategy, and each side is decided exactly.
    codec = retold.JsonCodec()
    for n in (MAX_JSON_INT, MIN_JSON_INT, 2**53 + 1):
        assert same_json(codec.decode(codec.encode(parse_json(str(n).encode()))), n)
    for n in (MAX_JSON_INT + 1, MIN_JSON_INT - 1, 2**100):
        with pytest.raises(retold.PayloadError, match="outside the range"):
            parse_json(json.dumps({"value": [n]}).encode())
    with pytest.raises(retold.PayloadError, match="outside the range"):
        codec.decode(b"[1267650600228229401496703205376]")

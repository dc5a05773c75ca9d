"""Every type the JSON codec accepts comes back as the annotated type (issue 18, item 8)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import retold
from retold.history.codec import JsonCodec
from tests.conftest import EngineFactory


class Fruit(enum.IntEnum):
    APPLE = 1
    BANANA = 2
    CHERRY = 3


class Colour(enum.StrEnum):
    RED = "red"
    YELLOW = "yellow"


class Size(enum.Enum):
    SMALL = (1, "s")
    LARGE = (3, "l")


class Mode(int, enum.Enum):
    FAST = 10
    SLOW = 20


class Perm(enum.IntFlag):
    READ = 1
    WRITE = 2


class Shade(enum.Flag):
    LIGHT = 1
    DARK = 2


@dataclass(frozen=True)
class Basket:
    fruit: Fruit
    colour: Colour
    size: Size
    count: int
    price: Decimal
    picked: datetime
    id: uuid.UUID


class Order(pydantic.BaseModel):
    basket: list[Fruit]
    colours: dict[Colour, int]
    note: str


def _roundtrip(value: Any, type_: Any) -> Any:
    codec = JsonCodec()
    return codec.decode(codec.encode(value), type_)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (1 == Fruit.APPLE is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            _same(k1, k2) and _same(a[k1], b[k2]) for k1, k2 in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set | frozenset):
        return a == b and {type(x) for x in a} == {type(y) for y in b}
    return bool(a == b)


def test_each_kind_of_enum_keeps_its_type() -> None:
    for value, type_ in [
        (Fruit.BANANA, Fruit), (Colour.RED, Colour), (Size.LARGE, Size), (Mode.SLOW, Mode),
        (Perm.READ | Perm.WRITE, Perm), ({Fruit.APPLE: Colour.RED}, dict[Fruit, Colour]),
        ([Fruit.CHERRY], list[Fruit]), ((Colour.YELLOW, Size.SMALL), tuple[Colour, Size]),
    ]:
        back = _roundtrip(value, type_)
        assert _same(back, value), (value, back)


def test_a_union_with_enums_takes_the_first_member_that_accepts_the_value() -> None:
    # cattrs alone refused a union of two enums, and read Fruit | int as a plain int.
    for value, type_ in [
        (Fruit.APPLE, Fruit | Colour), (Colour.RED, Fruit | Colour), (Colour.RED, Fruit | Colour | None),
        (None, Fruit | Colour | None), (Fruit.APPLE, Fruit | int), (5, Fruit | int),
        (Shade.LIGHT | Shade.DARK, Shade | None), ([Colour.YELLOW], list[Fruit | Colour]),
    ]:
        back = _roundtrip(value, type_)
        assert _same(back, value), (type_, value, back)
    codec = JsonCodec()
    with pytest.raises(retold.PayloadError, match=r"'blue' is not a value of any of Fruit \| Colour \| None"):
        codec.decode(b'"blue"', Fruit | Colour | None)
    with pytest.raises(retold.PayloadError, match="'blue' is not a value of Fruit"):
        codec.decode(b'"blue"', Fruit | None)


def test_a_value_outside_the_enum_is_refused_naming_the_values() -> None:
    codec = JsonCodec()
    with pytest.raises(retold.PayloadError, match=r"7 is not a value of Fruit \(values: 1, 2, 3\)"):
        codec.decode(b"7", Fruit)
    with pytest.raises(retold.PayloadError, match="'blue' is not a value of Colour"):
        codec.decode(b'"blue"', Colour)
    with pytest.raises(retold.PayloadError, match="True is not a value of Fruit"):
        codec.decode(b"true", Fruit)


_aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # JSON numbers retold accepts
_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4)
_baskets = st.builds(
    Basket, fruit=st.sampled_from(Fruit), colour=st.sampled_from(Colour), size=st.sampled_from(Size),
    count=_ints, price=_decimals, picked=_aware, id=st.uuids(),
)
_orders = st.builds(
    Order, basket=st.lists(st.sampled_from(Fruit), max_size=4),
    colours=st.dictionaries(st.sampled_from(Colour), _ints, max_size=2), note=st.text(max_size=8),
)

# (strategy, annotated type) pairs; nested containers are built over them below.
_LEAVES: list[tuple[st.SearchStrategy[Any], Any]] = [
    (st.sampled_from(Fruit), Fruit),
    (st.sampled_from(Colour), Colour),
    (st.sampled_from(Size), Size),
    (st.sampled_from(Mode), Mode),
    (st.sampled_from([*Perm, Perm(0), Perm.READ | Perm.WRITE]), Perm),
    (st.sampled_from([*Shade, Shade(0), Shade.LIGHT | Shade.DARK]), Shade),
    (st.one_of(st.sampled_from(Fruit), st.sampled_from(Colour)), Fruit | Colour),
    (_baskets, Basket),
    (_orders, Order),
    (_aware, datetime),
    (st.dates(), date),
    (st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=900)).map(
        lambda d: timedelta(milliseconds=d // timedelta(milliseconds=1))), timedelta),
    (st.uuids(), uuid.UUID),
    (_decimals, Decimal),
    (_ints, int),
    (st.text(max_size=10), str),
    (st.booleans(), bool),
]


def _of(origin: Any, *args: Any) -> Any:
    """``origin[args]`` built at run time (``list[int]``, ``dict[Fruit, str]``)."""
    return origin[args if len(args) > 1 else args[0]]


@st.composite
def _typed_values(draw: st.DrawFn, depth: int = 2) -> tuple[Any, Any]:
    strategy, type_ = draw(st.sampled_from(_LEAVES))
    if depth == 0:
        return draw(strategy), type_
    shape = draw(st.sampled_from(["leaf", "list", "tuple", "dict", "str_dict", "optional", "set", "union"]))
    if shape == "leaf":
        return draw(strategy), type_
    if shape == "set":
        hashable = draw(st.sampled_from([(st.sampled_from(Fruit), Fruit), (st.uuids(), uuid.UUID),
                                         (st.sampled_from(Colour), Colour), (_ints, int)]))
        return draw(st.frozensets(hashable[0], max_size=3)), _of(frozenset, hashable[1])
    inner, inner_type = draw(_typed_values(depth - 1))
    if shape == "list":
        return [inner], _of(list, inner_type)
    if shape == "tuple":
        return (inner, inner), _of(tuple, inner_type, inner_type)
    if shape == "optional":
        return draw(st.sampled_from([inner, None])), inner_type | None
    if shape == "union":  # an enum first, then the inner type: a value of either comes back as itself
        # (Size's JSON form, [1, "s"], is no other value's: the union is not ambiguous.)
        if draw(st.booleans()):
            return draw(st.sampled_from(Size)), Size | inner_type
        return inner, Size | inner_type
    keys = draw(st.sampled_from([(st.sampled_from(Fruit), Fruit), (st.sampled_from(Colour), Colour),
                                 (_ints, int), (st.text(max_size=5), str)]))
    if shape == "str_dict":
        keys = (st.text(max_size=5), str)
    return draw(st.dictionaries(keys[0], st.just(inner), max_size=3)), _of(dict, keys[1], inner_type)


@settings(max_examples=300, deadline=None)
@given(_typed_values())
def test_every_supported_type_roundtrips_to_the_annotated_type(case: tuple[Any, Any]) -> None:
    value, type_ = case
    back = _roundtrip(value, type_)
    assert _same(back, value), (type_, value, back)


# -- end to end: Temporal's sample that picks a fruit by enum ------------------------------


@retold.activity
async def favourite(name: str) -> Fruit:
    return Fruit.CHERRY if name == "ann" else Fruit.APPLE


@retold.activity
async def describe_fruit(fruit: Fruit) -> str:
    if not isinstance(fruit, Fruit):
        raise ValueError(f"Unrecognized fruit: {fruit!r}")
    return f"{fruit.name.lower()} ({type(fruit).__name__})"


@retold.workflow
async def pick_fruit(name: str, colour: Colour) -> tuple[Fruit, Colour, str]:
    fruit = await retold.execute(favourite, name)
    assert isinstance(fruit, Fruit), f"workflow got {fruit!r}"
    assert isinstance(colour, Colour), f"workflow got {colour!r}"
    return fruit, colour, await retold.execute(describe_fruit, fruit)


@pytest.mark.anyio
async def test_enums_reach_activities_workflows_and_callers_as_enums(make_engine: EngineFactory) -> None:
    async with make_engine([pick_fruit], [favourite, describe_fruit]) as engine:
        run = await engine.start(pick_fruit.with_options(id="fruit-1"), "ann", Colour.RED)
        fruit, colour, text = await run.result(timeout=60)
    assert (fruit, colour, text) == (Fruit.CHERRY, Colour.RED, "cherry (Fruit)")
    assert type(fruit) is Fruit
    assert type(colour) is Colour


_FRUIT_OR_COLOUR: Any = Fruit | Colour  # wait_signal's type= is typed as a class


@retold.workflow
async def fruit_stall() -> list[Fruit]:
    picked: list[Fruit] = []

    def last() -> Fruit | None:
        return picked[-1] if picked else None

    def stocks(fruit: Fruit) -> str:  # an HTTP caller sends the JSON value, 2
        return f"{type(fruit).__name__}.{fruit.name}"

    retold.set_query_handler("last", last)
    retold.set_query_handler("stocks", stocks)
    while len(picked) < 2:
        fruit = await retold.wait_signal("pick", _FRUIT_OR_COLOUR)
        assert isinstance(fruit, Fruit), f"workflow got {fruit!r}"
        picked.append(fruit)
    return picked


@pytest.mark.anyio
async def test_enums_reach_signals_and_queries_as_enums(make_engine: EngineFactory) -> None:
    async with make_engine([fruit_stall], []) as engine:
        run = await engine.start(fruit_stall.with_options(id="stall-1"))
        await run.signal("pick", Fruit.BANANA)
        with anyio.fail_after(60):
            while (last := await run.query("last")) is None:
                await anyio.sleep(0.05)
        assert type(last) is Fruit  # the handler's return annotation
        assert last is Fruit.BANANA
        assert await run.query("stocks", 2) == "Fruit.BANANA"  # its parameter's annotation
        with pytest.raises(retold.QueryError, match=r"argument 'fruit'.*7 is not a value of Fruit"):
            await run.query("stocks", 7)
        await run.signal("pick", 3)
        assert await run.result(timeout=60) == [Fruit.BANANA, Fruit.CHERRY]

"""Payloads: JSON decoded into annotated types; cloudpickle only when asked."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pydantic
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclass(frozen=True)
class Customer:
    id: uuid.UUID
    tier: Tier
    since: datetime
    balance: Decimal


class Invoice(pydantic.BaseModel):
    number: int
    customer: str
    lines: list[str]


@retold.activity
async def upgrade(customer: Customer) -> Customer:
    assert isinstance(customer.id, uuid.UUID)
    return Customer(customer.id, Tier.GOLD, customer.since, customer.balance + Decimal("1.10"))


@retold.activity
async def bill(customer: Customer, lines: tuple[str, ...]) -> Invoice:
    assert isinstance(lines, tuple)
    return Invoice(number=7, customer=str(customer.id), lines=list(lines))


@retold.workflow
async def typed(customer: Customer) -> tuple[Customer, Invoice]:
    assert isinstance(customer.since, datetime)
    upgraded = await retold.execute(upgrade, customer)
    assert upgraded.tier is Tier.GOLD
    invoice = await retold.execute(bill, upgraded, ("a", "b"))
    assert isinstance(invoice, Invoice)
    return upgraded, invoice


CUSTOMER = Customer(uuid.uuid4(), Tier.SILVER, datetime(2026, 1, 2, 3, 4, tzinfo=UTC), Decimal("10.00"))


async def test_json_payloads_come_back_as_their_annotated_types(make_engine: EngineFactory) -> None:
    async with make_engine([typed], [upgrade, bill]) as engine:
        run = await engine.start(typed, CUSTOMER)
        upgraded, invoice = await run.result(timeout=10)
    assert upgraded == Customer(CUSTOMER.id, Tier.GOLD, CUSTOMER.since, Decimal("11.10"))
    assert invoice == Invoice(number=7, customer=str(CUSTOMER.id), lines=["a", "b"])


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


@retold.workflow
async def opaque(o: Opaque) -> Opaque:
    return Opaque(o.value + 1)


async def test_pickle_codec_is_opt_in(make_engine: EngineFactory) -> None:
    async with make_engine([opaque]) as engine:
        with pytest.raises(retold.PayloadError):
            await engine.start(opaque, Opaque(1))
    async with make_engine([opaque], codec=retold.PickleCodec(), url="memory://") as engine:
        run = await engine.start(opaque, Opaque(1))
        assert (await run.result(timeout=10)).value == 2


def test_json_codec_errors_name_the_problem() -> None:
    codec = retold.JsonCodec()
    with pytest.raises(retold.PayloadError, match="not valid JSON"):
        codec.decode(b"{nope")
    with pytest.raises(retold.PayloadError, match="cannot decode 'x' as int"):
        codec.decode(b'"x"', int)
    assert codec.decode(codec.encode({"a": [1, 2]})) == {"a": [1, 2]}


@retold.activity
def returns_nothing() -> None:
    return None


@retold.workflow
async def uses_none() -> str:
    await retold.execute(returns_nothing)  # its None result decodes as None
    return "ok"


async def test_none_results(make_engine: EngineFactory) -> None:
    async with make_engine([uses_none], [returns_nothing]) as engine:
        run = await engine.start(uses_none)
        assert await run.result(timeout=10) == "ok"
        completed = [e for e in await run.history() if e.type == "ActivityCompleted"]
        assert [getattr(e, "result", None) for e in completed] == [b"null"]


@retold.workflow
async def typed_signal() -> str:
    customer = await retold.wait_signal("customer", Customer)
    assert isinstance(customer, Customer)
    assert isinstance(customer.since, datetime)
    return f"{customer.tier.value} since {customer.since.year}"


async def test_signal_values_decode_into_the_requested_type(make_engine: EngineFactory) -> None:
    async with make_engine([typed_signal]) as engine:
        run = await engine.start(typed_signal)
        await run.signal("customer", CUSTOMER)
        assert await run.result(timeout=10) == "silver since 2026"


@retold.workflow
async def returns_garbage() -> object:
    return object()


async def test_a_result_the_codec_cannot_encode_fails_the_run(make_engine: EngineFactory) -> None:
    async with make_engine([returns_garbage]) as engine:
        run = await engine.start(returns_garbage)
        with pytest.raises(retold.WorkflowFailedError, match="cannot encode object") as info:
            await run.result(timeout=10)
    cause = info.value.__cause__
    assert isinstance(cause, retold.ApplicationError)
    assert cause.type == "retold.errors.PayloadError"


@pytest.mark.parametrize(
    ("value", "type_", "message"),
    [
        (1.5, int, "expected an integer"),
        (True, int, "expected an integer"),
        ("false", bool, "expected true or false"),
        (5, str, "expected a string"),
        (False, float, "expected a number"),
        ({"id": str(uuid.uuid4()), "tier": "gold", "since": "2024-01-01T00:00:00+00:00"}, Customer,
         r"required field missing @ \$\.balance"),
    ],
)
def test_json_codec_does_not_coerce_silently(value: object, type_: type, message: str) -> None:
    with pytest.raises(retold.PayloadError, match=message):
        retold.JsonCodec().convert(value, type_)


def test_json_codec_reads_numbers_from_object_keys() -> None:
    codec = retold.JsonCodec()
    assert codec.decode(codec.encode({1: "a", 2: "b"}), dict[int, str]) == {1: "a", 2: "b"}
    assert codec.convert(2, float) == 2.0  # every int is a number
    with pytest.raises(retold.PayloadError, match=r"expected an integer, got float 2\.0"):
        codec.convert(2.0, int)  # a float is not an int, even a whole one: nothing is coerced


def test_a_codec_imports_pydantic_only_once_the_program_has() -> None:
    # pydantic costs a process 50-100 ms to import; a program without models should not pay it.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from retold.history.codec import JsonCodec
        codec = JsonCodec()
        assert codec.decode(codec.encode({"a": 1}), dict) == {"a": 1}
        print("pydantic" in sys.modules)
        import pydantic
        class Late(pydantic.BaseModel):
            n: int
        value = codec.decode(codec.encode(Late(n=3)), Late)
        print(type(value).__name__, value.n)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False", "Late 3"]

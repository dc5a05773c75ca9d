"""Every start validates its arguments deeply, with the codec, before anything is stored.

Python (``engine.start``, ``start_by_name``), HTTP (``POST /workflows/{name}/runs``)
and the CLI (``retold start --input``) share one validator: the decoder the
run's first workflow task reads its input with. A bad value at any depth is
rejected with its path, nothing is coerced, nothing is written.
"""

from __future__ import annotations

import decimal
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import retold
from retold.cli import cli
from tests.cli.conftest import cli_env
from tests.conftest import EngineFactory
from tests.http_api.conftest import Server, serve


@dataclass
class Line:
    sku: str
    qty: int


@retold.workflow(name="basket")
async def basket(lines: list[Line], notes: dict[str, list[int]] | None = None) -> int:
    """Add up the quantities."""
    return sum(line.qty for line in lines) + sum(sum(v) for v in (notes or {}).values())


# (JSON arguments, the message's tail naming the bad value and its path)
BAD_JSON: list[tuple[list[Any], str]] = [
    ([[{"sku": "tea", "qty": 1.5}]], "argument 1 (lines): cannot decode [{'sku': 'tea', 'qty': 1.5}] as list[Line]: "
                                     "expected an integer, got float 1.5 @ $[0].qty"),
    ([[{"sku": "tea", "qty": 1}, {"sku": "jam", "qty": "2"}]], "expected an integer, got str '2' @ $[1].qty"),
    ([[{"sku": 7, "qty": 1}]], "expected a string, got int 7 @ $[0].sku"),
    ([[{"sku": "tea"}]], "required field missing @ $[0].qty"),
    (["tea"], "argument 1 (lines): cannot decode 'tea' as list[Line]: expected an array, got str 'tea'"),
    ([[], {"a": [1, "2"]}], "argument 2 (notes): cannot decode {'a': [1, '2']} as dict[str, list[int]] | None"),
    ([[], {"a": "12"}], "expected an array, got str '12'"),
    ([[], [1]], "argument 2 (notes)"),
]


def count_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.mark.anyio
async def test_python_starts_reject_bad_values_at_any_depth(make_engine: EngineFactory, tmp_path: Path) -> None:
    async with make_engine([basket]) as engine:
        before = count_rows(tmp_path / "retold.db")
        # Dataclasses do not check their fields: the codec does.
        half = Line("tea", 1.5)  # type: ignore[arg-type]
        text = Line("jam", "2")  # type: ignore[arg-type]
        bad_values: list[tuple[tuple[Any, ...], str]] = [
            (([half],), "argument 1 (lines): cannot decode [{'sku': 'tea', 'qty': 1.5}] as list[Line]: "
                        "expected an integer, got float 1.5 @ $[0].qty"),
            (([Line("tea", 1), text],), "expected an integer, got str '2' @ $[1].qty"),
            (([], {"a": [1, "2"]}), "argument 2 (notes)"),
        ]
        for args, message in bad_values:
            with pytest.raises(retold.InvalidArgumentsError) as info:
                await engine.start(basket.with_options(id="b-1"), *args)
            assert message in str(info.value)
            assert str(info.value).startswith("workflow 'basket': ")
        for json_args, message in BAD_JSON:
            with pytest.raises(retold.InvalidArgumentsError) as info:
                await engine.start_by_name("basket", json_args, id="b-1")
            assert message in str(info.value)
        assert count_rows(tmp_path / "retold.db") == before
        assert await engine.list_runs() == []

        # Good values, in Python and in their JSON form, start the same run.
        run = await engine.start(basket.with_options(id="b-1"), [Line("tea", 1), Line("jam", 2)], {"a": [3]})
        again = await engine.start_by_name(
            "basket", [[{"sku": "tea", "qty": 1}, {"sku": "jam", "qty": 2}], {"a": [3]}], id="b-1"
        )
        assert (run.created, again.created, again.run_id) == (True, False, run.run_id)
        assert await run.result(timeout=30) == 6


@pytest.fixture
def basket_server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=[basket], poll_interval=0.05)
    with serve(engine, db) as server:
        yield server


def test_http_starts_answer_422_with_the_path_and_store_nothing(basket_server: Server) -> None:
    with basket_server.client() as client:
        before = count_rows(basket_server.db)
        for json_args, message in BAD_JSON:
            response = client.post("/workflows/basket/runs", json={"args": json_args, "id": "b-1"})
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert message in response.json()["detail"]
        assert count_rows(basket_server.db) == before
        assert client.get("/runs").json()["runs"] == []
        assert client.get("/runs/b-1").status_code == 404

        good = client.post("/workflows/basket/runs", json={"args": [[{"sku": "tea", "qty": 2}]], "id": "b-1"})
        assert good.status_code == 201, good.text


def test_cli_start_exits_1_with_the_path_and_stores_nothing(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    runner = CliRunner()
    app = ["--app", "tests.test_start_validation:basket"]
    first = runner.invoke(cli, ["start", "basket", *app, "--input", "[[]]", "--id", "ok"], env=cli_env(db))
    assert first.exit_code == 0, first.output
    before = count_rows(db)
    for json_args, message in BAD_JSON:
        result = runner.invoke(
            cli, ["start", "basket", *app, "--input", retold.JsonCodec().encode(json_args).decode(), "--id", "b-1"],
            prog_name="retold", env=cli_env(db),
        )
        assert result.exit_code == 1, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert message in errors[0]
    assert count_rows(db) == before


@pytest.mark.parametrize(
    ("value", "type_", "message"),
    [
        ("2", int, "expected an integer, got str '2'"),
        ("2.5", float, "expected a number, got str '2.5'"),
        ("ab", list[str], "expected an array, got str 'ab'"),
        ({"a": 1}, list[str], "expected an array, got dict"),
        ("ab", tuple[str, ...], "expected an array"),
        ([1], dict[str, int], "expected an object, got list"),
        ({"x": "a"}, dict[int, str], r"expected an integer, got str 'x' @ $['x']"),
        ([[1], ["x"]], list[list[int]], "expected an integer, got str 'x' @ $[1][0]"),
        (1.5, decimal.Decimal, "expected a decimal as a string"),
        (5, uuid.UUID, "expected a UUID as a string"),
    ],
)
def test_the_json_codec_coerces_nothing_at_any_depth(value: object, type_: Any, message: str) -> None:
    with pytest.raises(retold.PayloadError) as info:
        retold.JsonCodec().convert(value, type_)
    assert message in str(info.value)

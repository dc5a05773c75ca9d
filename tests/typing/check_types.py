"""Checked by mypy, never run: calls are typed against the activity's signature.

Each ``# type: ignore[code]`` line must stay an error: with
``warn_unused_ignores`` mypy fails if one starts to pass.
"""

from __future__ import annotations

from typing import Any, assert_type

import retold


@retold.activity
async def charge(order_id: str, cents: int) -> str:
    return order_id


@retold.activity
def weigh(grams: int) -> float:
    return grams / 1000


@retold.workflow
async def checkout(order_id: str, cents: int) -> str:
    return order_id


@retold.workflow
async def typed_calls() -> None:
    assert_type(await retold.execute(charge, "o", 5), str)
    assert_type(await retold.execute(weigh, 5), float)
    assert_type(await retold.execute_child(checkout, "o", 5), str)
    assert_type(retold.start_child(checkout, "o", 5), retold.ChildHandle[str])
    assert_type(await retold.wait_signal("approve", bool), bool | None)
    await retold.execute(charge, "o", "five")  # type: ignore[misc]
    await retold.execute(charge, "o")  # type: ignore[misc]
    await retold.execute(charge, "o", 5, retri=None)  # type: ignore[call-arg]
    await retold.execute_child(checkout, 5, 5)  # type: ignore[misc]


async def typed_start(engine: retold.Engine) -> None:
    run = await engine.start(checkout, "o", 5, id="x")
    assert_type(run, retold.RunHandle[str])
    assert_type(await run.result(), str)
    await engine.start(checkout, "o")  # type: ignore[misc]
    assert_type(await engine.start("checkout", "o", 5), retold.RunHandle[Any])  # hosted elsewhere: untyped

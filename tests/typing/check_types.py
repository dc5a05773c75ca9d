"""Checked by mypy, never run: call sites are typed against the callee's signature.

The whole-tree ``mypy --strict`` checks the good call sites and, through
``warn_unused_ignores``, that each ``# type: ignore[code]`` line stays an
error. tests/test_typing.py strips the ignores, runs mypy on this file and
compares its errors with the ``# E:`` lines, word for word: each ``# E:``
comment is an error expected on the next line that is not a comment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, assert_type

import retold


@retold.activity
async def charge(order_id: str, cents: int) -> str:
    return order_id


@retold.activity
def weigh(grams: int) -> float:
    return grams / 1000


@retold.activity
async def notify(to: str, urgent: bool = False) -> bool:
    return urgent


@retold.activity
async def send(to: str, *, subject: str, retries: int = 3) -> str:
    return subject


@retold.workflow
async def checkout(order_id: str, cents: int) -> str:
    return order_id


@retold.workflow
async def remind(to: str, retries: int = 3, *, urgent: bool = False) -> int:
    return retries


@retold.workflow
async def typed_calls() -> None:
    assert_type(await retold.execute(charge, "o", 5), str)
    assert_type(await retold.execute(charge, "o", cents=5), str)
    assert_type(await retold.execute(weigh, 5), float)
    assert_type(await retold.execute(notify, "ada"), bool)
    assert_type(await retold.execute(notify, "ada", urgent=True), bool)
    assert_type(await retold.execute(notify, to="ada"), bool)
    assert_type(await retold.execute(send, "ada", subject="hi"), str)
    assert_type(await retold.execute(send, "ada", subject="hi", retries=1), str)
    fast = charge.with_options(start_to_close=timedelta(seconds=5), retry=retold.RetryPolicy(initial_interval=0.1))
    assert_type(await retold.execute(fast, "o", 5), str)
    assert_type(await retold.execute_child(checkout, "o", 5), str)
    assert_type(await retold.execute_child(remind, "ada", urgent=True), int)
    child = retold.start_child(remind.with_options(id="r-1"), "ada", 2)
    assert_type(child, retold.ChildHandle[int])
    assert_type(child.workflow_id, str)
    assert_type(await child, int)
    assert_type(await child.result(), int)
    assert_type(await retold.wait_signal("approve", bool), bool | None)
    assert_type(await retold.start_workflow(remind.with_options(id="r-2"), "ada", urgent=True), str)
    assert_type(await retold.execute_child(retold.workflow_ref("remind"), "ada", anything=1), Any)

    # E: Argument 3 to "execute" has incompatible type "str"; expected "int"  [arg-type]
    await retold.execute(charge, "o", "five")  # type: ignore[arg-type]
    # E: Missing positional argument "cents" in call to "execute"  [call-arg]
    await retold.execute(charge, "o")  # type: ignore[call-arg]
    # E: Argument "urgent" to "execute" has incompatible type "str"; expected "bool"  [arg-type]
    await retold.execute(notify, "ada", urgent="yes")  # type: ignore[arg-type]
    # E: Unexpected keyword argument "urgnt" for "execute"; did you mean "urgent"?  [call-arg]
    await retold.execute(notify, "ada", urgnt=True)  # type: ignore[call-arg]
    # E: Missing named argument "subject" for "execute"  [call-arg]
    await retold.execute(send, "ada")  # type: ignore[call-arg]
    # E: Too many positional arguments for "execute"  [call-arg]
    await retold.execute(send, "ada", "hi")  # type: ignore[call-arg]
    # E: Unexpected keyword argument "retry" for "execute"  [call-arg]
    await retold.execute(charge, "o", 5, retry=None)  # type: ignore[call-arg]
    # E: Argument 2 to "execute_child" has incompatible type "int"; expected "str"  [arg-type]
    await retold.execute_child(checkout, 5, 5)  # type: ignore[arg-type]
    # E: Argument "urgent" to "start_child" has incompatible type "int"; expected "bool"  [arg-type]
    retold.start_child(remind, "ada", urgent=1)  # type: ignore[arg-type]
    # E: Argument 2 to "start_workflow" has incompatible type "int"; expected "str"  [arg-type]
    await retold.start_workflow(checkout, 5, 5)  # type: ignore[arg-type]
    result = await retold.start_child(remind, "ada")
    # E: Incompatible types in assignment (expression has type "int", variable has type "str")  [assignment]
    wrong: str = result  # type: ignore[assignment]
    print(wrong)


async def typed_start(engine: retold.Engine) -> None:
    run = await engine.start(checkout.with_options(id="x"), "o", 5)
    assert_type(run, retold.RunHandle[str])
    assert_type(run.workflow_id, str)
    assert_type(run.run_id, str | None)
    assert_type(await run.result(), str)
    assert_type(await engine.start(remind, "ada"), retold.RunHandle[int])
    assert_type(await engine.start(remind, "ada", 2, urgent=True), retold.RunHandle[int])
    assert_type(await engine.start(remind.with_options(idempotency_key="k"), to="ada"), retold.RunHandle[int])
    # hosted elsewhere, by name: untyped, and id= is the start's option
    assert_type(await engine.start("checkout", "o", 5, id="x"), retold.RunHandle[Any])

    # E: Missing positional argument "cents" in call to "start" of "Engine"  [call-arg]
    await engine.start(checkout, "o")  # type: ignore[call-arg]
    # E: Argument 2 to "start" of "Engine" has incompatible type "int"; expected "str"  [arg-type]
    await engine.start(remind, 5)  # type: ignore[arg-type]
    # E: Unexpected keyword argument "id" for "start" of "Engine"  [call-arg]
    await engine.start(checkout, "o", 5, id="x")  # type: ignore[call-arg]
    # E: Argument 1 to "start" of "Engine" has incompatible type "AsyncActivity[[str, int], str]"; expected "Workflow[[str, int], Any] | str"  [arg-type]  # noqa: E501
    await engine.start(charge, "o", 5)  # type: ignore[arg-type]


async def typed_signal_with_start(engine: retold.Engine, client: retold.Client) -> None:
    run = await engine.signal_with_start(checkout.with_options(id="x"), "approve", True, "o", 5)
    assert_type(run, retold.RunHandle[str])
    assert_type(await client.signal_with_start(remind.with_options(id="r"), "s", 1, "ada", urgent=True),
                retold.RunHandle[int])
    assert_type(await engine.signal_with_start("checkout", "s", None, "o", 5, id="x"), retold.RunHandle[Any])

    # E: Argument 5 to "signal_with_start" of "Engine" has incompatible type "str"; expected "int"  [arg-type]
    await engine.signal_with_start(checkout.with_options(id="x"), "approve", True, "o", "5")  # type: ignore[arg-type]
    # E: Missing positional argument "cents" in call to "signal_with_start" of "Client"  [call-arg]
    await client.signal_with_start(checkout.with_options(id="x"), "approve", True, "o")  # type: ignore[call-arg]


async def typed_schedule(engine: retold.Engine, client: retold.Client) -> None:
    nightly = retold.Schedule("nightly", cron="0 2 * * *", timezone="Europe/Paris")
    assert_type(await engine.schedule(nightly, checkout, "o", 5), retold.ScheduleHandle)
    assert_type(await client.schedule(nightly, remind, "ada", urgent=True), retold.ScheduleHandle)
    assert_type(await (await engine.schedule(nightly, remind, "ada")).describe(), retold.ScheduleDescription)

    # E: Argument 4 to "schedule" of "Engine" has incompatible type "str"; expected "int"  [arg-type]
    await engine.schedule(nightly, checkout, "o", "5")  # type: ignore[arg-type]
    # E: Missing positional argument "cents" in call to "schedule" of "Client"  [call-arg]
    await client.schedule(nightly, checkout, "o")  # type: ignore[call-arg]
    # E: Argument "overlap" to "Schedule" has incompatible type "Literal['sometimes']"; expected "Literal['skip', 'buffer_one', 'allow_all', 'cancel_previous']"  [arg-type]  # noqa: E501
    retold.Schedule("s", every=timedelta(seconds=1), overlap="sometimes")  # type: ignore[arg-type]


def typed_id_reuse_policy() -> None:
    checkout.with_options(id="x", id_reuse_policy="allow_duplicate_failed_only")
    # E: Argument "id_reuse_policy" to "with_options" of "Workflow" has incompatible type "Literal['sometimes']"; expected "Literal['allow_duplicate', 'allow_duplicate_failed_only', 'reject_duplicate'] | None"  [arg-type]  # noqa: E501
    checkout.with_options(id="x", id_reuse_policy="sometimes")  # type: ignore[arg-type]


async def typed_client_start(client: retold.Client) -> None:
    run = await client.start(checkout.with_options(id="x"), "o", 5)
    assert_type(run, retold.RunHandle[str])
    assert_type(await run.result(), str)
    assert_type(await client.start(remind, "ada", 2, urgent=True), retold.RunHandle[int])
    assert_type(await client.start("checkout", "o", 5, id="x"), retold.RunHandle[Any])
    assert_type(await client.start_by_name("checkout", ["o", 5]), retold.RunHandle[Any])

    # E: Missing positional argument "cents" in call to "start" of "Client"  [call-arg]
    await client.start(checkout, "o")  # type: ignore[call-arg]


async def typed_update(run: retold.RunHandle[str]) -> None:
    assert_type(await run.update("add", "apple", result_type=int), int)
    assert_type(await run.update("add", "apple", id="u-1", result_type=list[str], timeout=5), list[str])
    assert_type(await run.update("add", "apple"), Any)
    assert_type(await run.update_result("u-1", result_type=int), int)

    # E: No overload variant of "update" of "RunHandle" matches argument types "str", "str", "str"  [call-overload]
    await run.update("add", "apple", timeout="soon")  # type: ignore[call-overload]
    total = await run.update("add", "apple", result_type=int)
    # E: Incompatible types in assignment (expression has type "int", variable has type "str")  [assignment]
    wrong: str = total  # type: ignore[assignment]
    print(wrong)


@retold.workflow
async def typed_update_handlers() -> None:
    def check(item: str) -> None: ...

    @retold.update_handler("add", validator=check)
    async def add(item: str) -> int:
        return len(item)

    assert_type(await add("apple"), int)  # the decorator keeps the function as it is
    retold.set_update_handler("add", add, validator=check)

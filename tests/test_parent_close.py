"""What a parent's close does to its open children: their parent-close policy (issue 14, item 6)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

POLICIES: tuple[retold.ParentClosePolicy | None, ...] = ("request_cancel", "terminate", "abandon", None)


@retold.workflow
async def kid(tag: str) -> str:
    await retold.wait_signal("go", str)
    return tag


@retold.workflow
async def parent() -> str:
    for policy in POLICIES:
        name = policy or "default"
        retold.start_child(kid.with_options(id=f"kid-{name}", parent_close_policy=policy), name)
    await retold.wait_signal("close", str)
    return "closed"


@retold.workflow
async def grandparent() -> str:
    retold.start_child(parent.with_options(id="middle", parent_close_policy="terminate"))
    await retold.wait_signal("close", str)
    return "closed"


async def statuses(engine: retold.Engine, ids: list[str]) -> dict[str, str]:
    found = {}
    for wid in ids:
        try:
            found[wid] = (await engine.get_handle(wid).describe()).status
        except retold.RunNotFoundError:
            found[wid] = "not started yet"
    return found


async def settled(engine: retold.Engine, expected: dict[str, str]) -> dict[str, str]:
    with anyio.fail_after(30):
        while (found := await statuses(engine, list(expected))) != expected:
            await anyio.sleep(0.02)
    return found


@pytest.mark.parametrize("how", ["completed", "terminated"])
async def test_each_child_follows_its_policy_when_its_parent_closes(
    make_engine: EngineFactory, store_url: str, how: str
) -> None:
    async with make_engine([parent, kid], url=store_url) as engine:
        await children_follow_their_policies(engine, how)


async def test_each_child_follows_its_policy_on_nats(make_engine: EngineFactory, nats_url: str) -> None:
    async with make_engine([parent, kid], url=nats_url) as engine:
        await children_follow_their_policies(engine, "completed")


async def children_follow_their_policies(engine: retold.Engine, how: str) -> None:
    run = await engine.start(parent.with_options(id="p"))
    kids = [f"kid-{policy or 'default'}" for policy in POLICIES]
    await settled(engine, dict.fromkeys(kids, "running"))
    if how == "completed":
        await run.signal("close", "now")
        assert await run.result(timeout=30) == "closed"
    else:
        await run.terminate("operator")
    found = await settled(engine, {"kid-request_cancel": "cancelled", "kid-terminate": "terminated",
                                   "kid-abandon": "running", "kid-default": "cancelled"})
    assert found["kid-abandon"] == "running"
    # The abandoned child runs on, on its own, and completes; its closed parent is not touched.
    abandoned = engine.get_handle("kid-abandon")
    await abandoned.signal("go", "free")
    assert await abandoned.result(timeout=30) == "abandon"
    assert (await run.describe()).status == how
    terminated = await engine.get_handle("kid-terminate").describe()
    assert terminated.failure is not None
    assert f"parent run {run.run_id} {how}" in terminated.failure


async def test_a_terminated_child_applies_its_own_childrens_policies(
    make_engine: EngineFactory, store_url: str
) -> None:
    async with make_engine([grandparent, parent, kid], url=store_url) as engine:
        top = await engine.start(grandparent.with_options(id="top"))
        kids = [f"kid-{policy or 'default'}" for policy in POLICIES]
        await settled(engine, {"middle": "running", **dict.fromkeys(kids, "running")})
        await top.signal("close", "now")
        assert await top.result(timeout=30) == "closed"
        await settled(engine, {"middle": "terminated", "kid-request_cancel": "cancelled",
                               "kid-terminate": "terminated", "kid-abandon": "running", "kid-default": "cancelled"})


def test_a_policy_that_does_not_exist_is_refused_where_it_is_given() -> None:
    with pytest.raises(retold.ConfigurationError, match="parent_close_policy must be one of 'request_cancel', "
                                                         "'terminate', 'abandon'"):
        kid.with_options(parent_close_policy="orphan")  # type: ignore[arg-type]


@retold.workflow
async def waits_on_a_terminating_child() -> str:
    child = retold.start_child(kid.with_options(id="kid-waited", parent_close_policy="terminate"), "waited")
    retold.start_child(kid.with_options(id="kid-abandoned", parent_close_policy="abandon"), "left")
    done, _ = await asyncio.wait([asyncio.ensure_future(child.result())], timeout=5)
    return "child done" if done else "closed first"


def test_starts_with_policies_replay_deterministically_under_any_scenario() -> None:
    from retold.testing import assert_deterministic

    assert_deterministic(waits_on_a_terminating_child, max_examples=25, cancel=True, cross_process=False)

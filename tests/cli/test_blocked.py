"""A bad deploy seen from the command line: list --status blocked, show, terminate, replay."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tests.cli.conftest import Background, Retold
from tests.cli.test_commands import ok, poll


def test_a_blocked_run_is_listed_shown_and_terminated(retold: Retold, background: Callable[..., Background]) -> None:
    good = background("worker", "tests.shop")
    good.wait_for_line("retold worker: greet, order, ticker, fails")
    ok(retold("start", "order", "--app", "tests.shop", "--id", "o-1", "--input", '[{"sku": "tea", "quantity": 2}]'))
    poll(retold, lambda v: "ActivityCompleted" in [e["type"] for e in v["history"]["events"]], "show", "o-1")
    assert good.stop()[0] == 0

    bad = background("worker", "tests.cli.shop_v3")
    bad.wait_for_line("retold worker: order")
    ok(retold("signal", "o-1", "approve", "--value", "true"))
    shown = poll(retold, lambda v: v["status"] == "blocked", "show", "o-1")
    assert shown["blocked"]["type"] == "retold.errors.NondeterminismError"
    assert shown["blocked"]["seq"] == 2
    blocked = orjson.loads(ok(retold("list", "--status", "blocked", "--json")))
    assert [r["workflow_id"] for r in blocked] == ["o-1"]
    assert orjson.loads(ok(retold("list", "--status", "running", "--json"))) == []
    text = ok(retold("show", "o-1"))
    assert "status          blocked" in text
    assert "blocked by      retold.errors.NondeterminismError: workflow 'order'" in text
    assert "diverged at     event 2" in text
    assert "next retry" in text

    assert ok(retold("terminate", "o-1", "--reason", "bad deploy")).strip() == "terminated o-1"
    shown = poll(retold, lambda v: v["status"] == "terminated", "show", "o-1")
    assert shown["blocked"] is None
    assert shown["history"]["events"][-1] == {**shown["history"]["events"][-1], "type": "WorkflowTerminated",
                                              "reason": "bad deploy"}
    assert "1 of 1 histories replay" in ok(retold("replay", "--app", "tests.shop", "--status", "terminated"))
    assert bad.stop()[0] == 0

"""`retold signal --app` checks a value against the workflow's declared signal type (issue 18, item 7)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Retold
from tests.cli.test_commands import ok, one_line_error

APP = "tests.test_bad_signals:basket"  # @retold.workflow(signals={"line": Line, "note": str})


def test_signal_with_app_refuses_a_value_of_the_wrong_type_and_writes_nothing(retold: Retold, db: Path) -> None:
    ok(retold("start", "basket", "--app", APP, "--id", "b-1"))
    before = ok(retold("history", "b-1", "--json"))
    one_line_error(
        retold("signal", "b-1", "line", "--app", APP, "--value", '{"sku": "tea", "qty": "two"}'),
        1, "signal 'line' to run",
    )
    assert ok(retold("history", "b-1", "--json")) == before  # nothing written
    assert ok(retold("signal", "b-1", "line", "--app", APP, "--value", '{"sku": "tea", "qty": 2}')).strip() == (
        "signalled line to b-1")
    # Without --app the type is not known here: the run itself drops a bad value with a WARNING.
    assert ok(retold("signal", "b-1", "line", "--value", '"two"')).strip() == "signalled line to b-1"
    assert ok(retold("history", "b-1", "--json")).count('"SignalReceived"') == 2

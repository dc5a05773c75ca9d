"""A signal value that does not fit the workflow's declared type: HTTP 422, nothing written (issue 18, item 7)."""

from __future__ import annotations

from pathlib import Path

import retold
from tests.http_api.conftest import serve
from tests.http_api.test_api import assert_problem
from tests.test_bad_signals import basket


def test_a_signal_of_the_wrong_declared_type_is_422_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=[basket], poll_interval=0.05)
    with serve(engine, db) as server, server.client() as client:
        assert client.post("/workflows/basket/runs", json={"id": "b-1"}).status_code == 201
        body = assert_problem(
            client.post("/runs/b-1/signals/line", json={"value": {"sku": "tea", "qty": "two"}}), 422,
            "signal 'line' to run",
        )
        assert "expected an integer" in body["detail"]
        assert_problem(client.post("/runs/b-1/signals/note", json={"value": 12}), 422, "signal 'note'")
        history = client.get("/runs/b-1/history").text
        assert "WorkflowStarted" in history
        assert "SignalReceived" not in history  # nothing written
        assert client.post("/runs/b-1/signals/line", json={"value": {"sku": "tea", "qty": 2}}).status_code == 202

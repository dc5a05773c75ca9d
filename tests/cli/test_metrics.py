"""Prometheus metrics: ``/metrics`` on ``retold serve``, ``--metrics-port`` on ``retold worker``."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests._ports import free_port
from tests.cli.conftest import Background, Retold
from tests.cli.test_commands import ok


def sample(body: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` whose labels include ``labels`` (any order), or None."""
    for line in body.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def scrape(url: str, wanted: str, timeout: float = 30, **labels: str) -> str:
    """GET ``url`` until its body holds the sample ``wanted`` (with ``labels``), or the text; the body."""
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url, timeout=10).text
            if (sample(body, wanted, **labels) is not None) if labels else wanted in body:
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{wanted!r} never appeared at {url}; last body:\n{body[-3000:]}")


def test_serve_exposes_metrics_for_prometheus(background: Callable[..., Background]) -> None:
    port = free_port()
    server = background("serve", "--app", "tests.shop", "--port", str(port), RETOLD_TOKENS="t0ken")
    base = f"http://127.0.0.1:{port}"
    scrape(f"{base}/metrics", "# HELP")  # up, and not behind the token
    with httpx.Client(base_url=base, timeout=10, headers={"Authorization": "Bearer t0ken"}) as client:
        started = client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        assert started.status_code == 201, started.text
    body = scrape(f"{base}/metrics", "retold_runs_closed_total", retold_workflow="greet", status="completed")
    assert sample(body, "retold_runs_closed_total", retold_workflow="greet", status="completed") == 1
    assert sample(body, "retold_runs_started_total", retold_workflow="greet") == 1
    assert sample(body, "retold_activity_attempts_total", outcome="completed", retold_activity="email") == 1
    assert "retold_workflow_task_duration_seconds_bucket" in body
    assert "retold_store_duration_seconds_count" in body
    assert "retold_cache_size" in body
    _code, err = server.stop()
    assert "metrics on /metrics" in err


def test_serve_without_metrics(background: Callable[..., Background]) -> None:
    port = free_port()
    background("serve", "--app", "tests.shop", "--port", str(port), "--no-metrics")
    assert "retold_" not in scrape(f"http://127.0.0.1:{port}/metrics", "Not Found")


def test_worker_serves_metrics_on_its_port(retold: Retold, background: Callable[..., Background]) -> None:
    port = free_port()
    worker = background("worker", "tests.shop", "--metrics-port", str(port))
    worker.wait_for_line(f"metrics on http://127.0.0.1:{port}/metrics")
    ok(retold("start", "greet", "--app", "tests.shop", "--input", '["ada"]', "--id", "g-1", "--wait"))
    body = scrape(f"http://127.0.0.1:{port}/metrics", "retold_activity_attempts_total", outcome="completed")
    assert "retold_activity_schedule_to_start_seconds_bucket" in body
    code, _ = worker.stop()
    assert code == 0

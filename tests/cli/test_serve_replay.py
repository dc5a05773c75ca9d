"""``retold serve`` (uvicorn, tokens, loopback rule) and ``retold replay`` (the deploy gate)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
from httpx_sse import connect_sse

import retold
from retold.cli._serve import is_loopback
from tests import shop
from tests._ports import free_port
from tests.cli.conftest import Background, Retold
from tests.cli.test_commands import ok, one_line_error


def test_serve_runs_the_api_with_its_workers_and_tokens(background: Callable[..., Background]) -> None:
    port = free_port()
    server = background("serve", "--app", "tests.shop", "--port", str(port), RETOLD_TOKENS="t0ken other")
    deadline = time.monotonic() + 30
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as anonymous:
        while True:
            try:
                assert anonymous.get("/openapi.json").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "retold serve did not come up"
                time.sleep(0.1)
        assert anonymous.get("/runs").status_code == 401
    with httpx.Client(base_url=base, timeout=10, headers={"Authorization": "Bearer other"}) as client:
        started = client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        assert started.status_code == 201, started.text
        with connect_sse(client, "GET", "/runs/g-1/events") as source:
            types = [sse.event for sse in source.iter_sse()]
        assert types == ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "WorkflowCompleted"]
        assert client.get("/runs/g-1").json()["result"] == "hello, ada"
    code, err = server.stop()
    assert code == -signal.SIGTERM, err  # uvicorn shuts down cleanly, then re-raises the signal it caught
    assert "Application shutdown complete" in err
    assert "serving sqlite:///" in err
    assert "bearer tokens required" in err


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.com", ""]))


async def record_runs(db: Path) -> None:
    """Runs to replay, recorded by an engine running tests.shop's current code."""
    async with retold.Engine(f"sqlite:///{db}", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES,
                             poll_interval=0.05) as engine:
        for name in ("ada", "bob", "cy"):
            await (await engine.start(shop.greet.with_options(id=f"g-{name}"), name)).result(timeout=20)
        await (await engine.start(shop.ticker.with_options(id="t-1"), 1, 0.01)).result(timeout=20)


def test_replay_is_the_check_before_a_deploy(retold: Retold, db: Path, tmp_path: Path) -> None:
    anyio.run(record_runs, db)
    folder = tmp_path / "histories"
    folder.mkdir()
    for name in ("ada", "bob"):
        (folder / f"{name}.json").write_text(ok(retold("history", f"g-{name}", "--json")))
    (tmp_path / "bad.json").write_text("{}")
    cases = {
        "same": ["--app", "tests.shop"],
        # The new code adds a step before the email: stored greet runs no longer replay.
        "changed": ["--app", "tests.cli.shop_v2"],
        "folder": [str(folder), "--app", "tests.shop"],
        "one file": [str(folder / "ada.json"), "--app", "tests.cli.shop_v2"],
        "by id": ["t-1", "--app", "tests.shop"],
        "unknown id": ["nope", "--app", "tests.shop"],
        "broken file": [str(tmp_path / "bad.json"), str(folder / "bob.json"), "--app", "tests.shop"],
    }
    with ThreadPoolExecutor(4) as pool:
        done = dict(zip(cases, pool.map(lambda args: retold("replay", *args), cases.values()), strict=True))

    same = ok(done["same"])
    assert "4 of 4 histories replay against the current code" in same
    assert "ok    g-ada (run " in same

    changed = done["changed"]
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "0 of 3 histories replay against the current code; 3 do not" in changed.stdout
    assert "FAIL  g-ada (run " in changed.stdout
    assert "first diverging event: #2" in changed.stdout
    assert "recorded:  ActivityScheduled(activity='email'" in changed.stdout
    assert "code asks: TimerStarted(duration=1.0)" in changed.stdout
    assert "Traceback" not in changed.stdout + changed.stderr

    assert "2 of 2 histories replay" in ok(done["folder"])
    assert done["one file"].returncode == 1
    assert f"FAIL  {folder / 'ada.json'}: NondeterminismError" in done["one file"].stdout
    assert "1 of 1 histories replay" in ok(done["by id"])
    one_line_error(done["unknown id"], 1, "no run with id 'nope'")
    broken = done["broken file"]
    assert broken.returncode == 1
    assert "1 of 2 histories replay" in broken.stdout
    assert "not a retold history" in broken.stdout

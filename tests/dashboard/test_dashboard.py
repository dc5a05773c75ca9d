"""The dashboard, driven in headless Chromium against ``retold serve`` on a SQLite file.

Every wait is on something the page shows (a row, a section, a status),
with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .browser import Browser, Page
from .conftest import TOKEN, Served, serve, sign_in


def start(served: Served, workflow: str, *args: object, ident: str | None = None) -> str:
    ident = ident or f"{workflow}-{uuid.uuid4().hex[:8]}"
    answer = served.api.post(f"/workflows/{workflow}/runs", json={"args": list(args), "id": ident})
    assert answer.status_code == 201, answer.text
    return ident


def rows(page: Page) -> list[dict[str, str]]:
    """The timeline's rows, as their data attributes."""
    found: list[dict[str, str]] = page.eval(
        "[...document.querySelectorAll('.timeline .row')].map((r) => ({...r.dataset}))")
    return found


def test_without_a_valid_token_the_page_shows_the_login_prompt_and_no_data(browser: Browser, served: Served) -> None:
    secret = start(served, "approval", "a raise", ident="secret-run-7")
    tab = browser.new_page()
    try:
        tab.goto(served.url + "/#/runs")
        tab.wait_for("!!document.querySelector('#login #token')")
        assert tab.eval("document.querySelector('#runs') === null")
        assert secret not in tab.eval("document.documentElement.outerHTML")
        # A wrong token is refused, and still nothing shows.
        sign_in(tab, served.url, token="wrong")
        tab.wait_for("document.querySelector('#login-error')?.textContent.includes('refused')")
        assert tab.eval("document.querySelector('#runs') === null")
        assert secret not in tab.eval("document.documentElement.outerHTML")
        # A run's page, addressed directly, is not shown either.
        tab.goto(f"{served.url}/#/runs/{secret}")
        tab.wait_for("!!document.querySelector('#login #token')")
        assert secret not in tab.eval("document.querySelector('main').outerHTML")
        # The right token shows the data.
        tab.fill("#token", TOKEN)
        tab.eval("document.querySelector('#login').requestSubmit()")
        tab.wait_for(f"document.querySelector('h1 .id')?.textContent === {json.dumps(secret)}")
    finally:
        tab.close()


def test_the_runs_table_shows_a_run_started_meanwhile_without_a_reload(page: Page, served: Served) -> None:
    page.eval("window.notReloaded = true")
    ident = start(served, "approval", "new desk")
    page.wait_for(f"!!document.querySelector('#runs tr[data-workflow-id={json.dumps(ident)}]')")
    assert page.eval("window.notReloaded === true")
    row = page.text(f"#runs tr[data-workflow-id={json.dumps(ident)}]")
    assert "running" in row
    assert "approval" in row
    # ... and follows it as it closes.
    served.api.post(f"/runs/{ident}/signals/approve", json={"value": False}).raise_for_status()
    page.wait_for(f"document.querySelector('#runs tr[data-workflow-id={json.dumps(ident)}]')?.dataset.status"
                  " === 'completed'")
    assert page.eval("window.notReloaded === true")


def test_filters_narrow_the_runs_table(page: Page, served: Served) -> None:
    kept = start(served, "refund", "o-1", ident=f"filter-{uuid.uuid4().hex[:6]}")
    other = start(served, "approval", "x")
    page.fill("[name=id_prefix]", kept[:10])
    page.wait_for(f"[...document.querySelectorAll('#runs tbody tr')].map((r) => r.dataset.workflowId).join() "
                  f"=== {json.dumps(kept)}")
    assert "id_prefix=" in page.eval("location.hash")
    page.fill("[name=id_prefix]", "")
    page.fill("[name=status]", "failed")
    page.wait_for(f"!!document.querySelector('#runs tr[data-workflow-id={json.dumps(kept)}]')")
    assert page.eval("[...document.querySelectorAll('#runs tbody tr')].every((r) => r.dataset.status === 'failed')")
    assert page.eval(f"document.querySelector('#runs tr[data-workflow-id={json.dumps(other)}]') === null")


def test_the_timeline_shows_a_retried_activity_a_child_and_a_timer(page: Page, served: Served) -> None:
    ident = start(served, "delivery", "lamp", 0.5)
    page.eval(f"location.hash = '#/runs/{ident}'")
    # The page follows the run live until its result shows.
    page.wait_for("document.querySelector('#result')?.textContent.includes('handed over on attempt 3')")
    got = rows(page)
    assert [(r["kind"], r["name"].split(" (")[0], r["status"]) for r in got] == [
        ("workflow", "delivery", "completed"),
        ("activity", "pack", "completed"),
        ("child", "label", "completed"),
        ("timer", "timer 500 ms", "fired"),
        ("activity", "hand_over", "completed"),
    ]
    assert got[1]["attempts"] == "1"
    assert got[4]["attempts"] == "3"
    timer, hand_over = got[3], got[4]
    assert float(timer["end"]) - float(timer["start"]) >= 0.5
    assert float(hand_over["start"]) >= float(timer["end"])
    # The bars are drawn in that order along the time axis, the retried one marked x3.
    boxes = page.eval("[...document.querySelectorAll('.timeline .bar')].map((b) => {"
                      "const r = b.getBoundingClientRect(); return [r.left, r.right, b.textContent]; })")
    assert len(boxes) == 5
    workflow_bar, pack_bar, child_bar, timer_bar, retry_bar = boxes
    assert workflow_bar[0] <= pack_bar[0] <= child_bar[0] <= timer_bar[0] < timer_bar[1] <= retry_bar[0] + 1
    assert retry_bar[1] <= workflow_bar[1] + 1
    assert retry_bar[2] == "\N{MULTIPLICATION SIGN}3"
    # The history lists every event with its decoded payload.
    history = page.eval("[...document.querySelectorAll('#history tbody tr')].map((r) => r.dataset.type)")
    assert history[0] == "WorkflowStarted"
    assert history[-1] == "WorkflowCompleted"
    assert history.count("ActivityCompleted") == 2
    assert '"lamp packed"' in page.text("#history")


def test_the_timeline_shows_each_update_from_acceptance_to_its_reply(page: Page, served: Served) -> None:
    ident = start(served, "basket")
    assert served.api.post(f"/runs/{ident}/updates/add", json={"args": ["pear"]}).json()["result"] == 1
    assert served.api.post(f"/runs/{ident}/updates/add", json={"args": ["broken"]}).status_code == 409
    assert served.api.post(f"/runs/{ident}/signals/close", json={}).status_code == 202
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("document.querySelector('.timeline .row[data-kind=workflow]')?.dataset.status === 'completed'")
    got = [(r["kind"], r["name"], r["status"]) for r in rows(page) if r["kind"] == "update"]
    assert got == [("update", "update add", "completed"), ("update", "update add", "failed")]
    assert "broken goods" in page.text(".timeline")


def test_a_failed_run_shows_its_cause_chain(page: Page, served: Served) -> None:
    ident = start(served, "refund", "o-77")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("!!document.querySelector('#failure .causes')")
    causes = page.eval("[...document.querySelectorAll('#failure .causes > li > strong')].map((s) => s.textContent)")
    assert causes == ["ValueError", "KeyError"]
    assert "no payment for order o-77" in page.text("#failure")


def test_a_run_shows_its_search_attributes_and_memo(page: Page, served: Served) -> None:
    answer = served.api.post("/workflows/refund/runs", json={
        "args": ["o-78"], "id": "attrs-run", "memo": {"ticket": 42},
        "search_attributes": {"customer": "acme", "priority": 3}})
    assert answer.status_code == 201, answer.text
    page.eval("location.hash = '#/runs/attrs-run'")
    page.wait_for("!!document.querySelector('.extra-memo')")
    facts = page.text(".facts")
    assert "Attributes" in facts
    assert "customer=acme, priority=3" in facts
    assert '"ticket": 42' in page.text(".extra-memo")
    assert page.eval("document.querySelector('.extra-search_attributes')") is None  # a fact, not a section


def test_a_signal_sent_from_the_page_resumes_a_waiting_run(page: Page, served: Served) -> None:
    ident = start(served, "approval", "new laptop")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("document.querySelector('#follow')?.dataset.state === 'live'")
    # A query first: the run says it is waiting.
    page.fill("#query-name", "state")
    page.eval("document.querySelector('#query-form').requestSubmit()")
    page.wait_for("document.querySelector('#query-result')?.textContent === '\"waiting\"'")
    page.fill("#signal-name", "approve")
    page.fill("#signal-value", "true")
    page.eval("document.querySelector('#signal-form').requestSubmit()")
    page.wait_for("document.querySelector('#result')?.textContent.includes('new laptop: approved')")
    page.wait_for("document.querySelector('#run-status')?.textContent === 'completed'")
    assert served.wait_status(ident, "completed")["result"] == "new laptop: approved"
    assert "signal approve" in [r["name"] for r in rows(page)]


def test_cancel_from_the_page_asks_first_then_cancels(page: Page, served: Served) -> None:
    ident = start(served, "approval", "a pony")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("document.querySelector('#follow')?.dataset.state === 'live'")
    page.fill("#cancel-reason", "changed my mind")
    page.eval("document.querySelector('#cancel-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    page.click("#confirm button[value=cancel]")  # "Keep it": nothing is sent
    page.wait_for("!document.querySelector('#confirm').open")
    assert page.text("#action-result") == ""
    assert served.api.get(f"/runs/{ident}").json()["status"] == "running"
    page.eval("document.querySelector('#cancel-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    page.click("#confirm-ok")
    page.wait_for("document.querySelector('#run-status')?.textContent === 'cancelled'")
    assert "changed my mind" in page.text("#cancelled")
    served.wait_status(ident, "cancelled")


def test_terminate_from_the_page_asks_first_then_terminates_with_the_reason(page: Page, served: Served) -> None:
    ident = start(served, "approval", "a boat")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("document.querySelector('#follow')?.dataset.state === 'live'")
    page.fill("#terminate-reason", "stuck since the outage")
    page.eval("document.querySelector('#terminate-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    assert "Terminate run" in page.text("#confirm-text")
    page.click("#confirm button[value=cancel]")  # "Keep it": nothing is sent
    page.wait_for("!document.querySelector('#confirm').open")
    assert served.api.get(f"/runs/{ident}").json()["status"] == "running"
    page.eval("document.querySelector('#terminate-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    page.click("#confirm-ok")
    page.wait_for("document.querySelector('#run-status')?.textContent === 'terminated'")
    page.wait_for("document.querySelector('#terminated')?.textContent.includes('stuck since the outage')")
    served.wait_status(ident, "terminated")
    assert page.eval("document.querySelector('#terminate-form button').disabled")


def test_terminate_without_a_valid_token_is_refused_and_asks_for_one(page: Page, served: Served) -> None:
    ident = start(served, "approval", "a car")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("document.querySelector('#follow')?.dataset.state === 'live'")
    page.eval("sessionStorage.setItem('retold.token', 'stolen')")  # the token no longer valid
    page.eval("document.querySelector('#terminate-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    page.click("#confirm-ok")
    page.wait_for("!!document.querySelector('#login #token')")
    assert served.api.get(f"/runs/{ident}").json()["status"] == "running"
    served.api.post(f"/runs/{ident}/terminate", json={}).raise_for_status()


def test_a_run_blocked_by_a_bad_deploy_shows_its_reason(page: Page, served: Served) -> None:
    ident = start(served, "bad_deploy", "o-9")
    served.api.post(f"/runs/{ident}/signals/go", json={}).raise_for_status()
    blocked = served.wait_status(ident, "blocked")["blocked"]
    assert isinstance(blocked, dict)
    # The runs table filters by it.
    page.fill("[name=status]", "blocked")
    page.wait_for(f"!!document.querySelector('#runs tr[data-workflow-id={json.dumps(ident)}]')")
    assert page.eval("[...document.querySelectorAll('#runs tbody tr')].every((r) => r.dataset.status === 'blocked')")
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("!!document.querySelector('#blocked')")
    assert page.text("#run-status") == "blocked"
    box = page.text("#blocked")
    assert "WorkflowSandboxError" in box
    assert "open()" in box
    facts = page.eval("Object.fromEntries([...document.querySelectorAll('#blocked dt')].map((d) => "
                      "[d.textContent, d.nextElementSibling.textContent]))")
    assert int(facts["Attempts"]) >= 1
    assert facts["Since"].startswith(str(blocked["since"])[:10])
    assert facts["Next retry"].startswith(str(blocked["retry_at"])[:10])
    assert facts["Code fingerprint"] == blocked["fingerprint"]
    assert "Diverging event" not in facts  # a sandbox violation has none (a NondeterminismError has)
    # Terminating it from the page closes it; the box goes.
    page.eval("document.querySelector('#terminate-form').requestSubmit()")
    page.wait_for("document.querySelector('#confirm').open")
    page.click("#confirm-ok")
    page.wait_for("document.querySelector('#run-status')?.textContent === 'terminated'")
    page.wait_for("document.querySelector('#blocked') === null")


@contextmanager
def blocked_by_a_deploy(db: Path, ident: str) -> Iterator[tuple[Served, dict[str, object]]]:
    """Start ``redeployed`` as ``ident``, then serve the code that no longer replays it: the run is blocked."""
    with serve(db) as before:
        start(before, "redeployed", "o-3", ident=ident)
        deadline = time.monotonic() + 30
        while not any(line.startswith("waiting for a signal")
                      for line in before.api.get(f"/runs/{ident}").json()["pending"]["waiting_for"]):
            assert time.monotonic() < deadline, before.api.get(f"/runs/{ident}").json()
            time.sleep(0.05)
    with serve(db, DASHBOARD_DEPLOY="2") as after:  # a fresh process: the run is replayed on the new code
        after.api.post(f"/runs/{ident}/signals/go", json={}).raise_for_status()
        blocked = after.wait_status(ident, "blocked")["blocked"]
        assert isinstance(blocked, dict)
        yield after, blocked
        after.api.post(f"/runs/{ident}/terminate", json={}).raise_for_status()


def test_a_run_a_deploy_no_longer_replays_shows_the_diverging_event(browser: Browser, tmp_path: Path) -> None:
    with blocked_by_a_deploy(tmp_path / "retold.db", "order-1043") as (after, blocked):
        assert blocked["type"] == "retold.errors.NondeterminismError"
        tab = browser.new_page()
        try:
            sign_in(tab, after.url)
            tab.wait_for("document.querySelector('#live')?.textContent.startsWith('Live')")
            tab.eval("location.hash = '#/runs/order-1043'")
            tab.wait_for("!!document.querySelector('#blocked')")
            assert "NondeterminismError" in tab.text("#blocked")
            link = tab.eval("document.querySelector('#blocked a[data-seq]')?.dataset.seq")
            assert link == str(blocked["seq"])
            # The history table may be drawn after the blocked section: wait for its row.
            tab.wait_for(f"document.querySelector('#history tr[data-seq=\"{link}\"]')?.dataset.type "
                         "=== 'ActivityScheduled'")
        finally:
            tab.close()


def test_a_run_waiting_on_a_retrying_activity_and_a_timer_lists_them(page: Page, served: Served) -> None:
    ident = start(served, "stuck", "o-5")
    # The first attempt failed; the second waits out its minute of backoff.
    deadline = time.monotonic() + 30
    while True:
        pending = served.api.get(f"/runs/{ident}").json()["pending"]
        if pending["activities"] and pending["activities"][0]["last_failure"] and pending["timers"]:
            break
        assert time.monotonic() < deadline, pending
        time.sleep(0.05)
    page.eval(f"location.hash = '#/runs/{ident}'")
    page.wait_for("!!document.querySelector('#pending-activities') && !!document.querySelector('#pending-timers')")
    activity = page.eval("[...document.querySelectorAll('#pending-activities tbody tr')].map((r) => "
                         "[...r.children].map((c) => c.textContent))")
    assert len(activity) == 1
    seq, name, queue, attempt, state, _started, failure, _holder = activity[0]
    assert (int(seq), name, queue, attempt) == (pending["activities"][0]["seq"], "call_carrier",
                                                pending["activities"][0]["queue"], "2 of 4")
    assert state.startswith("retry at ")
    assert "carrier unreachable for o-5" in failure
    timers = page.eval("[...document.querySelectorAll('#pending-timers tbody tr')].map((r) => "
                       "[...r.children].map((c) => c.textContent))")
    assert len(timers) == 1
    fire_at = pending["timers"][0]["fire_at"]
    assert timers[0][1][:10] == fire_at[:10]
    assert timers[0][2] == "1 h 0 min" or timers[0][2].startswith("59 min")  # fires in an hour
    assert "waiting for activity 'call_carrier'" in page.text("#pending")
    served.api.post(f"/runs/{ident}/terminate", json={}).raise_for_status()
    page.wait_for("document.querySelector('#run-status')?.textContent === 'terminated'")
    page.wait_for("document.querySelector('#pending') === null")


def test_the_start_form_checks_the_schema_then_starts_once_per_key(page: Page, served: Served) -> None:
    page.eval("location.hash = '#/workflows'")
    form = "form.start[data-workflow=ship]"
    page.click("section[data-workflow=ship] summary")  # "Start a run" opens the form
    page.wait_for(f"document.querySelector('{form}')?.checkVisibility()")
    page.fill(f"{form} [name=parcel]", '{"item": "vase", "weight_kg": "heavy"}')
    page.eval(f"document.querySelector('{form}').requestSubmit()")
    page.wait_for(f"document.querySelector('{form} ul.error')?.textContent.includes('parcel.weight_kg')")
    assert "expected number, got string" in page.text(f"{form} ul.error")
    ident = f"ship-{uuid.uuid4().hex[:6]}"
    page.fill(f"{form} [name=parcel]", '{"item": "vase", "weight_kg": 2.5}')
    page.fill(f"{form} [name=express]", "true")
    page.fill(f"{form} [name=id]", ident)
    key = page.eval(f"document.querySelector('{form} [name=idempotency-key]').value")
    assert key
    page.eval(f"document.querySelector('{form}').requestSubmit()")
    page.wait_for("document.querySelector('#result')?.textContent.includes('vase (2.5 kg) express')")
    # The same key and input again: the same run (the API answers 200, not 201).
    again = served.api.post("/workflows/ship/runs", headers={"Idempotency-Key": key},
                            json={"args": [{"item": "vase", "weight_kg": 2.5}, True], "id": ident})
    assert again.status_code == 200, again.text


def test_keyboard_shortcuts_move_between_pages(page: Page) -> None:
    page.eval("document.activeElement.blur()")
    page.press("g")
    page.press("w")
    page.wait_for("location.hash === '#/workflows' && !!document.querySelector('form.start')")
    page.press("g")
    page.press("r")
    page.wait_for("!!document.querySelector('#runs')")
    page.press("/")
    page.wait_for("document.activeElement?.name === 'id_prefix'")


def test_the_pages_fit_a_phone(browser: Browser, served: Served) -> None:
    ident = start(served, "delivery", "phone", 0.05)
    served.wait_status(ident, "completed")
    tab = browser.new_page(390, 844, mobile=True)
    try:
        sign_in(tab, served.url)
        tab.wait_for("document.querySelectorAll('#runs tbody tr').length > 0")
        for route in ("#/runs", f"#/runs/{ident}", "#/workflows"):
            tab.eval(f"location.hash = {json.dumps(route)}")
            tab.wait_for("!!document.querySelector('.page h1')")
            # Nothing wider than the screen but the tables, which scroll in their own box.
            wide = tab.eval("[...document.querySelectorAll('body *')].filter((e) => "
                            "e.getBoundingClientRect().right > 391 && !e.closest('.table-wrap'))"
                            ".map((e) => e.tagName + '.' + e.className).slice(0, 5)")
            assert tab.eval("document.documentElement.scrollWidth") <= 390, (route, wide)
    finally:
        tab.close()


def test_screenshots(browser: Browser, served: Served, tmp_path: Path) -> None:
    """The pictures in docs/dashboard.md and the README.

    Regenerate them with ``RETOLD_SCREENSHOTS=docs/images .venv/bin/python -m pytest
    tests/dashboard -k screenshots``; without the variable they go to a temporary directory.
    """
    out = Path(os.environ.get("RETOLD_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ident = start(served, "delivery", "lamp", 0.6, ident="order-1042")
    for n, item in enumerate(["desk", "chair"]):
        start(served, "delivery", item, 0.05, ident=f"order-{1040 + n}")
    start(served, "approval", "new laptop", ident="approval-17")
    start(served, "refund", "order-1001", ident="refund-1001")
    served.wait_status(ident, "completed")
    tab = browser.new_page(1280, 800)
    try:
        sign_in(tab, served.url)
        tab.wait_for("document.querySelectorAll('#runs tbody tr').length >= 5")
        tab.screenshot(out / "dashboard-runs.png", full_page=False)
        tab.eval(f"location.hash = '#/runs/{ident}'")
        tab.wait_for("!!document.querySelector('#result') && document.querySelector('#follow').textContent === ''")
        tab.screenshot(out / "dashboard-run.png", full_page=False)
    finally:
        tab.close()
    with blocked_by_a_deploy(tmp_path / "redeploy.db", "order-1043") as (after, _):
        tab = browser.new_page(1280, 800)
        try:
            sign_in(tab, after.url)
            tab.wait_for("document.querySelector('#live')?.textContent.startsWith('Live')")
            tab.eval("location.hash = '#/runs/order-1043'")
            tab.wait_for("!!document.querySelector('#blocked')"
                         " && document.querySelector('#follow').dataset.state === 'live'")
            tab.screenshot(out / "dashboard-blocked.png", full_page=False)
        finally:
            tab.close()
    for name in ("dashboard-runs.png", "dashboard-run.png", "dashboard-blocked.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

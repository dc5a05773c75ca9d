"""Updates (tests/test_updates.py) on NATS JetStream: the tests that take a store_url."""

from __future__ import annotations

import pytest

from tests.test_updates import (  # noqa: F401 - the tests, collected again here
    test_a_failing_handler_fails_the_update_not_the_run,
    test_a_rejected_update_leaves_no_trace_in_the_history,
    test_an_unfinished_update_can_be_fetched_later_and_a_closing_run_answers_it,
    test_an_update_returns_its_handler_result_after_awaiting_an_activity,
    test_concurrent_sends_of_one_update_id_record_it_once,
    test_the_same_update_id_twice_runs_once_and_gets_the_same_reply,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_url(nats_url: str) -> str:
    return nats_url

"""``assert_deterministic``: hypothesis drives scenarios, every check runs on each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._extras import missing_extra
from ..authoring import Activity, Workflow
from ..history.codec import Codec
from ._crossproc import CrossProcessReplayer
from ._simulate import ActivityImpl, NondeterminismFound, Scenario, check_scenario

__all__ = ["assert_deterministic"]


def assert_deterministic(
    workflow: Workflow[..., Any],
    *,
    args: Sequence[Any] | Any = (),
    signals: Sequence[tuple[str, Any]] | Any = (),
    updates: Sequence[tuple[str, Sequence[Any]]] | Any = (),
    activities: Sequence[Activity[..., Any]] = (),
    fakes: Mapping[str | Activity[..., Any], ActivityImpl] | None = None,
    queries: Sequence[str | tuple[str, tuple[Any, ...]]] = (),
    max_examples: int = 100,
    max_steps: int = 30,
    failures: bool = True,
    crashes: bool = True,
    cancel: bool = False,
    timeout: bool = False,
    cross_process: bool = True,
    codec: Codec | None = None,
    settings: Any = None,
) -> None:
    """Check ``workflow`` against ``max_examples`` generated scenarios.

    Each scenario (see :func:`retold.testing.strategies.scenarios`) plays the
    workflow in memory with activities run for real (or by ``fakes``), then
    checks that replaying the final history from scratch, and resuming from
    every stored prefix, reproduces exactly the recorded commands; that a
    crash (or cache eviction) changes nothing; that ``queries`` answer the
    same live and after replay; that workflow code never reads the wall
    clock or unseeded randomness; and, with ``cross_process``, that a replay
    in a process with another string-hash seed agrees (this catches
    iteration over sets of strings).

    Args:
        workflow: the workflow under test.
        args: its arguments, fixed or a hypothesis strategy of tuples.
        signals: ``(name, value)`` signals to send, or a strategy of them.
        updates: ``(name, args)`` updates to send, or a strategy of them:
            each is validated when it arrives (a rejected one records
            nothing) and its handler runs in the run.
        activities: the activities it calls (their real code runs).
        fakes: replacements by activity or name, called with the same arguments.
        queries: query names (or ``(name, args)``) to compare.
        max_examples: scenarios to try.
        max_steps, failures, crashes, cancel, timeout: passed to ``scenarios``.
        cross_process: also replay in a second process (the workflow must
            be importable from its module).
        codec: the codec (default JSON).
        settings: a ``hypothesis.settings`` to use instead of the defaults.

    Raises:
        NondeterminismFound: the smallest failing scenario hypothesis found,
            with what happened and the first diverging event.
    """
    try:
        from hypothesis import HealthCheck, given
        from hypothesis import settings as hsettings
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, "testing", "assert_deterministic") from exc

    from .strategies import scenarios

    strategy = scenarios(
        args=args, signals=signals, updates=updates, max_steps=max_steps, failures=failures, crashes=crashes,
        cancel=cancel,
        timeout=timeout,
    )
    other = CrossProcessReplayer() if cross_process else None

    def check(scenario: Scenario) -> None:
        check_scenario(
            workflow, scenario, activities=activities, fakes=fakes, queries=queries, codec=codec,
            cross_process=other,
        )

    chosen = settings or hsettings(
        max_examples=max_examples, deadline=None, report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    try:
        chosen(given(strategy)(check))()
    except BaseExceptionGroup as group:
        # Hypothesis wraps a failure that did not come back on every retry
        # ("flaky"): for a determinism check that is the finding itself.
        found = _first_finding(group)
        if found is None:
            raise
        found.add_note("(the failure did not occur on every replay of this scenario: the code's "
                       "behaviour varies between runs, which is the nondeterminism reported above)")
        raise found from None
    finally:
        if other is not None:
            other.close()


def _first_finding(group: BaseExceptionGroup[BaseException]) -> NondeterminismFound | None:
    for exc in group.exceptions:
        if isinstance(exc, NondeterminismFound):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_finding(exc)
            if inner is not None:
                return inner
    return None

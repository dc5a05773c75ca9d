"""Hypothesis strategies for workflow scenarios (requires ``hypothesis``).

``scenarios(...)`` draws a :class:`~retold.testing.Scenario`: the workflow's
input, when each signal arrives relative to timers and activity outcomes,
which activity attempts fail and how, how many inputs arrive together, and
after which activations the process crashes or the run is evicted. Use it in
your own ``@given`` test with :func:`~retold.testing.check_scenario`, or let
:func:`~retold.testing.assert_deterministic` do both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._extras import missing_extra

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "testing", "retold.testing.strategies") from exc

from ._simulate import Outcome, Scenario, Step

__all__ = ["scenarios", "steps"]

_OUTCOMES: tuple[Outcome, ...] = ("ok", "ok", "ok", "retry", "fail", "timeout")


def steps(*, failures: bool = True) -> st.SearchStrategy[Step]:
    """One arrival: which pending input, how many together, how an activity attempt ends."""
    outcome: st.SearchStrategy[Outcome] = st.sampled_from(_OUTCOMES) if failures else st.just("ok")
    return st.builds(
        Step,
        pick=st.integers(min_value=0, max_value=15),
        together=st.sampled_from((1, 1, 2, 3)),
        outcome=outcome,
    )


def _fixed_or(value: Any, strategy_kind: str) -> st.SearchStrategy[Any]:
    if isinstance(value, st.SearchStrategy):
        return value
    if strategy_kind == "args":
        return st.just(tuple(value))
    if strategy_kind == "updates":
        return st.just(tuple((str(name), tuple(args)) for name, args in value))
    return st.just(tuple((str(name), payload) for name, payload in value))


def scenarios(
    *,
    args: Sequence[Any] | st.SearchStrategy[tuple[Any, ...]] = (),
    signals: Sequence[tuple[str, Any]] | st.SearchStrategy[tuple[tuple[str, Any], ...]] = (),
    updates: Sequence[tuple[str, Sequence[Any]]] | st.SearchStrategy[tuple[tuple[str, tuple[Any, ...]], ...]] = (),
    max_steps: int = 30,
    failures: bool = True,
    crashes: bool = True,
    cancel: bool = False,
    timeout: bool = False,
) -> st.SearchStrategy[Scenario]:
    """Scenarios for one workflow.

    Args:
        args: the workflow's arguments, fixed or a strategy of tuples.
        signals: ``(name, value)`` pairs sent in this order (the scenario
            decides when each arrives; the first may come with the start,
            as a signal-with-start), or a strategy of such tuples.
        updates: ``(name, args)`` updates sent in this order (the scenario
            decides when each arrives; each is validated on the run's state
            then, as a client does), or a strategy of such tuples.
        max_steps: arrivals drawn; after them, everything pending arrives
            in order until the run ends or waits for nothing that can come.
        failures: let activity attempts fail (retried, for good, timed out).
        crashes: crash the process (evict the run) after some activations.
        cancel: ask for cancellation at some activation.
        timeout: let the run's run timeout pass at some activation (it
            closes as timed out, ``WorkflowTimedOut``).
    """
    return st.builds(
        Scenario,
        args=_fixed_or(args, "args"),
        signals=_fixed_or(signals, "signals"),
        updates=_fixed_or(updates, "updates"),
        steps=st.lists(steps(failures=failures), max_size=max_steps).map(tuple),
        crash_after=(
            st.frozensets(st.integers(min_value=1, max_value=max_steps + 5), max_size=3)
            if crashes else st.just(frozenset())
        ),
        cancel_at=st.none() | st.integers(min_value=1, max_value=max_steps) if cancel else st.none(),
        seed=st.integers(min_value=0, max_value=2**64 - 1),
        signal_with_start=st.booleans(),
        timeout_at=st.none() | st.integers(min_value=1, max_value=max_steps) if timeout else st.none(),
    )

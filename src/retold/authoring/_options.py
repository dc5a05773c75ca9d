"""Retry policy and activity options."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, final

from ..errors import ConfigurationError
from ..history.ids import too_long

__all__ = [
    "ACTIVITY_CANCELLATION_TYPES", "ActivityCancellationType", "ActivityOptions", "RetryPolicy", "duration", "seconds",
]


def duration(value: object, what: str) -> timedelta | None:
    """``value`` as a timedelta: a timedelta, or a number of seconds (as ``retold.sleep`` takes).

    Raises:
        ConfigurationError: anything else, or a negative duration.
    """
    if value is None or isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise ConfigurationError(
            f"{what} must be a timedelta or a number of seconds, got {type(value).__name__} {value!r:.40}"
        )
    if result is not None and result < timedelta(0):
        raise ConfigurationError(f"{what} must not be negative, got {value!r:.40}")
    return result


@final
@dataclass(frozen=True, slots=True, init=False)
class RetryPolicy:
    """How an activity is retried after a failed attempt.

    The delay before attempt ``n + 1`` is
    ``min(initial_interval * backoff_coefficient ** (n - 1), maximum_interval)``,
    with up to ``jitter`` of it (a fraction) added or taken away at random.

    Durations are ``timedelta`` objects or numbers of seconds
    (``RetryPolicy(initial_interval=0.01)``); they are stored as timedelta.

    Attributes:
        initial_interval: delay before the first retry.
        backoff_coefficient: growth factor of the delay, at least 1.
        maximum_interval: cap on the delay (default 100 times the initial one).
        max_attempts: attempts in all, first included; 0 means unlimited.
        non_retryable_error_types: names of exception types (simple or
            qualified) that end retries at once.
        jitter: fraction of random spread applied to each delay, 0 to 1.
    """

    initial_interval: timedelta
    backoff_coefficient: float
    maximum_interval: timedelta | None
    max_attempts: int
    non_retryable_error_types: Sequence[str]
    jitter: float

    def __init__(
        self,
        initial_interval: timedelta | float = timedelta(seconds=1),
        backoff_coefficient: float = 2.0,
        maximum_interval: timedelta | float | None = None,
        max_attempts: int = 0,
        non_retryable_error_types: Sequence[str] = (),
        jitter: float = 0.2,
    ) -> None:
        initial = duration(initial_interval, "RetryPolicy.initial_interval")
        if initial is None:
            raise ConfigurationError(
                "RetryPolicy.initial_interval must be a timedelta or a number of seconds, got None"
            )
        set_ = object.__setattr__
        set_(self, "initial_interval", initial)
        set_(self, "backoff_coefficient", backoff_coefficient)
        set_(self, "maximum_interval", duration(maximum_interval, "RetryPolicy.maximum_interval"))
        set_(self, "max_attempts", max_attempts)
        set_(self, "non_retryable_error_types", non_retryable_error_types)
        set_(self, "jitter", jitter)
        self._check()

    def _check(self) -> None:
        if self.backoff_coefficient < 1:
            raise ConfigurationError("RetryPolicy.backoff_coefficient must be at least 1")
        if self.max_attempts < 0:
            raise ConfigurationError("RetryPolicy.max_attempts must be 0 (unlimited) or more")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("RetryPolicy.jitter must be between 0 and 1")
        if isinstance(self.non_retryable_error_types, str):
            raise ConfigurationError(
                "RetryPolicy.non_retryable_error_types must be a sequence of names, not a str"
            )
        object.__setattr__(
            self, "non_retryable_error_types", tuple(self.non_retryable_error_types)
        )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the delay in seconds after failed attempt number ``attempt``."""
        base = self.initial_interval.total_seconds()
        cap = (
            self.maximum_interval.total_seconds()
            if self.maximum_interval is not None
            else base * 100
        )
        delay = min(base * self.backoff_coefficient ** max(attempt - 1, 0), cap)
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            delay = max(0.0, delay * (1 + spread))
        return delay

    def retries_error(self, error_type: str, attempt: int) -> bool:
        """Whether a failure of ``error_type`` at ``attempt`` is retried."""
        if self.max_attempts and attempt >= self.max_attempts:
            return False
        simple = error_type.rsplit(".", 1)[-1]
        names = self.non_retryable_error_types
        return error_type not in names and simple not in names

    def to_json(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data: only what differs from the defaults.

        Every scheduled activity stores its options in the history, so the
        defaults are left out (``{}`` is the default policy).
        """
        return {key: value for key, value in self._full_json().items() if value != _RETRY_DEFAULTS[key]}

    def _full_json(self) -> dict[str, Any]:
        return {
            "initial_interval": seconds(self.initial_interval),
            "backoff_coefficient": self.backoff_coefficient,
            "maximum_interval": seconds(self.maximum_interval),
            "max_attempts": self.max_attempts,
            "non_retryable_error_types": list(self.non_retryable_error_types),
            "jitter": self.jitter,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        """Build a policy from :meth:`to_json` data (missing keys take their defaults)."""
        data = {**_RETRY_DEFAULTS, **data}
        maximum = data["maximum_interval"]
        return cls(
            initial_interval=timedelta(seconds=data["initial_interval"]),
            backoff_coefficient=data["backoff_coefficient"],
            maximum_interval=None if maximum is None else timedelta(seconds=maximum),
            max_attempts=data["max_attempts"],
            non_retryable_error_types=tuple(data["non_retryable_error_types"]),
            jitter=data["jitter"],
        )


def seconds(value: timedelta | float | None) -> float | None:
    """Seconds of a duration that ``__post_init__`` made a timedelta (or None)."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


ActivityCancellationType = Literal["try_cancel", "wait_cancellation_completed", "abandon"]
ActivityCancellationType.__doc__ = """What workflow code that stops awaiting an activity does (``cancellation_type``).

``"try_cancel"`` (the default): the activity's task is withdrawn in the same
commit (``ActivityCancelRequested``): an attempt not started never starts, a
running one is told (``heartbeat()`` raises, ``activity_info().cancelled``)
and its outcome is not recorded. ``"wait_cancellation_completed"``: the same
request, but the workflow's wait goes on until the attempt has ended (it
was told, as above, and its outcome is recorded as final, never retried).
``"abandon"``: nothing is recorded and the
activity is not told: it runs, and is retried, as if still awaited, and its
outcome is recorded but not delivered to any waiter (until the run closes,
which withdraws every activity task it has).
"""
ACTIVITY_CANCELLATION_TYPES: tuple[ActivityCancellationType, ...] = (
    "try_cancel", "wait_cancellation_completed", "abandon")

DEFAULT_RETRY = RetryPolicy()
_RETRY_DEFAULTS: dict[str, Any] = DEFAULT_RETRY._full_json()


@final
@dataclass(frozen=True, slots=True, init=False)
class ActivityOptions:
    """Options that govern how an activity runs.

    Durations are ``timedelta`` objects or numbers of seconds.

    Attributes:
        retry: the retry policy.
        start_to_close: limit on one attempt, from its start.
        schedule_to_close: limit on all attempts, from scheduling.
        heartbeat_timeout: an attempt that does not call ``retold.heartbeat()``
            within this long is failed (and retried).
        task_queue: the queue the activity task is routed to.
        cancellation_type: what the workflow's cancelled wait does to the
            activity (``retold.ActivityCancellationType``).
    """

    retry: RetryPolicy
    start_to_close: timedelta | None
    schedule_to_close: timedelta | None
    heartbeat_timeout: timedelta | None
    task_queue: str
    cancellation_type: ActivityCancellationType

    def __init__(
        self,
        retry: RetryPolicy = DEFAULT_RETRY,
        start_to_close: timedelta | float | None = None,
        schedule_to_close: timedelta | float | None = None,
        heartbeat_timeout: timedelta | float | None = None,
        task_queue: str = "default",
        cancellation_type: ActivityCancellationType = "try_cancel",
    ) -> None:
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"activity option retry must be a retold.RetryPolicy, got {type(retry).__name__}"
            )
        object.__setattr__(self, "retry", retry)
        limits = {
            "start_to_close": start_to_close,
            "schedule_to_close": schedule_to_close,
            "heartbeat_timeout": heartbeat_timeout,
        }
        for name, given in limits.items():
            value = duration(given, f"activity option {name}")
            if value is not None and value <= timedelta(0):
                raise ConfigurationError(f"activity option {name} must be positive")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "task_queue", task_queue)
        if not self.task_queue:
            raise ConfigurationError("activity option task_queue must not be empty")
        problem = too_long("activity option task_queue", self.task_queue)
        if problem:
            raise ConfigurationError(problem)
        if cancellation_type not in ACTIVITY_CANCELLATION_TYPES:
            raise ConfigurationError(
                f"activity option cancellation_type must be one of "
                f"{', '.join(map(repr, ACTIVITY_CANCELLATION_TYPES))}, not {cancellation_type!r}")
        object.__setattr__(self, "cancellation_type", cancellation_type)

    def merge(self, **changes: Any) -> ActivityOptions:
        """Return a copy with the given non-None options replaced."""
        real = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **real) if real else self

    def to_json(self) -> dict[str, Any]:
        """Return the options as JSON-ready data."""

        # Only what differs from the defaults: every ActivityScheduled event stores this.
        return {key: value for key, value in self._full_json().items() if value != _OPTION_DEFAULTS[key]}

    def _full_json(self) -> dict[str, Any]:
        return {
            "retry": self.retry.to_json(),
            "start_to_close": seconds(self.start_to_close),
            "schedule_to_close": seconds(self.schedule_to_close),
            "heartbeat_timeout": seconds(self.heartbeat_timeout),
            "task_queue": self.task_queue,
            "cancellation_type": self.cancellation_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActivityOptions:
        """Build options from :meth:`to_json` data (missing keys take their defaults)."""

        def td(value: float | None) -> timedelta | None:
            return None if value is None else timedelta(seconds=value)

        data = {**_OPTION_DEFAULTS, **data}
        return cls(
            retry=RetryPolicy.from_json(data["retry"]),
            start_to_close=td(data["start_to_close"]),
            schedule_to_close=td(data["schedule_to_close"]),
            heartbeat_timeout=td(data["heartbeat_timeout"]),
            task_queue=data["task_queue"],
            cancellation_type=data["cancellation_type"],
        )


_OPTION_DEFAULTS: dict[str, Any] = ActivityOptions()._full_json()

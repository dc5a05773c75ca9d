"""Named fail points for crash tests of the NATS store: a real SIGKILL at a chosen step."""

from __future__ import annotations

import collections
import os
import signal

__all__ = ["FAILPOINT_ENV", "failpoint"]

FAILPOINT_ENV = "RETOLD_NATS_FAILPOINT"

_reached: collections.Counter[tuple[str, str]] = collections.Counter()


def failpoint(point: str, op: str) -> None:
    """Crash tests: SIGKILL this process (no cleanup) at a named point of recording an operation.

    ``$RETOLD_NATS_FAILPOINT`` is ``POINT[:N[:OP]]``: die the ``N``-th time
    (default 1) this process reaches ``POINT`` (``before_publish``,
    ``after_publish``) while recording an operation named ``OP`` (default
    ``tx``: a transaction; or a lease operation such as ``claim_activity_tasks``),
    or while saving a snapshot (``OP`` ``snapshot``: points ``snapshot_saved``,
    after the object is stored, and ``snapshot_pointed``, after the pointer
    moved to it, before the log is purged).
    """
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    count, _, kind = rest.partition(":")
    if name != point or op != (kind or "tx"):
        return
    _reached[point, op] += 1
    if _reached[point, op] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)

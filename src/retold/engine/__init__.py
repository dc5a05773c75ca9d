"""The engine: hosts runs (workers, leases, timers, the cache, the fast path).

:class:`Engine` is this package's interface to the rest of retold;
``retold`` re-exports it.
"""

from ._engine import Engine as Engine

__all__ = ["Engine"]

"""The engine: hosts runs (workers, leases, timers, the cache, the fast path) and decides their changes.

:class:`Runs` (every change to a run, decided by the state machine and
recorded by the store) is this package's interface to the client, which
writes starts, signals and cancels through it. ``Engine`` itself is
re-exported by ``retold``: it owns a client, so this package does not
import it here (the client imports this package).
"""

from ._machine import ActivityStep as ActivityStep
from ._machine import ActivityTake as ActivityTake
from ._machine import StartStep as StartStep
from ._runs import Runs as Runs
from ._schedules import KEEP as KEEP
from ._schedules import Keep as Keep
from ._schedules import Overlap as Overlap
from ._schedules import Schedule as Schedule
from ._schedules import ScheduleDescription as ScheduleDescription
from ._schedules import Schedules as Schedules

__all__ = ["KEEP", "ActivityStep", "ActivityTake", "Keep", "Overlap", "Runs", "Schedule", "ScheduleDescription",
           "Schedules", "StartStep"]

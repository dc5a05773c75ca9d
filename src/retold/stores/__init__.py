"""Stores: where histories, tasks and timers live. A store records; the run state machine decides.

:func:`open_store` makes one from a URL, by its scheme (see ``docs/stores.md``).
"""

from ._pending import Hosting as Hosting
from ._pending import LiveWorker as LiveWorker
from ._pending import RunWork as RunWork
from ._plan import NewActivity as NewActivity
from ._plan import NewRun as NewRun
from ._plan import Plan as Plan
from ._plan import RunState as RunState
from ._plan import ScheduleRow as ScheduleRow
from ._plan import TaskChange as TaskChange
from ._plan import Tx as Tx
from ._protocol import SUSPECT_LAPSES as SUSPECT_LAPSES
from ._protocol import ActivityOutcome as ActivityOutcome
from ._protocol import ActivityTask as ActivityTask
from ._protocol import RunRecord as RunRecord
from ._protocol import StartRequest as StartRequest
from ._protocol import Store as Store
from ._purge import PurgeReport as PurgeReport
from ._registry import open_store as open_store
from ._registry import store_schemes as store_schemes

__all__ = [
    "SUSPECT_LAPSES", "ActivityOutcome", "ActivityTask", "Hosting", "LiveWorker", "NewActivity", "NewRun", "Plan",
    "PurgeReport", "RunRecord", "RunState", "RunWork", "ScheduleRow", "StartRequest", "Store", "TaskChange", "Tx",
    "open_store", "store_schemes",
]

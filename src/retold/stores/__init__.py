"""Stores: where histories, tasks and timers live. A store records; the run state machine decides."""

from ._plan import Plan as Plan
from ._plan import RunState as RunState
from ._plan import Tx as Tx
from ._protocol import ActivityOutcome as ActivityOutcome
from ._protocol import ActivityTask as ActivityTask
from ._protocol import RunRecord as RunRecord
from ._protocol import StartRequest as StartRequest
from ._protocol import Store as Store

__all__ = ["ActivityOutcome", "ActivityTask", "Plan", "RunRecord", "RunState", "StartRequest", "Store", "Tx"]

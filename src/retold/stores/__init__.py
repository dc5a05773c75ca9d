"""Stores: where histories, tasks and timers live."""

from ._protocol import ActivityOutcome as ActivityOutcome
from ._protocol import ActivityStep as ActivityStep
from ._protocol import ActivityTake as ActivityTake
from ._protocol import ActivityTask as ActivityTask
from ._protocol import RunRecord as RunRecord
from ._protocol import StartRequest as StartRequest
from ._protocol import StartStep as StartStep
from ._protocol import Store as Store

__all__ = [
    "ActivityOutcome", "ActivityStep", "ActivityTake", "ActivityTask", "RunRecord", "StartRequest", "StartStep",
    "Store",
]

"""Stores: where histories, tasks and timers live; :func:`open_store` makes one from a URL."""

from ._protocol import ActivityOutcome as ActivityOutcome
from ._protocol import ActivityStep as ActivityStep
from ._protocol import ActivityTake as ActivityTake
from ._protocol import ActivityTask as ActivityTask
from ._protocol import RunRecord as RunRecord
from ._protocol import StartRequest as StartRequest
from ._protocol import StartStep as StartStep
from ._protocol import Store as Store
from ._registry import open_store as open_store
from ._registry import store_schemes as store_schemes

__all__ = [
    "ActivityOutcome", "ActivityStep", "ActivityTake", "ActivityTask", "RunRecord", "StartRequest", "StartStep",
    "Store", "open_store", "store_schemes",
]

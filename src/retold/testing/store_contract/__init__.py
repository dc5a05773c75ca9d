"""The store contract: what every :class:`~retold.stores.Store` must do, checked through the protocol only.

These tests drive a store the way the engine does (through
``retold.engine._runs.Runs``, the store's claims and leases, and its reads)
and never look at how it keeps its data, so they run unchanged on
``memory://``, SQLite, PostgreSQL, and any store you write. Passing them is
the bar for a store.

To run them on your store, import them into a test module and define a
``store_factory`` fixture::

    # tests/test_my_store_contract.py
    import pytest
    from retold.testing.store_contract import *  # noqa: F403 - the tests, collected by pytest

    @pytest.fixture
    def store_factory(tmp_path):
        database = tmp_path / "my.db"

        def factory(clock):
            return open_my_store(database, clock=clock, lease_clock=clock)  # an async context manager

        return factory

``store_factory(clock)`` returns an async context manager that opens a
store and closes it. ``clock`` (a :class:`ManualClock`) must be the store's
clock and its lease clock: the tests move time by hand. Every call within
one test opens a store on the *same* data (as another process would; a
store that cannot be shared may return the same object each time). Tests
are async (anyio); the ``anyio_backend`` fixture picks the event loop.
"""

from __future__ import annotations

import pytest

from . import _runs, _schedules, _search, _tasks
from ._common import ManualClock as ManualClock
from ._common import StoreFactory as StoreFactory
from ._runs import *  # noqa: F403 - the tests, for pytest to collect where they are imported
from ._schedules import *  # noqa: F403
from ._search import *  # noqa: F403
from ._tasks import *  # noqa: F403

pytestmark = pytest.mark.anyio

__all__ = ["ManualClock", "StoreFactory", "pytestmark", *_runs.__all__, *_schedules.__all__, *_search.__all__,
           *_tasks.__all__]

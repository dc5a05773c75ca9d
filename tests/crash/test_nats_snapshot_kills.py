"""Real kills while a NATS store saves a snapshot (docs/nats.md, "Snapshots"): the store stays whole.

A process records starts on a store that snapshots every 10 log messages and
SIGKILLs itself at a step of saving a snapshot (``RETOLD_NATS_FAILPOINT``):
after the object is stored (``snapshot_saved``: the pointer still names the
older snapshot, the log is whole) or after the pointer moved (``snapshot_pointed``:
the log is not purged yet). A fresh process then reads every run whose start
was acknowledged, goes on writing, and its own snapshots purge the log and
sweep the object the dead process left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import anyio
import pytest

from retold.engine._runs import Runs
from retold.stores import StartRequest
from retold.stores.nats import NatsStore

pytestmark = pytest.mark.anyio

CHILD = textwrap.dedent("""
    import sys
    import anyio
    from retold.engine._runs import Runs
    from retold.stores import StartRequest
    from retold.stores.nats import NatsStore

    async def main() -> None:
        store = NatsStore(sys.argv[1], snapshot_every=10)
        await store.open()
        for i in range(200):
            await Runs(store).start(StartRequest("wf", f"w{i}", b"[]", "h"))
            print(f"w{i}", flush=True)  # acknowledged
            await anyio.sleep(0.01)  # a snapshot is saved beside the starts, not only after the last
        await store.close()

    anyio.run(main)
""")


async def _objects(store: NatsStore) -> list[str]:
    async def names() -> list[str]:
        js = store._js
        assert js is not None
        objects = await js.object_store(store.snapshots)
        return sorted(info.name for info in await objects.list(ignore_deletes=True))

    return await store._client.call(names)  # type: ignore[union-attr]


@pytest.mark.parametrize("point", ["snapshot_saved", "snapshot_pointed"])
async def test_a_kill_while_saving_a_snapshot_loses_nothing(nats_url: str, point: str) -> None:
    env = {**os.environ, "RETOLD_NATS_FAILPOINT": f"{point}:2:snapshot"}  # the second snapshot
    child = subprocess.run([sys.executable, "-c", CHILD, nats_url], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    acknowledged = child.stdout.split()
    assert len(acknowledged) >= 11  # it got past a first snapshot

    store = NatsStore(nats_url, snapshot_every=10)
    await store.open()
    try:
        listed = {r.workflow_id for r in await store.list_runs(status=None, workflow=None, limit=1000, offset=0)}
        assert set(acknowledged) <= listed  # every acknowledged start is there
        assert len(listed) - len(acknowledged) <= 1  # and at most the one in flight when it died
        if point == "snapshot_saved":
            assert len(await _objects(store)) == 2  # the one it pointed at, and the orphan of the dead process
        # It goes on: its writes cross the next mark, its snapshot purges the log and sweeps the orphan.
        before = store.snapshot_seq
        for i in range(25):
            await Runs(store).start(StartRequest("wf", f"after-{i}", b"[]", "h"))

        async def first_seq() -> int:
            return await store._client.call(store._c_first_seq)  # type: ignore[union-attr]

        # The pointer moves, then the log is purged up to it: wait for both (and the sweep).
        with anyio.fail_after(30):
            while store.snapshot_seq <= before or len(await _objects(store)) != 1 \
                    or await first_seq() != store.snapshot_seq + 1:
                await anyio.sleep(0.05)
    finally:
        await store.close()
    reader = NatsStore(nats_url)
    await reader.open()
    try:
        runs = await reader.list_runs(status=None, workflow=None, limit=1000, offset=0)
        assert set(acknowledged) | {f"after-{i}" for i in range(25)} <= {r.workflow_id for r in runs}
    finally:
        await reader.close()

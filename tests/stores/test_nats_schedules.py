"""The NATS store keeps schedules in its log and in its snapshots."""

from __future__ import annotations

import pytest

from retold.stores import ScheduleRow, Tx
from retold.stores.nats import NatsStore
from tests.stores.test_nats_store import _busy, _stream_first_seq, wait_for

pytestmark = pytest.mark.anyio


async def test_a_snapshot_carries_the_schedules(nats_url: str) -> None:
    writer = NatsStore(nats_url, snapshot_every=25)
    await writer.open()
    try:
        def put(tx: Tx) -> None:
            tx.put_schedule(ScheduleRow("kept", 123.0, b'{"a": 1}'))
            tx.put_schedule(ScheduleRow("gone", None, b"{}"))
        await writer.transact(put)
        await writer.transact(lambda tx: tx.delete_schedule("gone"))
        await _busy(writer, runs=6, signals=8)
        await wait_for(lambda: writer.snapshot_seq >= 25)
        assert await _stream_first_seq(writer) > 2  # the messages that wrote the schedules are gone
        reader = NatsStore(nats_url, snapshot_every=25)
        await reader.open()
        try:
            assert reader.snapshot_seq == writer.snapshot_seq
            assert await reader.transact(lambda tx: tx.schedules()) == [ScheduleRow("kept", 123.0, b'{"a": 1}')]
        finally:
            await reader.close()
    finally:
        await writer.close()

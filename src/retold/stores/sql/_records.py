"""Rows as records."""

from __future__ import annotations

from typing import Any

import orjson

from ...history.failure import Failure
from .._protocol import RunRecord

__all__ = ["row_to_run"]


def row_to_run(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        workflow=row.workflow,
        status=row.status,
        created_at=row.created_at,
        closed_at=row.closed_at,
        last_seq=row.last_seq,
        result=row.result,
        failure=Failure.from_json(orjson.loads(row.failure)) if row.failure else None,
        parent_run_id=row.parent_run_id,
        next_run_id=row.next_run_id,
        parent_close_policy=row.parent_close_policy,
        search_attributes=orjson.loads(row.search_attributes) if row.search_attributes else None,
        memo=orjson.loads(row.memo) if row.memo is not None else None,
    )

"""Finding runs: the time of one ``list_runs`` filtered by a search attribute, among ``--runs`` runs.

The store gets ``--runs`` runs (no workers), each with ``customer`` (1,000
values: ``--runs``/1,000 runs each) and ``n`` (unique); the script then lists
the first 50 runs of one customer, and the one run of one ``n``, 20 times
each, and reports the mean time per list. On SQL stores the filter reads the
``(name, value)`` index of ``retold_search_attributes`` (docs/finding-runs.md).

    python benchmarks/list_by_attribute.py --runs 20000 \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints one line per store and filter.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from _common import postgres_schema
from retold.engine import Runs
from retold.stores import StartRequest, open_store

FILTERS = {"customer (1 in 1,000)": {"customer": "s:c7"}, "n (one run)": {"n": "i:12345"}}


async def measure(url: str, runs: int) -> dict[str, tuple[int, float]]:
    store = open_store(url)
    await store.open()
    try:
        starter = Runs(store)
        for i in range(runs):
            await starter.start(StartRequest("wf", f"r{i}", b"[]", "h", search_attributes={
                "customer": f"s:c{i % 1000}", "n": f"i:{i}"}))
        found: dict[str, tuple[int, float]] = {}
        for label, attributes in FILTERS.items():
            began = time.perf_counter()
            for _ in range(20):
                listed = await store.list_runs(status=None, workflow=None, limit=50, offset=0, attributes=attributes)
            found[label] = (len(listed), 1000 * (time.perf_counter() - began) / 20)
        return found
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--postgres", help="also measure on this PostgreSQL (in a schema of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls: dict[str, Any] = {"memory": "memory://", "sqlite": f"sqlite:///{Path(tmp) / 'list.db'}"}
        if args.postgres:
            urls["postgres"] = stack.enter_context(postgres_schema(args.postgres, "bench_list"))
        for name, url in urls.items():
            for label, (count, ms) in anyio.run(measure, url, args.runs).items():
                print(f"{name:8} {args.runs} runs, filter {label}: {count} listed, {ms:.2f} ms per list",
                      flush=True)


if __name__ == "__main__":
    main()

"""CPU seconds per unit of work (getrusage) beside wall time, in this process, on a SQLite file.

W3: one workflow of N sequential no-op activities (CPU per step); W1: N
workflows of 3 activities started at once (CPU per workflow). Run it with
two installs to compare (the figures of one install vary less than wall
time on a shared machine, but alternate the runs and quote medians).

    python benchmarks/cpu_per_step.py [--units 500] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import anyio

import retold


@retold.activity
async def noop(i: int) -> int:
    """Nothing, at once."""
    return i


@retold.workflow
async def chain(n: int) -> int:
    """N activities one after another."""
    total = 0
    for i in range(n):
        total += await retold.execute(noop, i)
    return total


@retold.workflow
async def three() -> int:
    """Three activities one after another."""
    return sum([await retold.execute(noop, i) for i in range(3)])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(kind: str, units: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per unit of ``kind``."""
    with tempfile.TemporaryDirectory() as tmp:
        async with retold.Engine(f"sqlite:///{tmp}/cpu.db", workflows=[chain, three], activities=[noop]) as engine:
            await (await engine.start(chain, 10)).result(timeout=60)  # warm up
            cpu, wall = _cpu(), time.perf_counter()
            if kind == "W3":
                await (await engine.start(chain, units)).result(timeout=600)
            else:
                runs = [await engine.start(three) for _ in range(units)]
                for run in runs:
                    await run.result(timeout=600)
            return (_cpu() - cpu) / units * 1e3, (time.perf_counter() - wall) / units * 1e3


def main() -> None:
    """Measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for kind in ("W3", "W1"):
        runs = [anyio.run(measure, kind, args.units) for _ in range(args.repeat)]
        cpu = [r[0] for r in runs]
        wall = [r[1] for r in runs]
        figures[kind] = {"cpu_ms_per_unit": cpu, "wall_ms_per_unit": wall,
                         "cpu_median": statistics.median(cpu), "wall_median": statistics.median(wall)}
        unit = "step" if kind == "W3" else "workflow"
        print(f"{kind}: CPU {statistics.median(cpu):.3f} ms per {unit} ({', '.join(f'{c:.3f}' for c in cpu)}), "
              f"wall {statistics.median(wall):.3f} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

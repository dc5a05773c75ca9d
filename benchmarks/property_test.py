"""How long a property test of the onboarding example takes (retold.testing).

Runs ``assert_deterministic`` with 200 generated scenarios (input, signal
timing, activity failures, crashes, evictions, cancel) several times and
prints the median wall time, with and without the cross-process replay
check, and writes JSON.

    python benchmarks/property_test.py [--examples 200] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from retold.testing import assert_deterministic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import onboarding  # noqa: E402


def once(examples: int, cross_process: bool) -> float:
    """Seconds for one property run of ``examples`` scenarios."""
    chosen = settings(
        max_examples=examples, deadline=None, database=InMemoryExampleDatabase(),
        suppress_health_check=[HealthCheck.too_slow], report_multiple_bugs=False,
    )
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the example's activities print
        assert_deterministic(
            onboarding.onboard,
            args=st.tuples(st.emails(), st.floats(min_value=1, max_value=86_400)),
            signals=st.lists(st.tuples(st.just("email_confirmed"), st.booleans()), max_size=2).map(tuple),
            activities=[onboarding.create_account, onboarding.send_email],
            queries=["status"], cancel=True, cross_process=cross_process, settings=chosen,
        )
    return time.perf_counter() - began


def main() -> None:
    """Parse arguments, measure, print and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/property_test.json"))
    args = parser.parse_args()
    figures: dict[str, object] = {"examples": args.examples, "repeat": args.repeat, "load": os.getloadavg()}
    for cross in (True, False):
        runs = [once(args.examples, cross) for _ in range(args.repeat)]
        key = "with_cross_process" if cross else "in_process_only"
        figures[key] = {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}
        print(f"{args.examples} examples, {key.replace('_', ' ')}: median {statistics.median(runs):.2f} s "
              f"(min {min(runs):.2f}, max {max(runs):.2f}, {args.repeat} runs)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

"""A booking saga: book a flight, a hotel and a car; undo in reverse on failure.

Each booking is an activity. When one fails for good (here: it raises a
non-retryable ``ApplicationError``, so the retry policy stops at once), the
workflow sees ``retold.ActivityError`` and runs the compensating activities
of the bookings already made, newest first, then fails the run. Because
every step is recorded, a crash in the middle of the compensations resumes
them where they stopped, without cancelling anything twice.

The hotel booking also fails once with a transient error, to show a retry.

Run it::

    python examples/saga.py                  # the car rental fails (default)
    python examples/saga.py --fail-at hotel  # the hotel fails: only the flight is undone
    python examples/saga.py --fail-at none   # everything is booked
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@dataclass
class Trip:
    """A trip to book. ``fail_at`` names the step that will fail (for the demo)."""

    traveller: str
    destination: str
    fail_at: str | None = None


@dataclass
class Itinerary:
    """The booking references of a fully booked trip."""

    flight: str
    hotel: str
    car: str


def reference(prefix: str) -> str:
    """A booking reference derived from the activity's idempotency key.

    The key is the same on every attempt of one activity call, so a retried
    booking would reuse it; a real booking API takes it to drop duplicates.
    """
    key = retold.activity_info().idempotency_key
    return f"{prefix}-{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:6].upper()}"


def sold_out(trip: Trip, step: str) -> None:
    """Fail for good if the demo asked ``step`` to fail."""
    if trip.fail_at == step:
        say("activity", f"book_{step}: nothing available in {trip.destination} (non-retryable)")
        raise retold.ApplicationError(f"no {step} available in {trip.destination}", non_retryable=True)


# Bookings give up after 3 attempts; compensations retry until they succeed
# (max_attempts=0 means unlimited), since a saga must not stop half undone.
BOOKING = retold.RetryPolicy(initial_interval=timedelta(milliseconds=200), max_attempts=3)
UNDO = retold.RetryPolicy(initial_interval=timedelta(milliseconds=200), max_attempts=0)


@retold.activity(retry=BOOKING, start_to_close=timedelta(seconds=10))
async def book_flight(trip: Trip) -> str:
    """Book the flight."""
    sold_out(trip, "flight")
    ref = reference("FL")
    say("activity", f"book_flight: {trip.traveller} to {trip.destination} -> {ref}")
    return ref


@retold.activity(retry=BOOKING, start_to_close=timedelta(seconds=10))
async def book_hotel(trip: Trip) -> str:
    """Book the hotel; the first attempt hits a transient error and is retried."""
    attempt = retold.activity_info().attempt
    if attempt == 1:
        say("activity", "book_hotel: attempt 1 timed out talking to the hotel (will retry)")
        raise ConnectionError("hotel API timed out")
    sold_out(trip, "hotel")
    ref = reference("HT")
    say("activity", f"book_hotel: attempt {attempt} -> {ref}")
    return ref


@retold.activity(retry=BOOKING, start_to_close=timedelta(seconds=10))
async def book_car(trip: Trip) -> str:
    """Book the rental car."""
    sold_out(trip, "car")
    ref = reference("CR")
    say("activity", f"book_car: pick-up in {trip.destination} -> {ref}")
    return ref


@retold.activity(retry=UNDO, start_to_close=timedelta(seconds=10))
async def cancel_flight(ref: str) -> str:
    """Cancel a flight booking."""
    say("compensate", f"cancel_flight {ref}")
    return f"cancelled {ref}"


@retold.activity(retry=UNDO, start_to_close=timedelta(seconds=10))
async def cancel_hotel(ref: str) -> str:
    """Cancel a hotel booking."""
    say("compensate", f"cancel_hotel {ref}")
    return f"cancelled {ref}"


@retold.activity(retry=UNDO, start_to_close=timedelta(seconds=10))
async def cancel_car(ref: str) -> str:
    """Cancel a car booking."""
    say("compensate", f"cancel_car {ref}")
    return f"cancelled {ref}"


@retold.workflow
async def book_trip(trip: Trip) -> Itinerary:
    """Book all three or none: on failure, undo what was booked in reverse order."""
    undo: list[tuple[retold.Activity[[str], str], str]] = []
    try:
        flight = await retold.execute(book_flight, trip)
        undo.append((cancel_flight, flight))
        hotel = await retold.execute(book_hotel, trip)
        undo.append((cancel_hotel, hotel))
        car = await retold.execute(book_car, trip)
        undo.append((cancel_car, car))
    except retold.ActivityError as error:
        for compensation, ref in reversed(undo):
            await retold.execute(compensation, ref)
        raise retold.ApplicationError(
            f"trip not booked ({error.__cause__}); {len(undo)} booking(s) cancelled"
        ) from error
    return Itinerary(flight=flight, hotel=hotel, car=car)


ACTIVITIES = [book_flight, book_hotel, book_car, cancel_flight, cancel_hotel, cancel_car]


async def run_example(db: Path, fail_at: str | None) -> None:
    """Run one booking saga and report how it ended."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[book_trip], activities=ACTIVITIES) as engine:
        trip = Trip(traveller="Ada", destination="Lisbon", fail_at=fail_at)
        run = await engine.start(book_trip.with_options(id=f"trip-{uuid.uuid4().hex[:8]}"), trip)
        say("main", f"started workflow {run.workflow_id} (failing step: {fail_at or 'none'})")
        try:
            itinerary = await run.result(timeout=60)
        except retold.WorkflowFailedError as failed:
            say("main", f"saga rolled back: {failed.__cause__}")
        else:
            say("main", f"booked: flight={itinerary.flight} hotel={itinerary.hotel} car={itinerary.car}")
        description = await run.describe()
        say("main", f"run status: {description.status}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="A booking saga with compensations.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    parser.add_argument(
        "--fail-at", choices=["flight", "hotel", "car", "none"], default="car",
        help="which booking fails for good (default: car)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "saga.db"
        say("main", f"database: {db}")
        anyio.run(run_example, db.resolve(), None if args.fail_at == "none" else args.fail_at)


if __name__ == "__main__":
    main()

"""User onboarding: activities, a durable sleep, a signal with a timeout and a query.

The workflow creates an account, sends a welcome email, then waits for the
user to confirm their address (a signal). Once confirmed it waits a little
(a durable timer) and sends a tips email; if no confirmation arrives in time
it sends a reminder instead. The main program plays the user: it watches the
run through the ``status`` query and sends the ``email_confirmed`` signal.

Run it::

    python examples/onboarding.py                 # a fresh database in a temp dir
    python examples/onboarding.py --db app.db     # keep the database
    python examples/onboarding.py --no-confirm    # let the confirmation time out
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


# -- activities: the side effects, run at least once and retried on failure ------

QUICK_RETRIES = retold.RetryPolicy(initial_interval=timedelta(milliseconds=200), max_attempts=5)


@retold.activity(retry=QUICK_RETRIES, start_to_close=timedelta(seconds=10))
async def create_account(email: str) -> str:
    """Create the account; the idempotency key makes a retried attempt harmless."""
    key = retold.activity_info().idempotency_key
    account_id = "acct-" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:8]
    say("activity", f"create_account({email!r}) -> {account_id}")
    return account_id


@retold.activity(retry=QUICK_RETRIES, start_to_close=timedelta(seconds=10))
async def send_email(email: str, template: str) -> str:
    """Send one templated email (here: print it) and return its message id."""
    message_id = "msg-" + uuid.uuid5(uuid.NAMESPACE_URL, retold.activity_info().idempotency_key).hex[:8]
    say("activity", f"send_email({email!r}, {template!r}) -> {message_id}")
    return message_id


# -- the workflow: deterministic orchestration, no I/O of its own ------------------


@dataclass
class OnboardingResult:
    """What the onboarding workflow returns."""

    account_id: str
    confirmed: bool


@retold.workflow
async def onboard(email: str, confirm_within: float) -> OnboardingResult:
    """Onboard one user; ``confirm_within`` is the confirmation deadline in seconds.

    Workflow code does not print: it is replayed (for queries and after a
    crash), and a print would repeat. Activities and the caller print instead.
    """
    status = "creating account"
    retold.set_query_handler("status", lambda: status)

    account_id = await retold.execute(create_account, email)
    status = "sending welcome email"
    await retold.execute(send_email, email, "welcome")

    status = "waiting for email confirmation"
    confirmed = await retold.wait_signal("email_confirmed", bool, timeout=confirm_within)
    if not confirmed:
        status = "confirmation timed out, sending reminder"
        await retold.execute(send_email, email, "please-confirm")
        return OnboardingResult(account_id, confirmed=False)

    status = "confirmed, tips email due in 1 s"
    await retold.sleep(timedelta(seconds=1))  # a durable timer: survives restarts
    status = "sending tips email"
    await retold.execute(send_email, email, "getting-started-tips")
    status = "done"
    return OnboardingResult(account_id, confirmed=True)


# -- the caller ---------------------------------------------------------------------


async def wait_for_status(run: retold.RunHandle[OnboardingResult], wanted: str) -> None:
    """Poll the ``status`` query until it reports ``wanted``."""
    with anyio.fail_after(10):
        while (status := await run.query("status")) != wanted:
            await anyio.sleep(0.05)
    say("main", f"query status -> {status!r}")


async def run_example(db: Path, confirm: bool) -> None:
    """Start one onboarding run and drive it to completion."""
    async with retold.Engine(
        f"sqlite:///{db}", workflows=[onboard], activities=[create_account, send_email]
    ) as engine:
        # A fresh workflow id on each run, so reusing --db starts a new run
        # instead of returning the one a previous invocation finished.
        workflow_id = f"onboarding-{uuid.uuid4().hex[:8]}"
        run = await engine.start(onboard.with_options(id=workflow_id), "ada@example.com", 30.0 if confirm else 1.5)
        say("main", f"started workflow {run.workflow_id}")

        await wait_for_status(run, "waiting for email confirmation")
        if confirm:
            await run.signal("email_confirmed", True)
            say("main", "sent signal email_confirmed=True")
            await wait_for_status(run, "confirmed, tips email due in 1 s")
        else:
            say("main", "not confirming; the workflow's 1.5 s timeout will pass")

        result = await run.result(timeout=30)
        say("main", f"result: account_id={result.account_id} confirmed={result.confirmed}")
        description = await run.describe()
        say("main", f"describe: status={description.status} events={description.event_count}")
        say("main", "history:")
        for event in await run.history():
            print(f"         {event.seq:2d} {event.type}", flush=True)


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    parser.add_argument("--no-confirm", action="store_true", help="never send the confirmation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "onboarding.db"
        say("main", f"database: {db}")
        anyio.run(run_example, db.resolve(), not args.no_confirm)


if __name__ == "__main__":
    main()

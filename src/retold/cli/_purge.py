"""``retold purge``: delete finished runs older than a given age."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import click
import orjson

import retold

from ._common import open_client, run, url_option
from ._runs import STATUSES

__all__ = ["parse_age", "purge"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a sum of them (``1d12h``) as a timedelta.

    Raises:
        click.BadParameter: anything else.
    """
    spec = text.strip().lower()
    parts = _AGE.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec:
        raise click.BadParameter(
            f"{text!r} is not an age: write a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1d12h",
            param_hint="--older-than",
        )
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _age(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    return parse_age(value)


@click.command()
@click.option("--older-than", "older_than", metavar="AGE", required=True, callback=_age,
              help="Runs that finished longer ago than this: 30d, 12h, 90m, 45s, 2w, 1d12h.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([s for s in STATUSES if s not in ("running", "blocked")]),
              help="Only runs with this status (repeat for several). Default: every finished run.")
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@url_option
def purge(
    older_than: timedelta, statuses: tuple[str, ...], workflow: str | None, dry_run: bool, as_json: bool, url: str,
) -> None:
    """Delete finished runs (and their histories) that closed longer ago than --older-than.

    Running runs are never touched. A run goes with its children and, if it
    is the last run of its workflow id, with its continue-as-new chain and the
    id itself. Runs go in small transactions, so workers on the same store
    keep working meanwhile. `Engine(retention=...)` does the same on its own.
    """

    async def body() -> retold.PurgeReport:
        async with open_client(url) as client:
            return await client.purge(older_than, statuses=statuses or None, workflow=workflow, dry_run=dry_run)

    report = run(body)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {report.runs} runs ({report.events} events, {report.workflow_ids} workflow ids, "
               f"{report.tasks} tasks, {report.inbox} inbox inputs, {report.timers} timers)")
    if report.kept:
        click.echo(f"kept {report.kept} old runs that go with a run still running (a later purge takes them)")

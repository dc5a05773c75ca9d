"""``retold schedule create|update|list|describe|pause|resume|trigger|delete``: schedules in the store."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click
import orjson

import retold

from ._common import app_option, codec_option, load_app, load_codec, open_client, parse_json, run, url_option

__all__ = ["schedule"]

_OVERLAPS = ["skip", "buffer_one", "allow_all", "cancel_previous"]


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def _show(described: retold.ScheduleDescription) -> None:
    when = described.cron if described.cron is not None else f"every {described.every}"
    state = "paused" if described.paused else "active"
    click.echo(f"{described.id}: {described.workflow} {when} ({described.timezone}), {state}, "
               f"overlap={described.overlap}, fires={described.fires}, skipped={described.skipped}")
    if described.last_workflow_id:
        click.echo(f"  last run: {described.last_workflow_id}")
    for fire in described.next_fires:
        click.echo(f"  next: {fire.isoformat()}")


@click.group()
def schedule() -> None:
    """Schedules: start a workflow on a cron expression or every interval (docs/schedules.md).

    Engines that run workers (`retold worker`, `retold serve`, your program) fire them.
    """


@schedule.command()
@click.argument("schedule_id", metavar="ID")
@click.argument("workflow")
@click.option("--input", "input_", metavar="JSON", default="[]", show_default=True,
              help="The workflow's arguments as a JSON array, e.g. '[\"ada\", 3]'.")
@click.option("--cron", metavar="EXPR", help="A cron expression (five fields), e.g. '0 2 * * *'.")
@click.option("--every", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Fire every this many seconds (instead of --cron).")
@click.option("--timezone", default="UTC", show_default=True, metavar="ZONE",
              help="The IANA time zone --cron is read in, e.g. Europe/Paris.")
@click.option("--jitter", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Start each fire up to this long after its time.")
@click.option("--overlap", type=click.Choice(_OVERLAPS), default="skip", show_default=True,
              help="What a fire does while the previous run is still open.")
@click.option("--catchup-limit", type=click.IntRange(min=1, max=10_000), default=1, show_default=True,
              help="After downtime, how many of the missed fire times to start (the latest).")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@app_option(required=True)
@url_option
@codec_option
def create(
    schedule_id: str, workflow: str, input_: str, cron: str | None, every: float | None, timezone: str,
    jitter: float | None, overlap: str, catchup_limit: int, paused: bool, as_json: bool, app_spec: str, url: str,
    codec_spec: str | None,
) -> None:
    """Create schedule ID, which starts WORKFLOW (a registered workflow name) with --input at each fire time."""
    args = parse_json(input_, "--input")
    if not isinstance(args, list):
        raise click.BadParameter("must be a JSON array of the workflow's arguments", param_hint="--input")
    try:
        spec = retold.Schedule(
            schedule_id, cron=cron, every=None if every is None else timedelta(seconds=every), timezone=timezone,
            jitter=None if jitter is None else timedelta(seconds=jitter), overlap=overlap,  # type: ignore[arg-type]
            catchup_limit=catchup_limit, paused=paused)
    except retold.ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    app = load_app(app_spec)
    codec = load_codec(codec_spec, app)

    async def body() -> retold.ScheduleDescription:
        async with open_client(url, app, create=True, codec=codec) as client:
            handle = await client.schedule_by_name(spec, workflow, args)
            return await handle.describe(next_fires=3)

    described = run(body)
    if as_json:
        _print_json(described.to_json())
    else:
        click.echo("created")
        _show(described)


@schedule.command()
@click.argument("schedule_id", metavar="ID")
@click.option("--workflow", metavar="NAME", help="Start this workflow from now on (with --input, or no arguments).")
@click.option("--input", "input_", metavar="JSON",
              help="New arguments as a JSON array (for --workflow, else the schedule's workflow).")
@click.option("--cron", metavar="EXPR", help="A cron expression (five fields); replaces --every.")
@click.option("--every", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Fire every this many seconds; replaces --cron.")
@click.option("--timezone", metavar="ZONE", help="The IANA time zone --cron is read in.")
@click.option("--jitter", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Start each fire up to this long after its time (0: none).")
@click.option("--overlap", type=click.Choice(_OVERLAPS), help="What a fire does while the previous run is open.")
@click.option("--catchup-limit", type=click.IntRange(min=1, max=10_000),
              help="After downtime, how many of the missed fire times to start.")
@click.option("--pause/--resume", "paused", default=None, help="Pause it, or resume it.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@app_option(required=False)
@url_option
@codec_option
def update(
    schedule_id: str, workflow: str | None, input_: str | None, cron: str | None, every: float | None,
    timezone: str | None, jitter: float | None, overlap: str | None, catchup_limit: int | None, paused: bool | None,
    as_json: bool, app_spec: str | None, url: str, codec_spec: str | None,
) -> None:
    """Change schedule ID in place: the options given; its id, counters and last run stay.

    --workflow or --input need --app (the arguments are checked against the workflow's signature).
    """
    changes: dict[str, Any] = {}
    if cron is not None:
        changes["cron"] = cron
    if every is not None:
        changes["every"] = timedelta(seconds=every)
    if timezone is not None:
        changes["timezone"] = timezone
    if jitter is not None:
        changes["jitter"] = timedelta(seconds=jitter) if jitter else None
    if overlap is not None:
        changes["overlap"] = overlap
    if catchup_limit is not None:
        changes["catchup_limit"] = catchup_limit
    if paused is not None:
        changes["paused"] = paused
    args = None
    if input_ is not None:
        args = parse_json(input_, "--input")
        if not isinstance(args, list):
            raise click.BadParameter("must be a JSON array of the workflow's arguments", param_hint="--input")
    if not changes and workflow is None and args is None:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    if (workflow is not None or args is not None) and not app_spec:
        raise click.UsageError("--workflow and --input need --app (the workflow code, to check the arguments)")
    app = load_app(app_spec) if app_spec else None
    codec = load_codec(codec_spec, app)

    async def body() -> retold.ScheduleDescription:
        async with open_client(url, app, codec=codec) as client:
            return await client.get_schedule(schedule_id).update_by_name(changes, workflow, args)

    described = run(body)
    if as_json:
        _print_json(described.to_json())
    else:
        click.echo("updated")
        _show(described)


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON.")
@url_option
def list_schedules(as_json: bool, url: str) -> None:
    """List the schedules, each with its next fire time."""

    async def body() -> list[retold.ScheduleDescription]:
        async with open_client(url) as client:
            return await client.list_schedules()

    found = run(body)
    if as_json:
        _print_json([d.to_json() for d in found])
    elif not found:
        click.echo("no schedules")
    for described in [] if as_json else found:
        _show(described)


@schedule.command()
@click.argument("schedule_id", metavar="ID")
@click.option("--next", "next_fires", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="How many of the next fire times to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@url_option
def describe(schedule_id: str, next_fires: int, as_json: bool, url: str) -> None:
    """Show schedule ID: its definition, its state and its next fire times."""

    async def body() -> retold.ScheduleDescription:
        async with open_client(url) as client:
            return await client.get_schedule(schedule_id).describe(next_fires=next_fires)

    described = run(body)
    if as_json:
        _print_json(described.to_json())
    else:
        _show(described)


def _simple(name: str, doc: str) -> click.Command:
    @click.argument("schedule_id", metavar="ID")
    @url_option
    def command(schedule_id: str, url: str) -> None:
        async def body() -> str | None:
            async with open_client(url) as client:
                handle = client.get_schedule(schedule_id)
                if name == "trigger":
                    return await handle.trigger()
                await getattr(handle, name)()
                return None

        started = run(body)
        if name == "trigger":
            click.echo(f"started {started}" if started else "not started (the overlap policy skipped or buffered it)")
        else:
            click.echo(f"{name}d {schedule_id}" if name.endswith("e") else f"{name}ed {schedule_id}")

    command.__doc__ = doc
    return click.command(name)(command)


for _name, _doc in (("pause", "Pause schedule ID: it does not fire until resumed."),
                    ("resume", "Resume schedule ID (at most --catchup-limit of the missed fire times start)."),
                    ("trigger", "Fire schedule ID now, under its overlap policy."),
                    ("delete", "Delete schedule ID; the runs it started go on.")):
    schedule.add_command(_simple(_name, _doc))

"""Commands on runs: start, list, show, history, signal, query, cancel, terminate."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click
import orjson

import retold

from ._common import App, app_option, codec_option, load_app, load_codec, open_client, parse_json, run, url_option

# rich (in ._render) is imported by the commands that draw tables: `retold signal` starts faster.

__all__ = ["cancel", "history", "list_runs", "query", "show", "signal", "start", "terminate"]

_SECONDS = click.FloatRange(min=0, min_open=True, max=100 * 366 * 86400)  # a time limit: at most 100 years
STATUSES = ["running", "blocked", "completed", "failed", "cancelled", "continued", "terminated", "timed_out"]


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")


def _description(run_: retold.RunDescription) -> dict[str, Any]:
    return {f: getattr(run_, f) for f in run_.__dataclass_fields__}


@click.command()
@click.argument("workflow")
@click.option("--input", "input_", metavar="JSON", default="[]", show_default=True,
              help="The workflow's arguments as a JSON array, e.g. '[\"ada\", 3]'.")
@click.option("--id", "workflow_id", metavar="ID", help="The workflow id (default: a new UUID). "
              "Starting again with the same id and input returns the same run.")
@click.option("--idempotency-key", metavar="KEY", help="Like --id, for a key kept apart from the id.")
@click.option("--id-reuse-policy", type=click.Choice(["allow_duplicate", "allow_duplicate_failed_only",
              "reject_duplicate"]), help="When the run of --id is closed: start a new run (allow_duplicate), only "
              "after a failed, cancelled or terminated one (allow_duplicate_failed_only), or refuse "
              "(reject_duplicate). Default: the same input returns the closed run.")
@click.option("--run-timeout", type=_SECONDS, metavar="SECONDS",
              help="Close the run as timed_out this long after it started.")
@click.option("--execution-timeout", type=_SECONDS, metavar="SECONDS",
              help="The same, across continue-as-new.")
@click.option("--start-delay", type=_SECONDS, metavar="SECONDS",
              help="Start the run's code this long from now.")
@click.option("--signal", "signal_name", metavar="NAME", help="Signal-with-start: send signal NAME to the run "
              "of --id (required), starting it first if there is none, in one step.")
@click.option("--signal-value", metavar="JSON", default=None, help="The --signal's value as JSON (default null).")
@click.option("--attr", "attrs", metavar="NAME=VALUE", multiple=True, help="A search attribute of the run "
              "(repeat for more): VALUE is text, or typed as int:3, float:2.5, bool:true, datetime:2026-01-31T12:00Z.")
@click.option("--memo", metavar="JSON", default=None, help="The run's memo, a JSON object (shown by `retold show`).")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its result.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@app_option(required=True)
@url_option
@codec_option
def start(
    workflow: str, input_: str, workflow_id: str | None, idempotency_key: str | None, id_reuse_policy: str | None,
    run_timeout: float | None, execution_timeout: float | None, start_delay: float | None, signal_name: str | None,
    signal_value: str | None, attrs: tuple[str, ...], memo: str | None, wait: bool, as_json: bool, app_spec: str,
    url: str, codec_spec: str | None,
) -> None:
    """Start a run of WORKFLOW (a registered workflow name).

    The run is executed by the workers (`retold worker`, `retold serve`, or
    your own program) on the same store; --wait waits for its result. With
    --signal, the run of --id gets that signal, started first if there is
    none (an open run keeps its input; a closed one is an error).
    """
    args = parse_json(input_, "--input")
    if not isinstance(args, list):
        raise click.BadParameter("must be a JSON array of the workflow's arguments, e.g. '[\"ada\", 3]'",
                                 param_hint="--input")
    value: Any = None
    if signal_name is None:
        if signal_value is not None:
            raise click.BadParameter("needs --signal NAME", param_hint="--signal-value")
    else:
        if not signal_name:
            raise click.BadParameter("must not be empty", param_hint="--signal")
        if not workflow_id:
            raise click.BadParameter("--signal needs --id: the run to signal is the one with that id",
                                     param_hint="--id")
        if idempotency_key is not None:
            raise click.BadParameter("does not go with --signal (a retry would signal again)",
                                     param_hint="--idempotency-key")
        if signal_value is not None:
            value = parse_json(signal_value, "--signal-value")
    found: dict[str, Any] = {"search_attributes": _attributes(attrs) or None}
    if memo is not None:
        found["memo"] = parse_json(memo, "--memo")
        if not isinstance(found["memo"], dict):
            raise click.BadParameter("must be a JSON object", param_hint="--memo")
    app = load_app(app_spec)
    codec = load_codec(codec_spec, app)

    async def body() -> tuple[retold.RunDescription, Any, bool]:
        async with open_client(url, app, create=True, codec=codec) as client:
            if signal_name is not None and workflow_id:
                handle = await client.signal_with_start_by_name(
                    workflow, signal_name, value, args, id=workflow_id, id_reuse_policy=id_reuse_policy,
                    run_timeout=run_timeout, execution_timeout=execution_timeout, start_delay=start_delay, **found)
            else:
                handle = await client.start_by_name(
                    workflow, args, id=workflow_id, idempotency_key=idempotency_key, id_reuse_policy=id_reuse_policy,
                    run_timeout=run_timeout, execution_timeout=execution_timeout, start_delay=start_delay, **found)
            result = await handle.result() if wait else None
            return await handle.describe(), result, handle.created

    described, result, created = run(body)
    if as_json:
        _print_json({**_description(described), **({"result": result} if wait else {})})
        return
    verb = "started" if created else "already started:"
    if signal_name is not None:
        verb = "started with signal" if created else "signalled"
    click.echo(f"{verb} {described.workflow} workflow_id={described.workflow_id} run_id={described.run_id}")
    if wait:
        click.echo(orjson.dumps(result).decode())


def _attributes(attrs: tuple[str, ...], option: str = "--attr") -> dict[str, Any]:
    """``NAME=VALUE`` options as search attributes (VALUE in text form: ``retold.client.parse_attribute_value``)."""
    found: dict[str, Any] = {}
    for item in attrs:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        try:
            found[name] = retold.client.parse_attribute_value(text)
        except retold.InvalidArgumentsError as err:
            raise click.BadParameter(str(err), param_hint=option) from None
    return found


class _Time(click.ParamType[datetime]):
    """An ISO 8601 date-time with a time zone (2026-01-31T12:00:00+00:00, or Z)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date-time such as 2026-01-31T12:00:00+00:00", param, ctx)
        if when.tzinfo is None:
            self.fail(f"{value!r} needs a time zone (+00:00 or Z)", param, ctx)
        return when


_TIME = _Time()


@click.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status (blocked: open runs whose "
              "workflow task keeps failing, e.g. after a bad deploy).")
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow.")
@click.option("--id-prefix", metavar="PREFIX", help="Only runs whose workflow id or run id starts with PREFIX.")
@click.option("--attr", "attrs", metavar="NAME=VALUE", multiple=True, help="Only runs with this search attribute "
              "value (repeat for more): text, or typed as int:3, float:2.5, bool:true, datetime:2026-01-31T12:00Z.")
@click.option("--started-after", type=_TIME, metavar="TIME", help="Only runs started at or after TIME "
              "(ISO 8601 with a time zone: 2026-01-31T12:00:00+00:00).")
@click.option("--started-before", type=_TIME, metavar="TIME", help="Only runs started before TIME.")
@click.option("--closed-after", type=_TIME, metavar="TIME", help="Only runs closed at or after TIME.")
@click.option("--closed-before", type=_TIME, metavar="TIME", help="Only runs closed before TIME.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="At most this many.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Skip the newest N first.")
@click.option("--cursor", metavar="CURSOR", help="The page after a previous list's (printed at its end), "
              "with the same filters.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@url_option
def list_runs(
    status: str | None, workflow: str | None, id_prefix: str | None, attrs: tuple[str, ...],
    started_after: datetime | None, started_before: datetime | None, closed_after: datetime | None,
    closed_before: datetime | None, limit: int, offset: int, cursor: str | None, as_json: bool, url: str,
) -> None:
    """List runs, newest first, a page at a time.

    When more runs match, the next page's cursor is printed on stderr
    ("next page: --cursor CURSOR"); pass it with the same filters.
    """
    attributes = _attributes(attrs)

    async def body() -> retold.RunPage:
        async with open_client(url) as client:
            return await client.list_runs(
                status=status, workflow=workflow, limit=limit, offset=offset, id_prefix=id_prefix,
                started_after=started_after, started_before=started_before, closed_after=closed_after,
                closed_before=closed_before, search_attributes=attributes or None, cursor=cursor)

    runs = run(body)
    from ._render import console, runs_table

    if as_json:
        _print_json([_description(r) for r in runs])
    elif not runs:
        click.echo("no runs")
    else:
        console().print(runs_table(runs))
    if runs.next_cursor is not None:
        click.echo(f"next page: --cursor {runs.next_cursor}", err=True)  # stdout holds only the runs


@click.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the description and history as JSON.")
@url_option
@app_option(required=False)
@codec_option
def show(ident: str, as_json: bool, url: str, app_spec: str | None, codec_spec: str | None) -> None:
    """Show a run: status, timings and its history as a timeline.

    ID is a workflow id (its latest run) or a run id. A blocked run shows why:
    the error, the diverging event, attempts and the next retry. With --codec
    (or an --app that defines a codec), the timeline shows payloads decoded.
    """
    codec = load_codec(codec_spec, load_app(app_spec) if app_spec else None)

    async def body() -> tuple[retold.RunDescription, retold.History]:
        async with open_client(url) as client:
            described = await client.get_handle(ident).describe()
            return described, await client.get_handle(described.run_id).history()

    described, events = run(body)
    if as_json:
        _print_json({**_description(described), "history": events.to_dict()})
        return
    from ._render import console, describe_table, pending_table, timeline

    out = console()
    out.print(describe_table(described))
    pending = pending_table(described.pending) if described.pending else None
    if pending is not None:
        out.print()
        out.print(pending)
    out.print()
    out.print(timeline(events, codec))


@click.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the history's JSON export (retold.History.to_json), "
              "which `retold replay` and retold.testing read.")
@click.option("--after", type=click.IntRange(0), default=0, show_default=True,
              help="Only the events numbered after this one.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many events (default: all).")
@url_option
def history(ident: str, as_json: bool, after: int, limit: int | None, url: str) -> None:
    """Print a run's history (ID: workflow id or run id), or a page of it (--after, --limit)."""

    async def body() -> retold.History:
        async with open_client(url) as client:
            return await client.get_handle(ident).history(after=after, limit=limit)

    events = run(body)
    if as_json:
        sys.stdout.buffer.write(events.to_json(indent=True) + b"\n")
    else:
        from ._render import console, timeline

        console().print(timeline(events))


@click.command()
@click.argument("ident", metavar="ID")
@click.argument("name")
@click.option("--value", metavar="JSON", default="null", show_default=True, help="The signal's value, as JSON.")
@app_option(required=False)
@url_option
@codec_option
def signal(ident: str, name: str, value: str, app_spec: str | None, url: str, codec_spec: str | None) -> None:
    """Send signal NAME to run ID; it is durable when this returns.

    With --app, a value that does not decode as the type the workflow
    declares for NAME (@retold.workflow(signals=...)) is refused and nothing
    is written; without it, the run drops such a value with a WARNING.
    """
    payload = parse_json(value, "--value")
    app = load_app(app_spec) if app_spec else None
    codec = load_codec(codec_spec, app)

    async def body() -> None:
        async with open_client(url, app, codec=codec) as client:
            await client.get_handle(ident).signal(name, payload)

    run(body)
    click.echo(f"signalled {name} to {ident}")


@click.command()
@click.argument("ident", metavar="ID")
@click.argument("name")
@click.option("--args", "args_", metavar="JSON", default="[]", show_default=True,
              help="The query handler's arguments, as a JSON array.")
@app_option(required=True)
@url_option
@codec_option
def query(ident: str, name: str, args_: str, app_spec: str, url: str, codec_spec: str | None) -> None:
    """Ask run ID's query handler NAME and print its answer as JSON.

    The run's history is replayed here through the code at --app; nothing is
    written.
    """
    args = parse_json(args_, "--args")
    if not isinstance(args, list):
        raise click.BadParameter("must be a JSON array", param_hint="--args")
    app: App = load_app(app_spec)
    codec = load_codec(codec_spec, app)

    async def body() -> Any:
        async with open_client(url, app, codec=codec) as client:
            return await client.get_handle(ident).query(name, *args)

    click.echo(orjson.dumps(run(body), option=orjson.OPT_NON_STR_KEYS).decode())


@click.command()
@click.argument("ident", metavar="ID")
@click.option("--reason", default="", help="Recorded in the CancelRequested event.")
@url_option
def cancel(ident: str, reason: str, url: str) -> None:
    """Ask run ID to cancel (CancelledError is raised at its current await)."""

    async def body() -> None:
        async with open_client(url) as client:
            await client.get_handle(ident).cancel(reason)

    run(body)
    click.echo(f"cancel requested for {ident}")


@click.command()
@click.argument("ident", metavar="ID")
@click.option("--reason", default="", help="Recorded in the WorkflowTerminated event; the parent run sees it.")
@url_option
def terminate(ident: str, reason: str, url: str) -> None:
    """Close run ID at once, without running its code (for a stuck or blocked run).

    Unlike cancel, the workflow code is not asked. Pending activities and
    timers are dropped, the parent sees the child fail with REASON, and
    children are asked to cancel.
    """

    async def body() -> None:
        async with open_client(url) as client:
            await client.get_handle(ident).terminate(reason)

    run(body)
    click.echo(f"terminated {ident}")

"""``retold update``: send an update to a run and print its handler's result."""

from __future__ import annotations

import uuid
from typing import Any

import click
import orjson

import retold

from ._common import App, app_option, codec_option, load_app, load_codec, open_client, parse_json, run, url_option

__all__ = ["update"]


@click.command()
@click.argument("ident", metavar="ID")
@click.argument("name")
@click.option("--args", "args_", metavar="JSON", default="[]", show_default=True,
              help="The update handler's arguments, as a JSON array.")
@click.option("--id", "update_id", metavar="UPDATE_ID", default=None,
              help="The update id (default: a new one). Sent again, the update runs once and answers the same.")
@click.option("--wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for the handler's result.")
@app_option(required=True)
@url_option
@codec_option
def update(
    ident: str, name: str, args_: str, update_id: str | None, wait: float, app_spec: str, url: str,
    codec_spec: str | None,
) -> None:
    """Send update NAME to run ID and print its handler's result as JSON.

    The run's validator judges it first, on a replay of its history through
    the code at --app: a rejected update is reported and nothing is written.
    If the handler has not finished after --wait seconds, the same command
    with --id UPDATE_ID (printed) waits for that update's reply again.
    """
    args = parse_json(args_, "--args")
    if not isinstance(args, list):
        raise click.BadParameter("must be a JSON array", param_hint="--args")
    app: App = load_app(app_spec)
    codec = load_codec(codec_spec, app)
    chosen = update_id or str(uuid.uuid4())

    async def body() -> Any:
        async with open_client(url, app, codec=codec) as client:
            try:
                return await client.get_handle(ident).update(name, *args, id=chosen, timeout=wait)
            except retold.UpdateTimeoutError:
                raise click.ClickException(
                    f"update {chosen!r} was accepted and had not finished after {wait:g} s: run this command "
                    f"again with --id {chosen} to wait for its result") from None

    click.echo(orjson.dumps(run(body), option=orjson.OPT_NON_STR_KEYS).decode())

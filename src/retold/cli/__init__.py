"""The ``retold`` command: run workers and the HTTP API, start, inspect and replay runs.

Every command goes through the same client API as Python code
(``retold.Engine``); ``docs/cli.md`` describes them all.
"""

from __future__ import annotations

import click

from ._common import url_option
from ._purge import purge
from ._replay import replay
from ._runs import cancel, history, list_runs, query, show, signal, start, terminate
from ._schedules import schedule
from ._serve import serve, worker
from ._update import update

__all__ = ["cli", "main"]


class _InOrder(click.Group):
    """Lists commands in the order they were added: run, then inspect, then check."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_InOrder, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="retold")
def cli() -> None:
    """retold: durable execution for Python.

    Runs live in a store given by --url or RETOLD_URL (default
    sqlite:///retold.db). Commands that run or replay workflow code take
    --app MODULE[:ATTR] (or RETOLD_APP).
    """


@click.command()
@url_option
def demo(url: str) -> None:
    """Run a demo order workflow and print its history as it is written."""
    from .._demo import main as demo_main

    demo_main(url)


for command in (worker, serve, start, list_runs, show, history, signal, query, update, cancel, terminate, schedule,
                purge, replay, demo):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit status."""
    try:
        cli.main(args=argv, prog_name="retold", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


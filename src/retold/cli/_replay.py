"""``retold replay``: the check to run before a deploy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

import retold

from ._common import app_option, codec_option, load_app, load_codec, open_client, run, url_option

if TYPE_CHECKING:
    from rich.console import Console

    from retold.testing import ReplayOutcome

__all__ = ["replay"]


@click.command()
@click.argument("targets", nargs=-1, metavar="[ID | FILE | FOLDER]...")
@app_option(required=True)
@url_option
@click.option("--workflow", metavar="NAME", help="Stored runs of this workflow only.")
@click.option("--status", type=click.Choice(["running", "blocked", "completed", "failed", "cancelled", "continued",
                                           "terminated", "timed_out"]),
              help="Stored runs with this status only.")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True,
              help="At most this many stored runs (newest first).")
@click.option("--pickle", "use_pickle", is_flag=True,
              help="The runs were recorded with retold.PickleCodec. Unpickling runs code the history names: "
                   "use it only on histories your own processes wrote. History files outside the current "
                   "directory are refused unless --trust is given.")
@click.option("--trust", is_flag=True,
              help="With --pickle, also unpickle history files outside the current directory (this runs any "
                   "code they name: only for files whose origin you know).")
@codec_option
def replay(
    targets: tuple[str, ...], app_spec: str, url: str, workflow: str | None, status: str | None, limit: int,
    use_pickle: bool, trust: bool, codec_spec: str | None,
) -> None:
    """Replay recorded histories against the code at --app; exit 1 on divergence.

    With no arguments, every stored run (of the workflows --app defines) is
    replayed; otherwise each argument is a run id or workflow id, a history
    file (`retold history ID --json`) or a folder of them. A history whose
    replay diverges is reported with its first diverging event: what was
    recorded and what the code asks for now.

    With --pickle, replaying a history file unpickles it, which runs any
    code the file names: only files inside the current directory (the
    project's own) are read, unless --trust is given.
    """
    # Imported here, not at the top: the other commands start faster without them.
    from retold.testing import Replayer, history_files

    from ._render import console

    app = load_app(app_spec)
    if use_pickle and codec_spec:
        raise click.UsageError("give --pickle or --codec, not both")
    codec = retold.PickleCodec() if use_pickle else load_codec(codec_spec, app)
    replayer = Replayer(app.workflows, codec=codec)
    files: list[Path] = []
    ids: list[str] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files += history_files(path)
        elif path.is_file():
            files.append(path)
        else:
            ids.append(target)

    async def stored() -> list[retold.History]:
        async with open_client(url, app, codec=codec) as client:
            if ids:
                return [await client.get_handle(i).history() for i in ids]
            known = {w.name for w in app.workflows}
            runs = await client.list_runs(status=status, workflow=workflow, limit=limit)
            return [await client.get_handle(r.run_id).history() for r in runs if r.workflow in known]

    if use_pickle and not trust:
        _refuse_foreign_pickles(files)
    histories: list[retold.History | Path] = list(run(stored)) if ids or not targets else []
    histories += files
    if not histories:
        raise click.ClickException("nothing to replay: no stored runs of the --app workflows, and no history files")
    outcomes = replayer.replay_all(histories)
    out = console()
    for source, outcome in zip(histories, outcomes, strict=True):
        label = f"{source.workflow_id} (run {source.run_id})" if isinstance(source, retold.History) else str(source)
        _report(out, label, outcome)
    failed = [o for o in outcomes if not o.ok]
    summary = f"{len(outcomes) - len(failed)} of {len(outcomes)} histories replay against the current code"
    if failed:
        out.print(f"[bold red]{summary}; {len(failed)} do not[/]")
        raise SystemExit(1)
    out.print(f"[green]{summary}[/]")


def _refuse_foreign_pickles(files: list[Path]) -> None:
    """Refuse, before anything is unpickled, history files from outside the project's directory.

    Paths are resolved first, so a symbolic link inside the directory to a
    file outside it is refused too.
    """
    project = Path.cwd().resolve()
    foreign = [f for f in files if not f.resolve().is_relative_to(project)]
    if foreign:
        named = ", ".join(str(f) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise click.ClickException(
            f"refusing to unpickle {named}: outside the project directory {project}, and unpickling a "
            f"history runs any code it names. Replay from the directory the file belongs to, move it there "
            f"once you know who wrote it, or pass --trust if you trust its origin."
        )


def _report(out: Console, label: str, outcome: ReplayOutcome) -> None:
    if outcome.ok:
        assert outcome.result is not None
        state = "finished" if outcome.result.finished else "in progress"
        out.print(f"[green]ok[/]    {label}: {outcome.result.events} events ({state})", markup=True)
        return
    error = outcome.error
    out.print(f"[bold red]FAIL[/]  {label}: {type(error).__name__}", highlight=False)
    if isinstance(error, retold.NondeterminismError):
        out.print(f"      first diverging event: #{error.seq}", highlight=False)
        out.print(f"      recorded:  {error.recorded}", highlight=False, markup=False)
        out.print(f"      code asks: {error.requested}", highlight=False, markup=False)
    else:
        out.print(f"      {error}", highlight=False, markup=False)

"""What the commands share: options, loading the user's app, a client engine, errors."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import anyio
import click
import orjson

import retold
from retold.history.codec import parse_json as parse_exact_json

__all__ = [
    "DEFAULT_URL", "App", "app_option", "client", "load_app", "parse_json", "run", "url_option",
]

T = TypeVar("T")

DEFAULT_URL = "sqlite:///retold.db"

url_option = click.option(
    "--url", envvar="RETOLD_URL", default=DEFAULT_URL, show_default=True, metavar="URL",
    help="Where runs are stored: sqlite:///path.db or memory:// (env RETOLD_URL).",
)


def app_option(*, required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--app MODULE[:ATTR]``: where the workflow code is (env RETOLD_APP)."""
    return click.option(
        "--app", "app_spec", envvar="RETOLD_APP", required=required, metavar="MODULE[:ATTR]",
        help="Your workflows and activities: a module (all it defines), or MODULE:ATTR naming one, "
             "or a list of them (env RETOLD_APP).",
    )


@dataclass
class App:
    """The workflows and activities found at ``--app``."""

    spec: str
    workflows: list[retold.Workflow[*tuple[Any, ...], Any]] = field(default_factory=list)
    activities: list[retold.Activity[*tuple[Any, ...], Any]] = field(default_factory=list)


def _collect(app: App, obj: Any, where: str) -> None:
    if isinstance(obj, retold.Workflow):
        if all(w is not obj for w in app.workflows):
            app.workflows.append(obj)
    elif isinstance(obj, retold.Activity):
        if all(a is not obj for a in app.activities):
            app.activities.append(obj)
    elif isinstance(obj, ModuleType):
        for value in vars(obj).values():
            if isinstance(value, retold.Workflow | retold.Activity):
                _collect(app, value, where)
    elif isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        for item in obj.values() if isinstance(obj, dict) else obj:
            _collect(app, item, where)
    else:
        raise click.ClickException(f"{where} is a {type(obj).__name__}, not a workflow, activity, module or list")


def load_app(spec: str) -> App:
    """Import ``MODULE[:ATTR]`` (from the working directory too) and collect what it names.

    Raises:
        click.ClickException: the module cannot be imported, or holds no workflow or activity.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise click.ClickException(f"--app {spec!r}: expected MODULE or MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would, so that local modules import
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises is reported in one line
        raise click.ClickException(f"cannot import --app module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.ClickException(f"--app {spec!r}: {module_name} has no attribute {attr!r}") from None
    app = App(spec)
    _collect(app, obj, f"--app {spec!r}")
    if not app.workflows and not app.activities:
        raise click.ClickException(f"--app {spec!r} defines no @retold.workflow or @retold.activity")
    return app


def parse_json(text: str, what: str) -> Any:
    """Parse a JSON option value.

    Raises:
        click.BadParameter: not JSON, or an integer beyond 64 bits (never rounded to a float).
    """
    try:
        return parse_exact_json(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {text!r}", param_hint=what) from None
    except retold.PayloadError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def _require_database(url: str) -> None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise click.ClickException(f"no database at {path} (give --url or set RETOLD_URL)")


@asynccontextmanager
async def client(url: str, app: App | None = None, *, create: bool = False) -> AsyncIterator[retold.Engine]:
    """An engine that reads and writes runs but runs no workflow code.

    Args:
        url: the store.
        app: workflows to know by name (for ``start`` and ``query``).
        create: allow a SQLite file that does not exist yet.
    """
    if not create:
        _require_database(url)
    engine = retold.Engine(
        url, workflows=app.workflows if app else (), activities=app.activities if app else (), run_workers=False
    )
    async with engine:
        yield engine


def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async command body; retold errors become one line and exit status 1."""
    try:
        return anyio.run(fn, *args)
    except retold.RetoldError as exc:
        raise click.ClickException(str(exc)) from None

"""What the commands share: options, loading the user's app, a client, errors."""

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
    "DEFAULT_URL", "App", "app_option", "codec_option", "load_app", "load_codec", "open_client", "parse_json", "run",
    "url_option",
]

T = TypeVar("T")

DEFAULT_URL = "sqlite:///retold.db"

url_option = click.option(
    "--url", envvar="RETOLD_URL", default=DEFAULT_URL, show_default=True, metavar="URL",
    help="Where runs are stored: sqlite:///path.db, postgresql+psycopg://..., nats://host:4222 or memory:// "
         "(env RETOLD_URL).",
)


def app_option(*, required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--app MODULE[:ATTR]``: where the workflow code is (env RETOLD_APP)."""
    return click.option(
        "--app", "app_spec", envvar="RETOLD_APP", required=required, metavar="MODULE[:ATTR]",
        help="Your workflows and activities: a module (all it defines), or MODULE:ATTR naming one, "
             "or a list of them (env RETOLD_APP).",
    )


codec_option = click.option(
    "--codec", "codec_spec", envvar="RETOLD_CODEC", metavar="MODULE:ATTR",
    help="The codec the runs' payloads are encoded with: a retold.Codec instance, or a class or function "
         "that makes one (env RETOLD_CODEC). Default: the codec --app's module defines, else JSON.",
)


@dataclass
class App:
    """The workflows, activities and codec found at ``--app``."""

    spec: str
    workflows: list[retold.Workflow[..., Any]] = field(default_factory=list)
    activities: list[retold.Activity[..., Any]] = field(default_factory=list)
    codecs: list[retold.Codec] = field(default_factory=list)

    @property
    def codec(self) -> retold.Codec | None:
        """The one codec the app's modules define, if any.

        Raises:
            click.ClickException: they define several.
        """
        if len(self.codecs) > 1:
            names = ", ".join(type(c).__name__ for c in self.codecs)
            raise click.ClickException(
                f"--app {self.spec!r} defines {len(self.codecs)} codecs ({names}): name one with --codec MODULE:ATTR"
            )
        return self.codecs[0] if self.codecs else None


def _is_codec(obj: Any) -> bool:
    return not isinstance(obj, type) and isinstance(obj, retold.Codec)


def _collect(app: App, obj: Any, where: str) -> None:
    if _is_codec(obj):
        if all(c is not obj for c in app.codecs):
            app.codecs.append(obj)
    elif isinstance(obj, retold.Workflow):
        if all(w is not obj for w in app.workflows):
            app.workflows.append(obj)
    elif isinstance(obj, retold.Activity):
        if all(a is not obj for a in app.activities):
            app.activities.append(obj)
    elif isinstance(obj, ModuleType):
        for value in vars(obj).values():
            if isinstance(value, retold.Workflow | retold.Activity) or _is_codec(value):
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


def load_codec(spec: str | None, app: App | None = None) -> retold.Codec | None:
    """The codec ``--codec MODULE:ATTR`` names, else the one ``app`` defines, else None (JSON).

    Raises:
        click.ClickException: the spec names nothing that is or makes a codec.
    """
    if not spec:
        return app.codec if app is not None else None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.ClickException(f"--codec {spec!r}: expected MODULE:ATTR, e.g. myapp.codecs:codec")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not _is_codec(obj) and callable(obj):
            obj = obj()  # a codec class or factory
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises is reported in one line
        raise click.ClickException(f"--codec {spec!r}: {type(exc).__name__}: {exc}") from None
    if not _is_codec(obj):
        raise click.ClickException(
            f"--codec {spec!r} is a {type(obj).__name__}, not a codec (an object with name, encode, decode "
            "and convert, like retold.JsonCodec)"
        )
    codec: retold.Codec = obj
    return codec


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
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise click.ClickException(f"no database at {path} (give --url or set RETOLD_URL)")


@asynccontextmanager
async def open_client(
    url: str, app: App | None = None, *, create: bool = False, codec: retold.Codec | None = None
) -> AsyncIterator[retold.Client]:
    """A :class:`retold.Client`: it reads and writes runs and hosts none.

    Args:
        url: the store.
        app: workflows to know by name (for ``start`` and ``query``).
        create: allow a SQLite file that does not exist yet.
        codec: the payloads' codec (default JSON).
    """
    if not create:
        _require_database(url)
    async with retold.Client(url, workflows=app.workflows if app else (), codec=codec) as opened:
        yield opened


def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async command body; retold errors become one line and exit status 1."""
    try:
        return anyio.run(fn, *args)
    except retold.PayloadError as exc:
        raise click.ClickException(
            f"{exc} (if the runs' payloads use another codec, name it with --codec MODULE:ATTR)"
        ) from None
    except retold.RetoldError as exc:
        raise click.ClickException(str(exc)) from None

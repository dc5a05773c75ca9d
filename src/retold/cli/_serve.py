"""``retold serve`` and ``retold worker``: long-running processes hosting an engine."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import click

import retold

from . import _metrics
from ._common import App, app_option, load_app, url_option

__all__ = ["serve", "worker"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@app_option(required=False)
@url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="The port.")
@click.option("--token", "tokens", multiple=True, envvar="RETOLD_TOKENS", metavar="TOKEN",
              help="Require `Authorization: Bearer TOKEN` (repeatable; env RETOLD_TOKENS, space-separated).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Allow listening beyond loopback without a token (anyone who reaches it can start runs).")
@click.option("--workers/--no-workers", default=True, show_default=True,
              help="Also run the workflows and activities of --app in this process.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True,
              help="Serve the web dashboard at / (docs/dashboard.md).")
@click.option("--max-body-size", type=click.IntRange(1), default=4 * 1024 * 1024, show_default=True,
              help="Refuse request bodies over this many bytes (413).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]), help="uvicorn's log level.")
@click.option("--metrics/--no-metrics", default=None,
              help="Serve Prometheus metrics on /metrics, without a token (default: when the packages are installed).")
def serve(
    app_spec: str | None, url: str, host: str, port: int, tokens: tuple[str, ...], insecure_no_auth: bool,
    workers: bool, dashboard: bool, max_body_size: int, log_level: str, metrics: bool | None,
) -> None:
    """Serve the HTTP API (docs/http.md) and the dashboard on uvicorn.

    It starts the workflows of --app by name, and with --workers (the
    default) runs them too. Without a token it listens only on loopback,
    unless --insecure-no-auth says otherwise.
    """
    if not tokens and not is_loopback(host) and not insecure_no_auth:
        raise click.UsageError(
            f"refusing to listen on {host} without authentication: give --token (or RETOLD_TOKENS), "
            "or --insecure-no-auth if the network in between is trusted"
        )
    try:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Mount, Route

        from retold.http import create_app
    except ImportError as exc:
        raise click.ClickException(f"retold serve needs the http extra: pip install 'retold[http]' ({exc})") from None
    app = load_app(app_spec) if app_spec else App("")
    provider = _metrics.meter_provider() if metrics is not False else None
    if metrics and provider is None:
        raise click.ClickException(_metrics.MISSING)
    meter = {"meter_provider": provider} if provider is not None else {}
    # With --workers the process hosts the runs; without, it is a client of workers elsewhere.
    target: retold.Engine | retold.Client = (
        retold.Engine(url, workflows=app.workflows, activities=app.activities, **meter) if workers
        else retold.Client(url, workflows=app.workflows, **meter)
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with target:
            yield

    api = create_app(target, tokens=list(tokens) if tokens else None, max_body_size=max_body_size,
                     dashboard=dashboard)
    routes = [Route("/metrics", _AsgiEndpoint(_metrics.asgi_app()))] if provider is not None else []
    asgi = Starlette(routes=[*routes, Mount("/", api)], lifespan=lifespan)
    click.echo(f"retold: serving {url} on http://{host}:{port} "
               f"({len(app.workflows)} workflows{', running them' if workers else ''}"
               f"{', bearer tokens required' if tokens else ''}{', dashboard at /' if dashboard else ''}"
               f"{', metrics on /metrics' if provider is not None else ''})", err=True)
    # A few seconds for open event streams to end before the engine closes.
    uvicorn.run(asgi, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=3)


class _AsgiEndpoint:
    """An ASGI function as a Starlette route's endpoint (a plain function would be taken for a view)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _WorkerSetupError(click.ClickException):
    exit_code = 2  # the target or an option is not usable: nothing ran


@click.command()
@click.argument("app_spec", metavar="MODULE[:ATTR]", envvar="RETOLD_APP")
@click.option(
    "--url", envvar="RETOLD_URL", default=None, metavar="URL",
    help="Where runs are stored (env RETOLD_URL); default: the target's, else sqlite:///retold.db.",
)
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="Seconds that tasks in flight get to finish after SIGTERM; the rest is handed back.")
@click.option("--lease", type=float, default=None, help="Lease length in seconds (engine default 5).")
@click.option("--poll-interval", type=float, default=None, help="Seconds between polls for work (default 0.5).")
@click.option("--concurrency", type=int, default=None, help="Activity attempts at once per task queue (100).")
@click.option("--backend", type=click.Choice(["asyncio", "trio"]), default="asyncio", show_default=True)
@click.option("--log-level", default="INFO", show_default=True, help="Logging level of the engine's log.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on http://HOST:PORT/metrics.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="The address the metrics listen on (0.0.0.0 for a scraper on another machine).")
def worker(
    app_spec: str, url: str | None, grace: float, lease: float | None, poll_interval: float | None,
    concurrency: int | None, backend: str, log_level: str, metrics_port: int | None, metrics_host: str,
) -> None:
    """Run the workflows and activities of MODULE[:ATTR] until SIGTERM.

    MODULE[:ATTR] names a module (everything it defines), a list of
    workflows and activities, one of them, or a mapping of Engine arguments.
    Any number of workers, on any machines sharing the store, split the
    work. SIGTERM or SIGINT drains: no new claims, tasks in flight get
    --grace seconds, the rest is handed back at once, exit status 0.
    """
    from .._worker import load_target, run_worker  # the worker's drain logic lives there

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would, so that local modules import
    options: dict[str, Any] = {
        key: value for key, value in (
            ("lease", lease), ("poll_interval", poll_interval), ("activity_concurrency", concurrency),
        ) if value is not None
    }
    if metrics_port is not None:
        options["meter_provider"] = _metrics.meter_provider()
        if options["meter_provider"] is None:
            raise _WorkerSetupError(_metrics.MISSING)
        try:
            _metrics.start_server(metrics_host, metrics_port)
        except OSError as exc:
            raise _WorkerSetupError(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}") from None
        click.echo(f"retold worker: metrics on http://{metrics_host}:{metrics_port}/metrics", err=True)
    try:
        target = load_target(app_spec)
        names = ", ".join(w.name for w in target.get("workflows", ())) or "no workflows"
        activities = len(list(target.get("activities", ())))
        click.echo(f"retold worker: {names}; {activities} activities; store {url or target.get('url') or 'default'}",
                   err=True)
        run_worker(app_spec, url, grace=grace, backend=backend, **options)
    except (retold.ConfigurationError, retold.StoreError) as exc:
        raise _WorkerSetupError(str(exc)) from None
    sys.stderr.flush()

"""Developer sessions: ``nox -s tests lint typecheck examples`` (bench on request)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "examples"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and import order."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, tests, examples and this file."""
    session.install("-e", ".[test]", "nox")
    session.run("mypy", "--strict")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example against a fresh SQLite file."""
    session.install("-e", ".[otel]", "opentelemetry-sdk", "structlog")  # observability.py's logging and tracing
    for name in ("onboarding", "parallel", "retention", "saga", "split_mode", "observability", "ping_pong",
                 "bad_deploy", "stuck_work"):
        session.run("python", f"examples/{name}.py")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmark harness (``nox -s bench -- --peer dbos``): prints a table, writes JSON."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)

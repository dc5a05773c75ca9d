"""Errors for features whose optional dependencies (extras) are not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(exc: ModuleNotFoundError, extra: str, feature: str) -> ModuleNotFoundError:
    """``feature`` needs the ``extra`` extra: an error that names it and how to install it."""
    return ModuleNotFoundError(
        f"{feature} needs {exc.name or 'a package'}, which is not installed: pip install 'retold[{extra}]'",
        name=exc.name,
    )

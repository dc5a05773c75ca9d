"""Definitions by name: what an engine hosts and a client knows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ._decorators import Activity, Workflow

__all__ = ["by_name"]

_D = TypeVar("_D", Workflow[..., Any], Activity[..., Any])


def by_name(items: Iterable[object], kind: type[_D], name: str, plural: str) -> dict[str, _D]:
    """The definitions in ``items`` by registered name.

    Raises:
        ConfigurationError: an item is not a ``kind``, or two share a name.
    """
    # Iterable[object]: mypy infers list[object] for a list of definitions with different
    # signatures (``ACTIVITIES = [charge, refund]``); each item is checked here instead.
    registry: dict[str, _D] = {}
    for item in items:
        if not isinstance(item, kind):
            raise ConfigurationError(f"{plural}= takes @retold.{name} functions, got {item!r}")
        if getattr(item, "reference", False):
            raise ConfigurationError(f"{plural}= takes @retold.{name} functions, got {item!r}, a name only "
                                     f"(retold.workflow_ref): host the workflow's own code")
        if registry.get(item.name, item) is not item:
            raise ConfigurationError(f"two {plural} are named {item.name!r}")
        registry[item.name] = item
    return registry

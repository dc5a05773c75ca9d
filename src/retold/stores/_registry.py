"""Stores by URL: the scheme of a store URL names the store that opens it.

retold's own stores are listed here and imported only when their scheme is
used (SQLAlchemy is not loaded for a store that does not need it). Other
distributions add stores through the ``retold.stores`` entry-point group:
the entry point's name is the scheme, its object a callable that takes the
URL and keyword options and returns a :class:`~retold.stores.Store`::

    [project.entry-points."retold.stores"]
    redis = "retold_redis:RedisStore"

A URL's scheme is what comes before ``:``; a scheme with a driver
(``postgresql+psycopg``) is looked up whole first, then by its base
(``postgresql``), and the store checks the driver itself.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import ConfigurationError, StoreError
from ._protocol import Store

__all__ = ["ENTRY_POINT_GROUP", "open_memory", "open_store", "store_schemes"]

ENTRY_POINT_GROUP = "retold.stores"

log = logging.getLogger("retold.stores")

# scheme -> "module:attribute" of the callable that opens it, imported on first use.
_BUILTIN = {
    "sqlite": "retold.stores.sql:SqlStore",  # sqlite:// alone: SQLite in memory
    "memory": "retold.stores._registry:open_memory",
    "postgresql": "retold.stores.sql:SqlStore",
    "postgres": "retold.stores.sql:SqlStore",
    "nats": "retold.stores.nats:NatsStore",  # retold[nats]: imported only when used
    "tls": "retold.stores.nats:NatsStore",  # NATS over TLS
}


def open_memory(url: str, **options: Any) -> Store:
    """``memory://``: the pure in-memory store (its URL says nothing more)."""
    from .memory import MemoryStore

    return MemoryStore(**options)


def _scheme(url: str) -> str:
    scheme, colon, _ = url.partition(":")
    if not colon or not scheme:
        raise StoreError(
            f"unsupported store URL {url!r}: it has no scheme; write sqlite:///path.db, memory:// or "
            "postgresql+psycopg://user@host/dbname (known schemes: " + ", ".join(store_schemes()) + ")"
        )
    return scheme.lower()


def _plugins() -> dict[str, EntryPoint]:
    """The stores other distributions register, by scheme; built-in schemes cannot be taken."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        scheme = point.name.lower()
        if scheme in _BUILTIN:
            log.warning("ignoring the %s entry point %r (%s): %r is a built-in store scheme",
                        ENTRY_POINT_GROUP, point.name, point.value, scheme)
        elif scheme in found and found[scheme].value != point.value:
            raise ConfigurationError(
                f"two {ENTRY_POINT_GROUP} entry points claim the scheme {scheme!r}: "
                f"{found[scheme].value} and {point.value}; uninstall one of them"
            )
        else:
            found[scheme] = point
    return found


def store_schemes() -> list[str]:
    """Every scheme :func:`open_store` knows: retold's own and those of installed plugins, sorted."""
    return sorted({*_BUILTIN, *_plugins()})


def _factory(scheme: str) -> tuple[str, Callable[..., Any]] | None:
    """The callable that opens ``scheme`` (tried whole, then without its ``+driver``), and where it is from."""
    plugins: dict[str, EntryPoint] | None = None
    for candidate in dict.fromkeys((scheme, scheme.partition("+")[0])):
        if candidate in _BUILTIN:
            module, _, attr = _BUILTIN[candidate].partition(":")
            return _BUILTIN[candidate], getattr(importlib.import_module(module), attr)
        plugins = _plugins() if plugins is None else plugins
        point = plugins.get(candidate)
        if point is not None:
            where = f"{point.value} (entry point {point.name!r} of {ENTRY_POINT_GROUP})"
            try:
                loaded = point.load()
            except Exception as exc:
                raise ConfigurationError(f"the store for {scheme}:// cannot be loaded from {where}: "
                                         f"{type(exc).__name__}: {exc}") from exc
            if not callable(loaded):
                raise ConfigurationError(f"the store for {scheme}:// from {where} is not callable")
            return where, loaded
    return None


def open_store(url: str, **options: Any) -> Store:
    """Make the store a URL names (not opened yet: the engine or client opens it).

    Args:
        url: ``sqlite:///path.db``, ``memory://``,
            ``postgresql+psycopg://user@host/db``, or a scheme a plugin
            registers in the ``retold.stores`` entry-point group.
        options: keyword arguments for that store (for the SQL store:
            ``clock``, ``pool_size``, ``busy_timeout``...).

    Raises:
        StoreError: no store is known for the URL's scheme (the message
            lists the known ones), or the store refused the URL (a missing
            driver, say).
        ConfigurationError: a plugin's store cannot be loaded, or what it
            made is not a store.
    """
    scheme = _scheme(url)
    found = _factory(scheme)
    if found is None:
        raise StoreError(
            f"unsupported store URL {url!r}: no store is known for the scheme {scheme!r}; known schemes are "
            + ", ".join(store_schemes())
            + f" (a store package registers more in the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    where, factory = found
    store = factory(url, **options)
    missing = [name for name in ("open", "close", "load", "get_run", "list_runs") if not hasattr(store, name)]
    if missing:
        raise ConfigurationError(
            f"{where} made {type(store).__name__} for {url!r}, which is not a retold store (no {', '.join(missing)})"
        )
    result: Store = store
    return result

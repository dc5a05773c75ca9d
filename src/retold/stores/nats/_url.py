"""The NATS store's URL: its servers and options."""

from __future__ import annotations

import re
from typing import NamedTuple

from ...errors import ConfigurationError

__all__ = ["SNAPSHOT_EVERY", "NatsUrl", "parse_url"]

SNAPSHOT_EVERY = 10_000  # log messages between snapshots (the log before a snapshot is deleted)
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class NatsUrl(NamedTuple):
    """What a NATS store URL names."""

    servers: list[str]
    prefix: str
    replicas: int
    snapshot_every: int = SNAPSHOT_EVERY


def parse_url(url: str) -> NatsUrl:
    """What ``nats://host:port[,host:port...][?prefix=retold&replicas=1&snapshot_every=10000]`` names."""
    base, _, query = url.partition("?")
    scheme, sep, hosts = base.partition("://")
    if not sep or scheme not in ("nats", "tls") or not hosts.strip("/"):
        raise ConfigurationError(f"invalid NATS store URL {url!r}: write nats://host:4222 (several servers: "
                                 "nats://a:4222,b:4222; options: ?prefix=retold&replicas=3)")
    servers = [f"{scheme}://{h}" for h in hosts.strip("/").split(",")]
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        options[key] = value
    unknown = set(options) - {"prefix", "replicas", "snapshot_every"}
    if unknown:
        raise ConfigurationError(f"unknown option(s) {', '.join(sorted(unknown))} in NATS store URL {url!r}: "
                                 "the options are prefix, replicas and snapshot_every")
    prefix = options.get("prefix", "retold")
    if not _PREFIX.match(prefix):
        raise ConfigurationError(f"invalid prefix {prefix!r} in NATS store URL {url!r}: use letters, digits, "
                                 "'_' and '-' (at most 64)")
    try:
        replicas = int(options.get("replicas", "1"))
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= 5:
        raise ConfigurationError(f"invalid replicas {options.get('replicas')!r} in NATS store URL {url!r}: "
                                 "1 to 5 (3 for a cluster)")
    every = options.get("snapshot_every", str(SNAPSHOT_EVERY))
    if not every.isascii() or not every.isdigit():
        raise ConfigurationError(f"invalid snapshot_every {every!r} in NATS store URL {url!r}: a number of log "
                                 "messages (0: never snapshot nor truncate the log)")
    return NatsUrl(servers, prefix, replicas, int(every))

"""Loopback ports for servers a test starts in another process.

Binding port 0 and closing the socket hands out a port from the kernel's
ephemeral range, the range every outgoing connection (PostgreSQL, NATS,
httpx, the other test process) also takes its local port from: in the time
between the close and the server's own bind, one of them may take it. These
ports come from below that range, where only explicit binds go, chosen at
random among those free now, and never twice in one test process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_given: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback port nobody listens on now, outside the ephemeral range."""
    low, high = 20000, min(_ephemeral_floor(), 32768) - 1
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(low, high)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free loopback port between {low} and {high}")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports, as :func:`free_port`."""
    return [free_port() for _ in range(n)]

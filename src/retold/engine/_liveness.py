"""Is another engine on this machine still alive? (dead-worker detection)

Each engine with workers records ``(host, pid, process start)`` in the store.
An engine that finds another one recorded on the same host whose process is
gone (or whose pid now belongs to a newer process) ends that engine's leases
at once, so a crashed worker's tasks are taken over in well under a second
instead of when its leases run out. ``host`` includes the boot id and the
pid namespace, so two containers or two boots never judge each other's pids.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["host_key", "is_alive", "process_start"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def host_key() -> str:
    """This machine, boot and pid namespace."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{boot}/{namespace}"[:255]


def _stat(pid: int) -> list[str]:
    """Fields 3 and on of ``/proc/PID/stat`` (empty if unknown)."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces: the fields after the last ')'.
    return stat.rsplit(")", 1)[-1].split() if stat else []


def process_start(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot ('' if unknown)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def is_alive(pid: int, started: str) -> bool:
    """Whether process ``pid``, started at ``started``, still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process with that pid
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent: a zombie runs nothing
    reused = bool(started) and len(fields) > 19 and fields[19] != started  # by a newer process
    return not reused

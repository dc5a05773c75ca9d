"""Random (version 4) UUIDs as strings, for run and workflow ids, without a system call each.

``str(uuid.uuid4())`` reads 16 bytes with ``os.urandom``, a system call
that releases the GIL: on the engine's event loop, while a step thread or
the SQLite writer holds it, each id then waits for the GIL to come back.
Here the bytes come from the same source (``os.urandom``), 4 KiB at a time
(a forked child reads its own).
"""

from __future__ import annotations

import os
import threading

__all__ = ["uuid4_str"]

_BLOCK = 4096  # bytes read at once: 256 ids
_lock = threading.Lock()
_pool = b""
_at = _BLOCK


def uuid4_str() -> str:
    """A new random UUID, formatted as ``str(uuid.uuid4())`` formats one."""
    global _pool, _at
    with _lock:
        if _at >= len(_pool):
            _pool, _at = os.urandom(_BLOCK), 0
        raw = bytearray(_pool[_at:_at + 16])
        _at += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forget() -> None:
    """In a forked child: the parent's unused bytes are the parent's (its next ids)."""
    global _pool, _at, _lock
    _lock = threading.Lock()
    _pool, _at = b"", _BLOCK


os.register_at_fork(after_in_child=_forget)

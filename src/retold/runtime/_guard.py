"""Make workflow code that reaches the outside world fail loudly.

While a workflow activation runs, a thread-local flag is set. An audit hook
(``sys.addaudithook``) rejects files, sockets and subprocesses while the flag
is up; ``time.sleep`` and ``threading.Thread.start``, which raise no audit
event, are wrapped. Outside activations both cost one attribute read.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import WorkflowSandboxError

__all__ = ["guarded", "install", "violation"]

_state = threading.local()
_installed = False
_lock = threading.Lock()

_HINTS: dict[str, tuple[str, str]] = {
    "open": ("open() (file I/O)", "do file I/O in an activity"),
    "os.open": ("os.open() (file I/O)", "do file I/O in an activity"),
    "socket.__new__": ("socket.socket() (network I/O)", "call the network from an activity"),
    "socket.getaddrinfo": ("socket.getaddrinfo() (network I/O)", "call the network from an activity"),
    "socket.connect": ("socket.connect() (network I/O)", "call the network from an activity"),
    "subprocess.Popen": ("subprocess.Popen() (a subprocess)", "run subprocesses in an activity"),
    "os.system": ("os.system() (a subprocess)", "run subprocesses in an activity"),
    "os.exec": ("os.exec*() (a subprocess)", "run subprocesses in an activity"),
    "os.posix_spawn": ("os.posix_spawn() (a subprocess)", "run subprocesses in an activity"),
    "os.spawn": ("os.spawn*() (a subprocess)", "run subprocesses in an activity"),
    "os.fork": ("os.fork()", "run processes in an activity"),
}


def _active() -> bool:
    return getattr(_state, "active", False)


def violation(call: str, hint: str) -> WorkflowSandboxError:
    """Build the error for ``call`` and remember it for the activation."""
    error = WorkflowSandboxError(call, hint)
    if getattr(_state, "first", None) is None:
        _state.first = error
    return error


def _importing() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not getattr(_state, "active", False):
        return
    spec = _HINTS.get(event)
    if spec is None:
        return
    if event in ("open", "os.open") and _importing():
        return  # lazy imports inside workflow code read source files: allowed
    raise violation(*spec)


_real_sleep = time.sleep
_real_start = threading.Thread.start


def _sleep(seconds: float) -> None:
    if _active():
        raise violation("time.sleep() (blocks the worker)", "use await asyncio.sleep() or retold.sleep()")
    _real_sleep(seconds)


def _start(self: threading.Thread) -> None:
    if _active():
        raise violation("threading.Thread.start() (a thread)", "run threads in an activity")
    _real_start(self)


def install() -> None:
    """Install the audit hook and wrappers once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        sys.addaudithook(_audit)
        time.sleep = _sleep  # type: ignore[assignment]  # same behaviour, narrower hint
        threading.Thread.start = _start  # type: ignore[method-assign]
        _installed = True


@contextmanager
def guarded() -> Iterator[None]:
    """Raise on outside-world calls made by the current thread in this block."""
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous


def take_violation() -> WorkflowSandboxError | None:
    """Return and clear the first violation since the last call."""
    error: WorkflowSandboxError | None = getattr(_state, "first", None)
    _state.first = None
    return error

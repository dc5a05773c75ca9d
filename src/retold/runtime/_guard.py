"""Make workflow code that reaches the outside world fail loudly.

While a workflow activation runs, a thread-local flag is set. An audit hook
(``sys.addaudithook``) rejects files, sockets and subprocesses while the flag
is up; ``time.sleep`` and ``threading.Thread.start``, which raise no audit
event, are wrapped. Outside activations both cost one attribute read.

*Strict* mode (used by ``retold.testing``) also installs a profile hook during
activations that reports workflow code reading the wall clock or an
unseeded random source (``time.time()``, ``datetime.now()``,
``random.random()``, ``uuid.uuid4()``, ``os.urandom()``...). It costs a
function call per call made by workflow code, so it is off in production.
"""

from __future__ import annotations

import datetime as _datetime
import os
import random as _random
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import WorkflowSandboxError

__all__ = ["guarded", "install", "strict", "violation"]

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
    profiling = getattr(_state, "strict", False) and not previous
    if profiling:
        profiler = sys.getprofile()
        sys.setprofile(_strict_profile)
    try:
        yield
    finally:
        _state.active = previous
        if profiling:
            sys.setprofile(profiler)


@contextmanager
def strict(enabled: bool = True) -> Iterator[None]:
    """Report wall-clock and random reads by workflow code in this thread (testing)."""
    previous = getattr(_state, "strict", False)
    _state.strict = enabled
    try:
        yield
    finally:
        _state.strict = previous


def is_strict() -> bool:
    """Whether strict mode is on in this thread."""
    return bool(getattr(_state, "strict", False))


# -- strict mode: the wall clock and unseeded randomness ---------------------------

_CLOCK_HINT = "read workflow time with retold.now() (or pass the time in as an argument)"
_RANDOM_HINT = "use retold.random() / retold.uuid4(), which are recorded, or retold.side_effect()"

# C functions whose result differs between a run and its replay.
_WATCHED: dict[Any, tuple[str, str]] = {
    time.time: ("time.time()", _CLOCK_HINT),
    time.time_ns: ("time.time_ns()", _CLOCK_HINT),
    time.monotonic: ("time.monotonic()", _CLOCK_HINT),
    time.monotonic_ns: ("time.monotonic_ns()", _CLOCK_HINT),
    time.perf_counter: ("time.perf_counter()", _CLOCK_HINT),
    time.perf_counter_ns: ("time.perf_counter_ns()", _CLOCK_HINT),
    time.localtime: ("time.localtime()", _CLOCK_HINT),
    time.gmtime: ("time.gmtime()", _CLOCK_HINT),
    os.urandom: ("os.urandom()", _RANDOM_HINT),
}
_WATCHED_METHODS: dict[tuple[Any, str], tuple[str, str]] = {
    (_datetime.datetime, "now"): ("datetime.now()", _CLOCK_HINT),
    (_datetime.datetime, "utcnow"): ("datetime.utcnow()", _CLOCK_HINT),
    (_datetime.datetime, "today"): ("datetime.today()", _CLOCK_HINT),
    (_datetime.date, "today"): ("date.today()", _CLOCK_HINT),
}
# Modules that implement those APIs: their frames are skipped to find the caller.
_API_NAMES = {"random.py": "random", "uuid.py": "uuid", "secrets.py": "secrets", "datetime.py": "datetime"}


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    # Resolved too: a file's path is resolved before it is compared (a venv reached through a symlink).
    roots |= {str(Path(root).resolve()) for root in roots}
    roots.add(str(Path(__file__).resolve().parent.parent))  # retold itself
    return tuple(sorted(roots))


_LIBRARY_ROOTS = _library_roots()
_user_file_cache: dict[str, bool] = {}


def _is_user_file(filename: str) -> bool:
    known = _user_file_cache.get(filename)
    if known is None:
        if filename.startswith("<"):
            known = not filename.startswith("<frozen")
        else:
            resolved = str(Path(filename).resolve())
            known = not resolved.startswith(_LIBRARY_ROOTS)
        _user_file_cache[filename] = known
    return known


def _watched(arg: Any) -> tuple[str, str] | None:
    try:
        spec = _WATCHED.get(arg)
    except TypeError:
        return None
    if spec is not None:
        return spec
    owner = getattr(arg, "__self__", None)
    if owner is _random._inst:
        return (f"random.{arg.__name__}()", _RANDOM_HINT)
    if isinstance(owner, type):
        for (cls, name), method_spec in _WATCHED_METHODS.items():
            if arg.__name__ == name and issubclass(owner, cls):
                return method_spec
    return None


def _strict_profile(frame: FrameType, event: str, arg: Any) -> None:
    if event != "c_call" or not getattr(_state, "active", False):
        return
    spec = _watched(arg)
    if spec is None:
        return
    call, hint = spec
    # Walk out of the modules implementing the API (random.randint -> getrandbits,
    # uuid.uuid4 -> os.urandom) to the code that called it.
    caller: FrameType | None = frame
    while caller is not None:
        name = _API_NAMES.get(Path(caller.f_code.co_filename).name)
        if name is None or not caller.f_code.co_filename.startswith(_LIBRARY_ROOTS):
            break
        call = f"{name}.{caller.f_code.co_name}()"
        caller = caller.f_back
    if caller is None or not _is_user_file(caller.f_code.co_filename):
        return  # a library (logging, asyncio...) reading the clock for itself
    where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
    violation(f"{call} (at {where})", hint)


def take_violation() -> WorkflowSandboxError | None:
    """Return and clear the first violation since the last call."""
    error: WorkflowSandboxError | None = getattr(_state, "first", None)
    _state.first = None
    return error

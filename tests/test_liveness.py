"""Dead-worker detection's view of processes: alive, gone, zombie, pid reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from retold.engine import _liveness


def test_this_process_is_alive_and_has_a_start_time() -> None:
    started = _liveness.process_start(os.getpid())
    assert started.isdigit()
    assert _liveness.is_alive(os.getpid(), started)
    assert not _liveness.is_alive(os.getpid(), str(int(started) + 1))  # a pid now used by another process


def test_a_killed_child_is_dead_before_and_after_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = _liveness.process_start(child.pid)
    assert _liveness.is_alive(child.pid, started)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _liveness.is_alive(child.pid, started):  # a zombie until waited for
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert not _liveness.is_alive(child.pid, started)


def test_the_host_key_names_machine_boot_and_pid_namespace() -> None:
    key = _liveness.host_key()
    assert key.count("/") >= 2
    assert key == _liveness.host_key()

"""Worker processes for the scale-out tests: ``python -m retold worker`` in a child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One ``python -m retold worker TARGET`` process, its stderr in a file."""

    count = 0

    def __init__(self, target: str, url: str, tmp: Path, *options: str) -> None:
        Worker.count += 1
        self.err_path = tmp / f"worker-{Worker.count}.err"
        (tmp / "logs").mkdir(exist_ok=True)
        env = {**os.environ, "RETOLD_TEST_LOG_DIR": str(tmp / "logs"), "PYTHONPATH": str(ROOT)}
        with self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "retold", "worker", target, "--url", url, *options],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        deadline = time.monotonic() + timeout
        while " ready (pid" not in self.stderr():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready after {timeout} s:\n{self.stderr()}")
            time.sleep(0.05)
        return self

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)

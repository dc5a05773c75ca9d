"""A three-server NATS cluster with JetStream on loopback ports, in a temporary directory, for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests._ports import free_ports

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Cluster:
    """Three ``nats-server`` processes with cluster routes; each can be killed (SIGKILL) and started again."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.dir = directory
        ports = free_ports(2 * size)
        self.client_ports, self.route_ports = ports[:size], ports[size:]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        for i in range(size):
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
            (directory / f"n{i}").mkdir(parents=True, exist_ok=True)
            cluster = (f'cluster {{ name: retold_test, listen: 127.0.0.1:{self.route_ports[i]}, '
                       f'routes: [{routes}] }}\n') if size > 1 else ""
            (directory / f"n{i}.conf").write_text(
                f'server_name: n{i}\nlisten: 127.0.0.1:{self.client_ports[i]}\n'
                f'jetstream {{ store_dir: "{directory / f"n{i}"}" }}\n{cluster}'
            )

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def start(self, i: int) -> None:
        with (self.dir / f"n{i}.log").open("ab") as log:
            self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", str(self.dir / f"n{i}.conf")],
                                             stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.client_ports[i]), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.procs[i].poll() is not None:  # type: ignore[union-attr]
                    self.kill(i)
                    raise AssertionError(f"nats-server n{i} did not start:\n{self.log(i)}") from None
                time.sleep(0.05)

    def log(self, i: int) -> str:
        return (self.dir / f"n{i}.log").read_text(errors="replace")

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.procs[i] = None

    def __enter__(self) -> Cluster:
        for i in range(len(self.procs)):
            self.start(i)
        return self

    def __exit__(self, *exc: object) -> None:
        for i in range(len(self.procs)):
            self.kill(i)

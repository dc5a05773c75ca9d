"""Replay histories in a second Python process that hashes strings differently.

Iterating a ``set`` of strings (or anything ordered by ``hash()``/``id()``)
gives the same order every time within one process, so only a process with
another ``PYTHONHASHSEED`` shows that such code is not deterministic. The
worker is started once per property run and fed one history per example.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from typing import IO, Any

import cloudpickle

from ..authoring import Workflow
from ..errors import ConfigurationError
from ..history.codec import Codec, JsonCodec, PickleCodec
from ..history.export import History

__all__ = ["CrossProcessReplayer"]


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError
    (size,) = struct.unpack(">I", header)
    return pickle.loads(stream.read(size))  # noqa: S301 - our own child process


class CrossProcessReplayer:
    """A replay worker process with a different string-hash seed."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._workflow: Workflow[..., Any] | None = None

    def _start(self, workflow: Workflow[..., Any], codec: Codec) -> subprocess.Popen[bytes]:
        module_name, qualname = workflow.fn.__module__, workflow.fn.__qualname__
        module = sys.modules.get(module_name)
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if module_name == "__main__" or found is not workflow:
            raise ConfigurationError(
                f"workflow {workflow.name!r} cannot be imported as {module_name}.{qualname} by a replay "
                "process: define it at module level in an importable module, or pass cross_process=False"
            )
        # The built-in codecs take no configuration: send their class, not their state.
        sent: Any = type(codec) if type(codec) in (JsonCodec, PickleCodec) else codec
        try:
            payload = cloudpickle.dumps((module_name, qualname, sent))
        except Exception as exc:
            raise ConfigurationError(
                f"cannot send the codec of {workflow.name!r} to a replay process ({exc}); pass cross_process=False"
            ) from exc
        ours = os.environ.get("PYTHONHASHSEED", "")
        seed = (int(ours) + 1) % 4294967296 if ours.isdigit() else int.from_bytes(os.urandom(4), "big")
        env = dict(os.environ, PYTHONHASHSEED=str(seed),
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.Popen(
            [sys.executable, "-m", "retold.testing._replay_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        assert proc.stdin is not None
        _send(proc.stdin, payload)
        self._proc, self._workflow = proc, workflow
        return proc

    def __call__(
        self, workflow: Workflow[..., Any], codec: Codec, history: History,
        answers: list[Any], queries: Any,
    ) -> str | None:
        """Replay ``history`` there; return what disagreed, or None."""
        proc = self._proc if self._workflow is workflow and self._proc is not None else None
        if proc is None:
            self.close()
            proc = self._start(workflow, codec)
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            _send(proc.stdin, (history.to_json(), list(queries)))
            ok, detail = _receive(proc.stdout)
        except (EOFError, BrokenPipeError) as exc:
            self.close()
            raise ConfigurationError(
                f"the replay process for {workflow.name!r} died ({exc!r}); is the workflow's module "
                "importable? Pass cross_process=False to skip this check"
            ) from None
        if not ok:
            return str(detail)
        if detail != answers:
            return f"queries answered {detail!r} there, {answers!r} here"
        return None

    def close(self) -> None:
        """Stop the worker process."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

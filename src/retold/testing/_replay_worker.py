"""The child side of :mod:`retold.testing._crossproc`: replay histories sent on stdin."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import cloudpickle

from ..errors import RetoldError
from ..history.export import History
from ..runtime import install_guard, replay, strict_guard
from ._crossproc import _receive, _send
from ._simulate import _ask


def main() -> None:
    """Serve replay requests until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        module_name, qualname, codec = cloudpickle.loads(_receive(stdin))
    except EOFError:
        return
    if isinstance(codec, type):
        codec = codec()
    workflow: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        workflow = getattr(workflow, part)
    install_guard()
    while True:
        try:
            history_json, queries = _receive(stdin)
        except EOFError:
            return
        history = History.from_json(history_json)
        with strict_guard(True):
            instance, completion = replay(workflow, history.run_id, codec, list(history), replay_only=True)
        reply: tuple[bool, Any]
        try:
            with strict_guard(True):
                extra = completion.unwrap()
                if extra:
                    reply = (False, "the code asked for more: " + ", ".join(e.describe() for e in extra))
                else:
                    reply = (True, _ask(instance, codec, [(name, tuple(args)) for name, args in queries]))
        except RetoldError as exc:
            reply = (False, f"{type(exc).__name__}: {exc}")
        finally:
            instance.close()
        _send(stdout, reply)


if __name__ == "__main__":
    main()

"""A fingerprint of the workflow code an engine hosts.

Engines record it when a workflow task fails (the run is then *blocked*),
and claim at once a blocked task whose failures were all under other code:
after a rollback or a fix, the runs a bad deploy blocked resume without
waiting out their backoff. It only has to differ when the code differs, and
a false difference costs one early retry; so it hashes, per workflow, its
compiled code (nested functions included) and the source file of its module
(helpers beside it), both cheap and stable across processes.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["fingerprint"]


def _source(fn: Any) -> bytes:
    try:
        path = inspect.getsourcefile(fn)
        return Path(path).read_bytes() if path else b""
    except (OSError, TypeError):
        return b""


def fingerprint(workflows: Iterable[Any]) -> str:
    """16 hex digits that change with the code of ``workflows`` (``Workflow`` objects)."""
    digest = hashlib.sha256()
    for workflow in sorted(workflows, key=lambda w: w.name):
        fn = inspect.unwrap(workflow.fn)
        digest.update(workflow.name.encode() + b"\0")
        code = getattr(fn, "__code__", None)
        if code is not None:
            digest.update(marshal.dumps(code))
        digest.update(hashlib.sha256(_source(fn)).digest())
    return digest.hexdigest()[:16]

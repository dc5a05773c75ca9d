"""The runtime: a history in, commands out, on a deterministic event loop.

The names below are this package's interface to the rest of retold (the
engine, the client, ``retold.testing``), which import them from here rather
than from the private modules.
"""

from ._guard import install as install_guard
from ._guard import strict as strict_guard
from ._instance import WorkflowInstance as WorkflowInstance
from ._instance import failure_from_exception as failure_from_exception
from ._replay import Completion as Completion
from ._replay import activate as activate
from ._replay import replay as replay
from ._steps import StepRunner as StepRunner

__all__ = [
    "Completion", "StepRunner", "WorkflowInstance", "activate", "failure_from_exception", "install_guard", "replay",
    "strict_guard",
]

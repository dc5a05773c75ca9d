"""Test tools for retold workflows: replay, time skipping and determinism properties.

- :class:`WorkflowEnvironment`: a real engine on a virtual clock that jumps
  over idle time, with fakes for activities.

- :func:`replay` / :class:`Replayer`: check recorded histories (for instance
  of production runs, exported with ``History.to_json()``) against the
  current code before a deploy.
- :func:`assert_deterministic`: hypothesis generates scenarios (signal
  timing, activity failures, crashes, cache evictions) and checks replay
  against each; :func:`check_scenario` runs one scenario, for your own
  ``@given`` tests with :mod:`retold.testing.strategies`.
"""

from ._env import WorkflowEnvironment as WorkflowEnvironment
from ._property import assert_deterministic as assert_deterministic
from ._replay import Replayer as Replayer
from ._replay import ReplayFailedError as ReplayFailedError
from ._replay import ReplayOutcome as ReplayOutcome
from ._replay import ReplayResult as ReplayResult
from ._replay import history_files as history_files
from ._replay import load_history as load_history
from ._replay import replay as replay
from ._simulate import NondeterminismFound as NondeterminismFound
from ._simulate import Scenario as Scenario
from ._simulate import Step as Step
from ._simulate import check_scenario as check_scenario

__all__ = [
    "NondeterminismFound",
    "Scenario",
    "Step",
    "WorkflowEnvironment",
    "assert_deterministic",
    "check_scenario",
    "ReplayFailedError",
    "ReplayOutcome",
    "ReplayResult",
    "Replayer",
    "history_files",
    "load_history",
    "replay",
]

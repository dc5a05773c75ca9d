"""The authoring API: decorators, options and the calls workflow code makes.

Everything public here is re-exported by ``retold``; import it from there.
The JSON description of definitions (``describe_registry``, ``args_schema``,
``json_schema``) is not: ``GET /workflows`` serves it and each engine's
registration records it. The names below are this package's interface to the rest of retold (the
runtime, the engine, the client, ``retold.testing``), which import them
from here rather than from the private modules.
"""

from ._activity import ActivityInfo as ActivityInfo
from ._decorators import ID_REUSE_POLICIES as ID_REUSE_POLICIES
from ._decorators import MAX_TIME_LIMIT as MAX_TIME_LIMIT
from ._decorators import PARENT_CLOSE_POLICIES as PARENT_CLOSE_POLICIES
from ._decorators import Activity as Activity
from ._decorators import AsyncActivity as AsyncActivity
from ._decorators import IdReusePolicy as IdReusePolicy
from ._decorators import ParentClosePolicy as ParentClosePolicy
from ._decorators import SyncActivity as SyncActivity
from ._decorators import Workflow as Workflow
from ._decorators import pack_input as pack_input
from ._decorators import unpack_input as unpack_input
from ._describe import args_schema as args_schema
from ._describe import describe_registry as describe_registry
from ._describe import json_schema as json_schema
from ._options import ActivityCancellationType as ActivityCancellationType
from ._options import ActivityOptions as ActivityOptions
from ._registry import by_name as by_name
from ._runtime import ContinueAsNew as ContinueAsNew
from ._runtime import WorkflowInfo as WorkflowInfo

__all__ = [
    "ID_REUSE_POLICIES", "MAX_TIME_LIMIT", "PARENT_CLOSE_POLICIES", "Activity", "ActivityCancellationType",
    "ActivityInfo", "ActivityOptions",
    "AsyncActivity", "ContinueAsNew", "IdReusePolicy", "ParentClosePolicy", "SyncActivity", "Workflow",
    "WorkflowInfo", "args_schema", "by_name", "describe_registry", "json_schema", "pack_input", "unpack_input",
]

"""The client API: start, signal, query, cancel, list, watch and wait on runs.

:class:`~retold.Client` does it from a process that hosts nothing (a web
app, a script, the CLI); every :class:`~retold.Engine` owns one too. The
HTTP app and the CLI speak only this API.
"""

from ._client import DEFAULT_URL as DEFAULT_URL
from ._client import Client as Client
from ._feed import EventFeeds as EventFeeds
from ._feed import EventStream as EventStream
from ._handle import RunDescription as RunDescription
from ._handle import RunHandle as RunHandle
from ._handle import WorkflowTaskFailure as WorkflowTaskFailure
from ._host import Host as Host
from ._listing import RunPage as RunPage
from ._listing import parse_attribute_value as parse_attribute_value
from ._schedules import ScheduleHandle as ScheduleHandle

__all__ = [
    "DEFAULT_URL", "Client", "EventFeeds", "EventStream", "Host", "RunDescription", "RunHandle", "RunPage",
    "ScheduleHandle", "WorkflowTaskFailure", "parse_attribute_value",
]

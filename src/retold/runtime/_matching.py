"""How a replay matches the code's requests against the recorded history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import PayloadError
from ..history import events as ev
from ..history.codec import Codec

__all__ = ["default_child_id", "describe_request", "is_command", "matches", "same_payload", "segments"]


def same_payload(codec: Codec, recorded: bytes, requested: bytes) -> bool:
    """Whether two encodings hold the same values.

    Compared decoded, not as bytes: a codec may encode the same value
    differently each time (an encrypting codec draws a random nonce).
    """
    if recorded == requested:
        return True
    try:
        return bool(codec.decode(recorded, Any) == codec.decode(requested, Any))
    except PayloadError:
        return False


def matches(codec: Codec, recorded: ev.Event, cls: type[ev.Event], fields: dict[str, Any]) -> bool:
    if type(recorded) is not cls:
        return False
    if isinstance(recorded, ev.ActivityScheduled):
        # Arguments count too: the same activity fed other data (a set iterated
        # in another order, say) would pair recorded results with the wrong call.
        return bool(recorded.activity == fields["activity"] and same_payload(codec, recorded.input, fields["input"]))
    if isinstance(recorded, ev.TimerCancelled | ev.ChildWorkflowCancelRequested):
        return bool(recorded.started == fields["started"])
    if isinstance(recorded, ev.ActivityCancelRequested):
        return bool(recorded.scheduled == fields["scheduled"])
    if isinstance(recorded, ev.UpdateCompleted):
        return bool(recorded.update_id == fields["update_id"])
    if isinstance(recorded, ev.SearchAttributesUpserted):
        return bool(recorded.attributes == fields["attributes"])
    if isinstance(recorded, ev.MarkerRecorded):
        return bool((recorded.kind, recorded.name) == (fields["kind"], fields["name"]))
    if isinstance(recorded, ev.WorkflowStartRequested):
        return bool((recorded.workflow, recorded.workflow_id) == (fields["workflow"], fields["workflow_id"])
                    and same_payload(codec, recorded.input, fields["input"]))
    if isinstance(recorded, ev.ChildWorkflowStarted):
        return bool(recorded.workflow == fields["workflow"] and same_payload(codec, recorded.input, fields["input"]))
    if isinstance(recorded, ev.ExternalSignalRequested):
        return bool((recorded.workflow_id, recorded.name) == (fields["workflow_id"], fields["name"])
                    and same_payload(codec, recorded.input, fields["input"]))
    return True


def describe_request(cls: type[ev.Event], fields: dict[str, Any]) -> str:
    shown = []
    for key, value in fields.items():
        if key == "options":
            continue
        if isinstance(value, bytes):
            value = value[:60].decode("utf-8", "replace")
        shown.append(f"{key}={value!r}")
    return f"{cls.__name__}({', '.join(shown)})"


def segments(events: Sequence[ev.Event]) -> list[tuple[list[ev.Event], list[ev.Event]]]:
    """Split events into activations: a group of inputs and the commands it produced."""
    segments: list[tuple[list[ev.Event], list[ev.Event]]] = []
    inputs: list[ev.Event] = []
    commands: list[ev.Event] = []
    for event in events:
        if is_command(event):
            commands.append(event)
        else:
            if commands:
                segments.append((inputs, commands))
                inputs, commands = [], []
            inputs.append(event)
    segments.append((inputs, commands))
    return segments


def default_child_id(parent_workflow_id: str, parent_run_id: str, seq: int, kind: str = "child") -> str:
    """The id of a child (or, ``kind="started"``, a detached run) started without one: unique to the parent's run.

    ``{parent workflow id}/{parent run id}/child-{seq}``: the run id keeps
    it unique across the runs of a continue-as-new chain (whose event
    numbers start again), and the parent's id is cut to its first 150
    characters, so nesting never grows it past the id limit.
    """
    return f"{parent_workflow_id[:150]}/{parent_run_id}/{kind}-{seq}"


def is_command(event: ev.Event) -> bool:
    """Whether ``event`` was written because workflow code asked for it."""
    if isinstance(event, ev.WorkflowFailed):
        return not event.failure.workflow_task
    return isinstance(event, ev.COMMAND_TYPES)

"""An LRU cache of live workflow instances."""

from __future__ import annotations

from collections import OrderedDict

from ..runtime import WorkflowInstance

__all__ = ["InstanceCache"]


class InstanceCache:
    """Keeps up to ``size`` runs in memory so they are not replayed per event."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, WorkflowInstance] = OrderedDict()
        self.evictions = 0
        self.hits = 0  # take() found the run (read by the telemetry's cache metrics)
        self.misses = 0
        self.replays = 0  # runs rebuilt from their history by a workflow task (a miss, or after a conflict)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._items

    def take(self, run_id: str) -> WorkflowInstance | None:
        """Remove and return the cached instance (it is put back on success)."""
        instance = self._items.pop(run_id, None)
        if instance is None:
            self.misses += 1
        else:
            self.hits += 1
        return instance

    def peek(self, run_id: str) -> WorkflowInstance | None:
        """Return the cached instance without changing its recency."""
        return self._items.get(run_id)

    def put(self, instance: WorkflowInstance) -> None:
        """Cache ``instance``, evicting the least recently used past the size."""
        self._items[instance.run_id] = instance
        self._items.move_to_end(instance.run_id)
        while len(self._items) > self.size:
            _, old = self._items.popitem(last=False)
            old.close()
            self.evictions += 1

    def drop(self, run_id: str) -> None:
        """Forget a run (after a conflict or when it finishes)."""
        instance = self._items.pop(run_id, None)
        if instance is not None:
            instance.close()

    def clear(self) -> None:
        """Forget every run."""
        for instance in self._items.values():
            instance.close()
        self._items.clear()

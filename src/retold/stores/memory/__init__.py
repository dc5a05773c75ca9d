"""The memory store (``memory://``): a pure Python implementation of the store protocol, for tests."""

from ._store import MemoryStore as MemoryStore

__all__ = ["MemoryStore"]

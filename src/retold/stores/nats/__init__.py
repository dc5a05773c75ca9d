"""The NATS JetStream store (``nats://``): the store's operations as a replicated log; needs ``retold[nats]``."""

from ._store import NatsStore as NatsStore
from ._store import delete_store as delete_store

__all__ = ["NatsStore", "delete_store"]

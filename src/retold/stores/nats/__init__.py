"""The NATS JetStream store (``nats://``): the store's operations as a replicated log; needs ``retold[nats]``."""

from ._store import NatsStore as NatsStore

__all__ = ["NatsStore"]

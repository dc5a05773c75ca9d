"""An app whose payloads are encrypted (Fernet: AES with a random IV per payload).

The standard way to keep payloads secret at rest; it encodes the same value
to different bytes every time. ``--app tests.crypto_shop`` finds ``codec``.
"""

from __future__ import annotations

from typing import Any, final

from cryptography.fernet import Fernet, InvalidToken

import retold

KEY = b"kZXNQ0yI8n1o3V8d4OZrGqS5C5q1nKJm2U9pS3fWvqE="  # a test key: never hard-code a real one


@final
class FernetCodec:
    """JSON, then encrypted with Fernet."""

    name = "fernet-json"

    def __init__(self, key: bytes = KEY) -> None:
        self._fernet = Fernet(key)
        self._json = retold.JsonCodec()

    def encode(self, value: Any) -> bytes:
        return self._fernet.encrypt(self._json.encode(value))

    def decode(self, data: bytes, type_: Any = Any) -> Any:
        try:
            plain = self._fernet.decrypt(data)
        except InvalidToken:
            raise retold.PayloadError("payload is not encrypted with this key") from None
        return self._json.decode(plain, type_)

    def convert(self, value: Any, type_: Any) -> Any:
        return self._json.convert(value, type_)


codec = FernetCodec()


@retold.activity
async def charge(order_id: str, cents: int) -> str:
    return f"receipt-{order_id}-{cents}"


@retold.workflow(name="sealed")
async def sealed(order_id: str, cents: int) -> str:
    status = "charging"
    retold.set_query_handler("status", lambda: status)
    receipt = await retold.execute(charge, order_id, cents)
    status = "waiting"
    await retold.wait_signal("ship")
    second = await retold.execute(charge, order_id, cents + 1)
    status = f"shipped {receipt} {second}"
    return status

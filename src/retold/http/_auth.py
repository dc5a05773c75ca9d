"""Optional bearer-token authentication for the HTTP API."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from ._problems import problem_response
from ._ui import ASSET_PREFIX

__all__ = ["BearerAuth"]

PUBLIC_PATHS = frozenset({"/openapi.json"})


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps the time independent of the
    # token's length as well as its content.
    return hashlib.sha256(token.encode()).digest()


class BearerAuth:
    """ASGI middleware: every request but the OpenAPI document (and the
    dashboard's page and files, with ``dashboard``) needs
    ``Authorization: Bearer <token>`` with one of ``tokens``."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str], dashboard: bool = False) -> None:
        self._app = app
        self._digests = [_digest(t) for t in tokens]
        # The dashboard's page and assets hold no data: the page asks for a token itself.
        self._public = PUBLIC_PATHS | {"", "/"} if dashboard else PUBLIC_PATHS
        self._public_prefixes = (ASSET_PREFIX,) if dashboard else ()

    def allows(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries a valid token (constant time)."""
        scheme, _, token = header.partition(" ")
        given = _digest(token.strip())
        ok = False
        for digest in self._digests:  # no early exit: every token is compared
            ok |= hmac.compare_digest(given, digest)
        return ok and scheme.lower() == "bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, root = scope["path"], scope.get("root_path", "")
        if path.startswith(root):  # mounted: routes are relative to the mount point
            path = path[len(root):]
        if scope["type"] != "http" or path in self._public or path.startswith(self._public_prefixes):
            await self._app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        if self.allows(header):
            await self._app(scope, receive, send)
            return
        response = problem_response(
            401, "a valid bearer token is required (Authorization: Bearer <token>)",
            {"WWW-Authenticate": 'Bearer realm="retold"'},
        )
        await response(scope, receive, send)

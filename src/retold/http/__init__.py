"""retold's HTTP API: an ASGI app (Starlette) over the client API.

Needs the ``http`` extra: ``pip install 'retold[http]'``. Mount
:func:`create_app` in your web application or run it with ``retold serve``;
``docs/http.md`` describes the routes, and the app serves its OpenAPI
document at ``GET /openapi.json``.
"""

try:
    import starlette  # noqa: F401 - only to say what is missing
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError("retold.http needs the http extra: pip install 'retold[http]'") from exc

from ._app import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._app import create_app as create_app

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app"]

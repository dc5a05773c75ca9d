"""The web dashboard's routes: a static page and its assets, shipped in the package.

The page (``_dashboard/``: HTML, ES modules, CSS, no build step, nothing
fetched from another origin) speaks only to the public HTTP API beside it,
with the bearer token the user types in. Its files are public; every API
call still needs a token when the app has tokens.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["ASSET_PREFIX", "dashboard_routes"]

ASSET_PREFIX = "/dashboard/"
_DIR = Path(__file__).resolve().parent / "_dashboard"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Everything from this origin only: no inline script, no CDN, no framing.
_SECURITY = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Assets:
    """The dashboard's files, read once; answered with an ETag so reloads cost a 304."""

    def __init__(self) -> None:
        self.files = {p.name: p.read_bytes() for p in _DIR.iterdir() if p.suffix in _TYPES and p.name != "index.html"}
        self.index = (_DIR / "index.html").read_text(encoding="utf-8")
        self.etags = {name: '"' + hashlib.sha256(data).hexdigest()[:16] + '"' for name, data in self.files.items()}

    async def page(self, request: Request) -> Response:
        # A <base> with the mount point, so that the page's relative URLs (assets
        # and API calls) work wherever the host mounts the app.
        root = request.scope.get("root_path", "").rstrip("/")
        body = self.index.replace("<head>", f'<head>\n<base href="{html.escape(root, quote=True)}/">', 1)
        return Response(body, media_type=_TYPES[".html"], headers={**_SECURITY, "Cache-Control": "no-cache"})

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = self.files.get(name)
        if data is None:
            return Response(f"no dashboard file {name!r}\n", status_code=404, media_type="text/plain")
        etag = self.etags[name]
        headers = {**_SECURITY, "Cache-Control": "no-cache", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=_TYPES[Path(name).suffix], headers=headers)


def dashboard_routes() -> list[Route]:
    """``GET /`` (the page) and ``GET /dashboard/{name}`` (its scripts and styles)."""
    assets = _Assets()
    return [
        Route("/", assets.page, methods=["GET"]),
        Route(ASSET_PREFIX + "{name}", assets.asset, methods=["GET"]),
    ]

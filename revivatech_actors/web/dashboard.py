"""``GET /dashboard``: the admin dashboard, a static page with its stylesheet and script.

The files are shipped in this package (``static/dashboard/``) and read once, when the app is
built. They are open: they hold no data; the page asks the admin routes and the live feed for it
with the admin token the user signs in with (or the main app's ``token`` cookie).

What the page shows comes from open ingest (page URLs, fingerprints, step names), so every answer
carries a Content-Security-Policy that lets only the service's own script and stylesheet run, and
(in browsers that have them) demands Trusted Types, so that no string can become markup. The
script itself writes data as text only.
"""

from __future__ import annotations

import hashlib
import importlib.resources

import attrs
from quart import Quart, Response, request

__all__ = ["DASHBOARD_PATH", "SECURITY_HEADERS", "register_dashboard_routes"]

#: Where the page is served; its assets are under it.
DASHBOARD_PATH = "/dashboard"

#: On every answer of the dashboard. ``connect-src`` allows the page's own fetches and its
#: WebSocket (``ws:``/``wss:``: not every browser counts a WebSocket to its own host as 'self').
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The files change with the service's version and carry no version in their names:
    # revalidated on each load (a 304 when unchanged), never served stale after an upgrade.
    "Cache-Control": "no-cache",
}

#: (path, file, content type) of each file of the dashboard.
_FILES = (
    (DASHBOARD_PATH, "index.html", "text/html; charset=utf-8"),
    (f"{DASHBOARD_PATH}/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
    (f"{DASHBOARD_PATH}/dashboard.js", "dashboard.js", "application/javascript; charset=utf-8"),
)


@attrs.frozen
class _Asset:
    body: bytes
    content_type: str
    etag: str  # unquoted


def _load(name: str, content_type: str) -> _Asset:
    body = importlib.resources.files(__package__).joinpath("static", "dashboard", name).read_bytes()
    return _Asset(body, content_type, hashlib.sha256(body).hexdigest()[:32])


def register_dashboard_routes(app: Quart) -> None:
    for path, name, content_type in _FILES:
        asset = _load(name, content_type)

        async def serve(asset: _Asset = asset) -> Response:
            headers = {**SECURITY_HEADERS, "ETag": f'"{asset.etag}"'}
            if request.if_none_match.contains_weak(asset.etag):
                return Response(b"", status=304, headers=headers)
            return Response(asset.body, headers=headers, content_type=asset.content_type)

        app.add_url_rule(path, f"dashboard_{name.replace('.', '_')}", serve, methods=["GET"])

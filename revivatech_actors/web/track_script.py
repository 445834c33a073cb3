"""``GET /track.js``: the browser tracker, one ``<script>`` tag on any website (docs/api.md).

The script (``tracker/track.js``, shipped in this package) is read once, when the app is built,
and served as it is to anyone: it finds the service from its own URL and posts to the ingest
routes, so nothing here knows a site.
"""

from __future__ import annotations

import hashlib
import importlib.resources

from quart import Quart, Response, request

__all__ = ["MAX_AGE", "TRACK_PATH", "load_script", "register_track_script_route"]

#: Where the script is served.
TRACK_PATH = "/track.js"
#: Seconds browsers and CDNs may keep the script without asking: short, so that a new version
#: reaches every site within minutes; after that the ETag makes the question a 304.
MAX_AGE = 300


def load_script() -> bytes:
    """The script's bytes, as shipped in the package."""
    return importlib.resources.files(__package__).joinpath("tracker", "track.js").read_bytes()


def register_track_script_route(app: Quart) -> None:
    script = load_script()
    etag = hashlib.sha256(script).hexdigest()[:32]
    headers = {
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "ETag": f'"{etag}"',
        # Other sites load it: allowed under their Cross-Origin-Embedder-Policy too, and
        # readable with <script crossorigin> (e.g. for Subresource Integrity).
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }

    @app.get(TRACK_PATH)
    async def track_script():
        if request.if_none_match.contains_weak(etag):
            return Response(b"", status=304, headers=headers)
        return Response(
            script, content_type="application/javascript; charset=utf-8", headers=headers
        )

"""CORS glue: answers preflights and puts the headers
:func:`~revivatech_actors.domain.cors.cors_headers` decides on every answer (errors included:
they pass through ``after_request`` as well)."""

from __future__ import annotations

from quart import Quart, Response, request

from ..config import CorsSettings
from ..domain.cors import CorsPolicy, RouteKind, cors_headers

__all__ = ["INGEST_PATHS", "register_cors"]

#: Routes trackers post to from any site; every other route is an admin route for CORS.
INGEST_PATHS = frozenset(
    {"/api/analytics/events", "/api/analytics/events/batch", "/api/analytics/track/journey"}
)


def register_cors(app: Quart, settings: CorsSettings) -> None:
    policy = CorsPolicy(
        settings.ingest_origins,
        settings.allowed_origins,
        settings.allow_credentials,
        settings.max_age,
    )

    # One hook for both: every hook costs each request (ingest's single events are ~1,400/s).
    @app.after_request
    async def add_cors_headers(response: Response) -> Response:
        headers = request.headers
        origin = headers.get("Origin")
        preflight_methods = None
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in headers:
            rule = request.url_rule
            # a known route's preflight (Quart's rules list their methods); an unknown one keeps
            # its 404
            if rule is not None and rule.methods is not None:
                preflight_methods = rule.methods - {"HEAD"}
                response = Response(b"", status=204)
                del response.headers["Content-Type"]
        vary = response.headers.get("Vary")
        response.headers["Vary"] = "Origin" if not vary else f"{vary}, Origin"
        if origin:
            kind = RouteKind.INGEST if request.path in INGEST_PATHS else RouteKind.ADMIN
            answer = cors_headers(origin, kind, policy, preflight_methods=preflight_methods)
            del answer["Vary"]
            response.headers.update(answer)
        return response

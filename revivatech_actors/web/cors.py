"""CORS glue: answers preflights and puts the headers :func:`~revivatech_actors.domain.cors.cors_headers`
decides on every answer (errors included: they pass through ``after_request`` as well)."""

from __future__ import annotations

from quart import Quart, Response, g, request

from ..config import CorsSettings
from ..domain.cors import CorsPolicy, RouteKind, cors_headers

__all__ = ["INGEST_PATHS", "register_cors"]

#: Routes trackers post to from any site; every other route is an admin route for CORS.
INGEST_PATHS = frozenset({"/api/analytics/events", "/api/analytics/events/batch", "/api/analytics/track/journey"})


def register_cors(app: Quart, settings: CorsSettings) -> None:
    policy = CorsPolicy(settings.ingest_origins, settings.allowed_origins, settings.allow_credentials, settings.max_age)

    @app.before_request
    async def answer_preflight():
        # Only a known route's preflight is answered here; an unknown one goes on to its 404.
        if (request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers
                or request.url_rule is None):
            return None
        g.preflight_methods = request.url_rule.methods - {"HEAD"}
        answer = Response(b"", status=204)
        del answer.headers["Content-Type"]
        return answer

    @app.after_request
    async def add_cors_headers(response: Response) -> Response:
        kind = RouteKind.INGEST if request.path in INGEST_PATHS else RouteKind.ADMIN
        headers = cors_headers(request.headers.get("Origin"), kind, policy,
                               preflight_methods=g.get("preflight_methods"))
        response.vary.add(headers.pop("Vary"))
        response.headers.update(headers)
        return response

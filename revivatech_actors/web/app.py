"""The Quart-Trio application: routes translate HTTP to calls on the service and back.

Each route module takes the few things it needs; :class:`AppParts` holds them all, as the
service built them (``service.py``), so that this package never sees the service itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from ..actors.broadcaster import BroadcasterActor
from ..actors.ingest import IngestActor
from ..config import Settings
from ..probes import HealthChecks
from ..shared_state.cache import AnswerCache
from ..shared_state.limits import RateLimits
from ..storage import RejectedLetter, Storage
from ..supervisor import Activity
from .auth import AdminAuth
from .bodies import close_if_body_unread
from .connection_limits import header_block_size
from .cors import register_cors
from .dashboard import register_dashboard_routes
from .funnel import register_funnel_routes
from .health import register_health_routes
from .ingest import register_ingest_routes
from .insights import register_insights_routes
from .lifecycle import register_lifecycle_routes
from .live import register_live_routes
from .models import register_models_route
from .observe import MetricsAccess, register_metrics_route, register_observation
from .openapi import register_openapi_route
from .realtime import register_realtime_routes
from .reports import register_report_routes
from .responses import error_response
from .track_script import register_track_script_route

__all__ = ["AppParts", "create_app", "create_metrics_app"]

logger = logging.getLogger(__name__)

#: Seconds Quart's body deadline trails web.body_timeout, so that the server's comes first.
BODY_TIMEOUT_MARGIN = 1.0
_ERROR_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


@attrs.frozen(eq=False)
class AppParts:
    """What the routes are given, each part as narrow as its routes need."""

    settings: Settings
    admin_tokens: tuple[str, ...]
    #: The rate limits (``limits.*``).
    limits: RateLimits
    #: This process's index among the workers of `serve --workers N`; None when alone.
    worker: int | None
    checks: HealthChecks
    #: The actors' own figures, by actor, for ``GET /api/analytics/actors``.
    actor_stats: Callable[[], dict[str, Any]]
    #: Makes an actor crash (served only with ``faults.enabled``).
    inject_crash: Callable[[str], None]
    ingest: IngestActor
    #: A journey step's ordinal among the visitor's explicit steps.
    journey_step_number: Callable[[str], Awaitable[int]]
    #: (fingerprint, history) -> the visitor's insights document, None for an unknown visitor.
    visitor_insights: Callable[[str, int], Awaitable[dict[str, Any] | None]]
    live_journeys: Callable[[str], Awaitable[list[Any]]]
    #: The realtime document as of now.
    realtime_document: Callable[[], Awaitable[dict[str, Any]]]
    #: Counts an answered request (seconds, status) in the realtime window.
    record_request: Callable[[float, int], None]
    #: Storage the funnel and the reports read from.
    reader: Storage
    answer_cache: AnswerCache
    broadcaster: BroadcasterActor
    #: Erases a visitor: rows removed by table.
    erase_visitor: Callable[[str], Awaitable[dict[str, int]]]
    #: (limit, before) -> a page of dead letters, newest first.
    dead_letters: Callable[[int, int | None], Awaitable[list[RejectedLetter]]]
    #: Brings this process's Prometheus gauges up to date, before ``GET /metrics`` answers.
    sample_metrics: Callable[[], None]


def create_app(parts: AppParts, activity: Activity) -> QuartTrio:
    """The app; every answered request counts in ``activity`` (the web actor's status record)
    and, with the time it took and its status, in the realtime window's performance figures."""
    # No static folder: the service serves no files, and Quart's default /static route would be
    # a route that no document describes.
    app = QuartTrio("revivatech_actors", static_folder=None)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    settings = parts.settings
    # The request's id first, so every later hook logs with it; HTTP hooks merged below.
    observation = register_observation(app, access_log=settings.web.access_log, http_hooks=False)
    auth = AdminAuth(
        parts.admin_tokens,
        jwt_secret=settings.auth.jwt_secret,
        jwt_roles=settings.auth.jwt_admin_roles,
        allowed_origins=settings.cors.allowed_origins,
        limiter=parts.limits.admin,
    )
    if not settings.metrics.port:  # else /metrics is served on metrics.port only
        access = MetricsAccess(settings.metrics.token, auth)
        register_metrics_route(app, access, parts.sample_metrics)
    register_health_routes(
        app,
        parts.checks,
        auth,
        worker=parts.worker,
        actor_stats=parts.actor_stats,
        inject_crash=parts.inject_crash if settings.faults.enabled else None,
    )
    register_ingest_routes(
        app,
        settings.ingest,
        parts.ingest,
        trusted_proxies=settings.web.trusted_proxies,
        write_keys=settings.auth.write_keys,
        limiter=parts.limits.ingest,
        journey_step_number=parts.journey_step_number,
    )
    register_insights_routes(
        app, auth, visitor_insights=parts.visitor_insights, live_journeys=parts.live_journeys
    )
    register_realtime_routes(app, auth, parts.realtime_document)
    register_funnel_routes(app, settings.funnel, parts.reader, auth, parts.answer_cache)
    register_live_routes(
        app,
        auth,
        parts.broadcaster,
        settings.broadcast,
        trusted_proxies=settings.web.trusted_proxies,
        limiter=parts.limits.ws_connect,
    )
    register_report_routes(
        app,
        auth,
        funnel_settings=settings.funnel,
        reader=parts.reader,
        realtime_document=parts.realtime_document,
    )
    register_lifecycle_routes(app, auth, erase=parts.erase_visitor, dead_letters=parts.dead_letters)
    register_models_route(
        app,
        auth,
        parts.reader.latest_evaluation,
        learn_interval=settings.scoring.learn_interval,
    )
    register_openapi_route(app)
    register_track_script_route(app)
    register_dashboard_routes(app)
    record_request = parts.record_request
    register_cors(app, settings.cors)
    # The server holds bodies to web.body_timeout from the end of their headers (connection_limits);
    # Quart's own deadline, from when a route asks for the body, is only a backstop behind it.
    app.config["BODY_TIMEOUT"] = settings.web.body_timeout + BODY_TIMEOUT_MARGIN
    # What the werkzeug exceptions say does not name the setting a client ran into.
    limit_messages = {
        408: "the request body did not arrive within web.body_timeout = "
        f"{settings.web.body_timeout:g} s",
        413: f"the request body is larger than ingest.max_body = {settings.ingest.max_body} bytes",
    }

    max_header_size = settings.web.max_header_size

    def headers_too_large(scope: dict):
        size = header_block_size(scope)
        if size <= max_header_size:
            return None
        message = (
            f"the request line and headers are {size} bytes, "
            f"more than web.max_header_size = {max_header_size}"
        )
        return error_response(431, "headers_too_large", message)

    # One hook before and one after each request: every hook costs every request.
    @app.before_request
    async def note_start():
        observation.begin(request.headers)
        return headers_too_large(request.scope)

    @app.before_websocket
    async def check_upgrade():
        return headers_too_large(websocket.scope)

    @app.after_request
    async def count_request(response):
        close_if_body_unread(
            response
        )  # here, not in a hook of its own: every hook costs each request
        activity.record()
        seconds = observation.elapsed()
        if seconds is not None:
            record_request(seconds, response.status_code)
        return observation.finish(response)

    _answer_http_errors(app, limit_messages)

    @app.errorhandler(Exception)
    async def unexpected_error(exc: Exception):
        logger.exception("unhandled error in request handler")
        return error_response(
            500, "internal_error", "the server failed to handle this request; see its log"
        )

    return app


def create_metrics_app(settings: Settings, sample_metrics: Callable[[], None]) -> QuartTrio:
    """The app of the internal ``metrics.port`` listener: ``GET /metrics`` and nothing else,
    open unless ``metrics.token`` is set; ``sample_metrics()`` as in :class:`AppParts`."""
    app = QuartTrio("revivatech_actors.metrics")
    register_observation(app, access_log=settings.web.access_log)
    register_metrics_route(app, MetricsAccess(settings.metrics.token, None), sample_metrics)
    _answer_http_errors(app)
    return app


def _answer_http_errors(app: QuartTrio, limit_messages: dict[int, str] | None = None) -> None:
    """Answer Quart's HTTP errors (404, 405, ...) in the API's error shape; ``limit_messages``
    replace werkzeug's text for the codes of limits (408, 413), naming the setting."""
    limit_messages = limit_messages or {}

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException):
        if isinstance(
            exc, WebsocketMismatch
        ):  # werkzeug's text does not say which protocol the path takes
            message = (
                "this path takes HTTP requests, not WebSocket connections"
                if has_websocket_context()
                else "this path is a WebSocket: "
                "connect with a WebSocket client (Upgrade: websocket)"
            )
            return error_response(400, "websocket_mismatch", message)
        code = exc.code or 500
        # keep what the exception says beyond the body, e.g. Allow on a 405
        headers = {
            name: value for name, value in exc.get_headers() if name.lower() != "content-type"
        }
        message = limit_messages.get(code) or exc.description or exc.name
        return error_response(code, _ERROR_CODES.get(code, "http_error"), message, headers=headers)

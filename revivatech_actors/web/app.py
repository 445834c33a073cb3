"""The Quart-Trio application: routes translate HTTP to calls on the service and back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from quart import has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from ..supervisor import Activity
from .auth import AdminAuth
from .bodies import close_if_body_unread
from .connection_limits import header_block_size
from .cors import register_cors
from .health import register_health_routes
from .ingest import register_ingest_routes
from .funnel import register_funnel_routes
from .insights import register_insights_routes
from .lifecycle import register_lifecycle_routes
from .live import register_live_routes
from .observe import MetricsAccess, register_metrics_route, register_observation
from .openapi import register_openapi_route
from .realtime import register_realtime_routes
from .reports import register_report_routes
from .responses import error_response

if TYPE_CHECKING:
    from ..service import Service

__all__ = ["create_app", "create_metrics_app"]

logger = logging.getLogger(__name__)

#: Seconds Quart's body deadline trails web.body_timeout, so that the server's comes first.
BODY_TIMEOUT_MARGIN = 1.0
_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
                415: "unsupported_media_type"}


def create_app(service: Service, activity: Activity) -> QuartTrio:
    """The app; every answered request counts in ``activity`` (the web actor's status record)
    and, with the time it took and its status, in the realtime window's performance figures."""
    # No static folder: the service serves no files, and Quart's default /static route would be
    # a route that no document describes.
    app = QuartTrio("revivatech_actors", static_folder=None)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    settings = service.settings
    # The request's id first, so every later hook logs with it; HTTP hooks merged below.
    observation = register_observation(app, access_log=settings.web.access_log, http_hooks=False)
    auth = AdminAuth(service.admin_tokens, jwt_secret=settings.auth.jwt_secret,
                     jwt_roles=settings.auth.jwt_admin_roles, allowed_origins=settings.cors.allowed_origins,
                     limiter=service.limits.admin)
    if not settings.metrics.port:  # else /metrics is served on metrics.port only
        register_metrics_route(app, MetricsAccess(settings.metrics.token, auth), service.telemetry.sample)
    register_health_routes(app, service, auth)
    register_ingest_routes(app, service)
    register_insights_routes(app, service, auth)
    register_realtime_routes(app, service, auth)
    register_funnel_routes(app, service, auth, service.answer_cache)
    register_live_routes(app, service, auth)
    register_report_routes(app, service, auth)
    register_lifecycle_routes(app, service, auth)
    register_openapi_route(app)
    metrics = service.metrics
    register_cors(app, settings.cors)
    # The server holds bodies to web.body_timeout from the end of their headers (connection_limits);
    # Quart's own deadline, from when a route asks for the body, is only a backstop behind it.
    app.config["BODY_TIMEOUT"] = settings.web.body_timeout + BODY_TIMEOUT_MARGIN
    # What the werkzeug exceptions say does not name the setting a client ran into.
    limit_messages = {
        408: f"the request body did not arrive within web.body_timeout = {settings.web.body_timeout:g} s",
        413: f"the request body is larger than ingest.max_body = {settings.ingest.max_body} bytes",
    }

    max_header_size = settings.web.max_header_size

    def headers_too_large(scope: dict):
        size = header_block_size(scope)
        if size <= max_header_size:
            return None
        message = f"the request line and headers are {size} bytes, more than web.max_header_size = {max_header_size}"
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
        close_if_body_unread(response)  # here, not in a hook of its own: every hook costs each request
        activity.record()
        seconds = observation.elapsed()
        if seconds is not None:
            metrics.record_request(seconds, response.status_code)
        return observation.finish(response)

    _answer_http_errors(app, limit_messages)

    @app.errorhandler(Exception)
    async def unexpected_error(exc: Exception):
        logger.exception("unhandled error in request handler")
        return error_response(500, "internal_error", "the server failed to handle this request; see its log")

    return app


def create_metrics_app(service: Service) -> QuartTrio:
    """The app of the internal ``metrics.port`` listener: ``GET /metrics`` and nothing else,
    open unless ``metrics.token`` is set."""
    app = QuartTrio("revivatech_actors.metrics")
    settings = service.settings
    register_observation(app, access_log=settings.web.access_log)
    register_metrics_route(app, MetricsAccess(settings.metrics.token, None), service.telemetry.sample)
    _answer_http_errors(app)
    return app


def _answer_http_errors(app: QuartTrio, limit_messages: dict[int, str] | None = None) -> None:
    """Answer Quart's HTTP errors (404, 405, ...) in the API's error shape; ``limit_messages``
    replace werkzeug's text for the codes of limits (408, 413), naming the setting."""
    limit_messages = limit_messages or {}

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException):
        if isinstance(exc, WebsocketMismatch):  # werkzeug's text does not say which protocol the path takes
            message = ("this path takes HTTP requests, not WebSocket connections" if has_websocket_context()
                       else "this path is a WebSocket: connect with a WebSocket client (Upgrade: websocket)")
            return error_response(400, "websocket_mismatch", message)
        code = exc.code or 500
        # keep what the exception says beyond the body, e.g. Allow on a 405
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        message = limit_messages.get(code) or exc.description or exc.name
        return error_response(code, _ERROR_CODES.get(code, "http_error"), message, headers=headers)

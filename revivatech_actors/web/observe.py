"""What the web layer records about each request, and ``GET /metrics``.

For every HTTP request and WebSocket handshake:

* the request id: the client's ``X-Request-Id`` when it is a plain token (letters, digits and
  ``-_.:``, at most :data:`MAX_REQUEST_ID` characters), else a new UUID; it is set in the
  :data:`~revivatech_actors.logs.REQUEST_ID` context variable for every log line written while
  handling the request, and returned as ``X-Request-Id``;
* the Prometheus counters by route template (``/api/analytics/insights/{fingerprint}``, never the
  raw path) and status, with the time it took;
* with ``web.access_log``, one access log line (logger ``revivatech_actors.access``): method,
  path *without its query string* (which may carry ``?token=``), route, status, milliseconds.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable

import trio
from quart import Quart, Response, g, request, websocket
from quart.typing import ResponseTypes

from ..logs import REQUEST_ID
from ..prometheus import exposition, record_http_request
from .auth import AdminAuth, denied
from .responses import error_response

__all__ = [
    "MAX_REQUEST_ID",
    "MetricsAccess",
    "Observation",
    "register_metrics_route",
    "register_observation",
    "route_template",
]

access_logger = logging.getLogger("revivatech_actors.access")

#: Longest client X-Request-Id kept; a longer (or odd) one is replaced by a new id.
MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
HEADER = "X-Request-Id"


def route_template(rule: str | None) -> str | None:
    """Quart's rule ``/api/analytics/insights/<path:fingerprint>`` as the label
    ``/api/analytics/insights/{fingerprint}``; None stays None (no route matched)."""
    return None if rule is None else _CONVERTER.sub(r"{\1}", rule)


def request_id_of(header: str | None) -> str:
    """The client's request id when it is a plain token, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return str(uuid.uuid4())


class Observation:
    """Each request's id, its count in the Prometheus metrics and, with ``access_log``, its
    access line: :meth:`begin` when a request arrives (first, so every later hook logs with the
    id), :meth:`finish` on its answer."""

    def __init__(self, *, access_log: bool) -> None:
        self._access_log = access_log

    def begin(self, headers) -> None:
        g.request_id = request_id_of(headers.get(HEADER))
        g.observed_from = time.perf_counter()
        REQUEST_ID.set(g.request_id)

    def finish(self, response: Response) -> Response:
        """Put the request id on an HTTP answer and count it."""
        request_id = getattr(g, "request_id", None)
        if request_id is not None:
            response.headers[HEADER] = request_id
        self.end(request.method, request.path, request.url_rule, response.status_code)
        return response

    @staticmethod
    def elapsed() -> float | None:
        """Seconds since :meth:`begin`; None before it, or once the request was recorded."""
        started = getattr(g, "observed_from", None)
        return None if started is None else time.perf_counter() - started

    def end(self, method: str, path: str, rule, status: int) -> None:
        seconds = self.elapsed()
        if seconds is None:  # refused before the hooks ran, or recorded already
            return
        route = route_template(rule.rule if rule is not None else None)
        record_http_request(method, route, status, seconds)
        if self._access_log:
            duration_ms = round(seconds * 1000, 1)
            access_logger.info(
                "%s %s %d %.1f ms",
                method,
                path,
                status,
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )


def register_observation(app: Quart, *, access_log: bool, http_hooks: bool = True) -> Observation:
    """Observe every WebSocket of ``app`` and, with ``http_hooks``, every HTTP request (else the
    app calls :meth:`Observation.begin` and :meth:`Observation.finish` from hooks of its own:
    each hook costs every request)."""
    observation = Observation(access_log=access_log)

    if http_hooks:

        @app.before_request
        async def note_request():
            observation.begin(request.headers)

        @app.after_request
        async def answer_request(response: Response) -> Response:
            return observation.finish(response)

    @app.before_websocket
    async def note_websocket():
        observation.begin(websocket.headers)

    @app.after_websocket
    async def answer_websocket(response: ResponseTypes | None) -> ResponseTypes | None:
        if response is not None:  # refused before the upgrade (401, 403, 503)
            if getattr(g, "request_id", None) is not None:
                response.headers[HEADER] = g.request_id
            observation.end("GET", websocket.path, websocket.url_rule, response.status_code)
            g.observed_from = None
        return response

    @app.teardown_websocket
    async def close_websocket(_exc: BaseException | None) -> None:
        # An accepted connection (101) ends here, however it ended (a client's close cancels
        # the handler, and after_websocket runs only when it returns).
        observation.end("GET", websocket.path, websocket.url_rule, 101)

    return observation


class MetricsAccess:
    """Who may read ``GET /metrics``: the bearer of ``token`` (when set) or, where ``admins`` is
    given, an admin credential; nobody needs one where neither is set (the internal port)."""

    def __init__(self, token: str, admins: AdminAuth | None) -> None:
        self._token = token.encode()
        self._admins = admins

    @property
    def open(self) -> bool:
        return not self._token and self._admins is None

    def check(self, headers, cookies) -> Response | None:
        """None when the request may read the metrics, else the 401 / 403 answer."""
        if self.open:
            return None
        presented = AdminAuth.bearer(headers.get("Authorization"))
        if (
            self._token
            and presented is not None
            and hmac.compare_digest(presented.encode(), self._token)
        ):
            return None
        hint = (
            "send Authorization: Bearer <metrics.token>"
            if self._token
            else "send Authorization: Bearer <admin token>"
        )
        if self._admins is None:
            return error_response(
                401,
                "unauthorized",
                f"a valid metrics token is needed: {hint}",
                headers={"WWW-Authenticate": 'Bearer realm="revivatech-actors"'},
            )
        verdict = self._admins.judge_http(headers, cookies)
        if verdict.is_admin:
            return None
        if self._token:
            hint = "send Authorization: Bearer <metrics.token> or an admin token"
        return denied(verdict, hint=hint)


def register_metrics_route(app: Quart, access: MetricsAccess, sample: Callable[[], None]) -> None:
    """``GET /metrics``: the Prometheus text exposition, after ``sample()`` brought this process's
    gauges up to date."""

    @app.get("/metrics")
    async def metrics():
        refused = access.check(request.headers, request.cookies)
        if refused is not None:
            return refused
        sample()
        # reads the workers' files under --workers N
        body, content_type = await trio.to_thread.run_sync(
            exposition, request.headers.get("Accept")
        )
        return Response(body, status=200, content_type=content_type)

"""``GET /api/analytics/funnel`` (admin): parameters parsed by ``domain.funnel`` (a bad one is a
400 naming it), counted by storage in one parameterised statement, the answer cached for
``funnel.cache_ttl`` seconds (in Redis when configured, shared by every instance)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from quart import Quart, request

from ..config import FunnelSettings
from ..domain.funnel import ParameterError, funnel_document, parse_funnel_query
from ..shared_state.cache import AnswerCache
from ..storage import QueryTimeout, Storage, StorageError
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

__all__ = ["register_funnel_routes"]

_RETRY_AFTER = {"Retry-After": "5"}


def register_funnel_routes(
    app: Quart, settings: FunnelSettings, reader: Storage, auth: AdminAuth, cache: AnswerCache
) -> None:
    """The funnel route, counted by ``reader`` (storage the web layer reads from)."""
    named = settings.named_steps()

    @app.get("/api/analytics/funnel")
    @admin_only(auth)
    async def funnel():
        now = datetime.now(UTC)
        try:
            query = parse_funnel_query(
                request.args.to_dict(),
                default_steps=settings.steps,
                default_window=settings.window,
                default_range=settings.range,
                now=now,
                named=named,
            )
        except ParameterError as exc:
            return error_response(
                400,
                "invalid_parameter",
                str(exc),
                details=[{"field": exc.parameter, "message": exc.message}],
            )
        # Without from/to the range moves with the clock: cache it by what was asked, not by the
        # instant.
        key = "funnel:" + (
            "|".join(f"{k}={v}" for k, v in sorted(request.args.items()))
            if "to" not in request.args
            else query.cache_key()
        )
        if settings.cache_ttl > 0:
            cached = await cache.get(key)
            if cached is not None:
                data = orjson.loads(cached)
                data["cached"] = True
                return json_response({"success": True, "data": data})
        try:
            counted = await reader.funnel(query, timeout=settings.timeout)
        except QueryTimeout:
            return error_response(
                503,
                "funnel_timeout",
                f"the funnel took longer than funnel.timeout = {settings.timeout:g} s; "
                "narrow from/to or the steps",
                headers=_RETRY_AFTER,
            )
        except StorageError as exc:
            return error_response(
                503,
                "storage_unavailable",
                f"the funnel cannot be computed now: {exc}",
                headers=_RETRY_AFTER,
            )
        data = funnel_document(query, counted, computed_at=now, cached=False)
        if settings.cache_ttl > 0:
            await cache.put(key, orjson.dumps(data), settings.cache_ttl)
        return json_response({"success": True, "data": data})

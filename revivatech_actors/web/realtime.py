"""``GET /api/analytics/realtime`` (admin): the metrics actor's window as a document
(``domain.realtime.realtime_document``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart

from .auth import AdminAuth, admin_only
from .responses import json_response

__all__ = ["register_realtime_routes"]


def register_realtime_routes(
    app: Quart, auth: AdminAuth, document: Callable[[], Awaitable[dict[str, Any]]]
) -> None:
    """The realtime route; ``document()`` is the realtime document as of now."""

    @app.get("/api/analytics/realtime")
    @admin_only(auth)
    async def realtime():
        data = await document()
        return json_response({"success": True, "data": data})

"""``GET /api/analytics/realtime`` (admin): the metrics actor's window as a document
(``domain.realtime.realtime_document``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Quart

from .auth import AdminAuth, admin_only
from .responses import json_response

if TYPE_CHECKING:
    from ..service import Service

__all__ = ["register_realtime_routes"]


def register_realtime_routes(app: Quart, service: Service, auth: AdminAuth) -> None:
    metrics = service.metrics

    @app.get("/api/analytics/realtime")
    @admin_only(auth)
    async def realtime():
        data = await metrics.document()
        return json_response({"success": True, "data": data})

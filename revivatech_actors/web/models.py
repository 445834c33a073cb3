"""``GET /api/analytics/models`` (admin): the newest backtest of the scores, as stored by the
models actor's runs (docs/scoring.md, "How the scores are checked"); shared by every instance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from quart import Quart

from ..storage import StorageError
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

__all__ = ["register_models_route"]


def register_models_route(
    app: Quart,
    auth: AdminAuth,
    latest_evaluation: Callable[[], Awaitable[tuple[datetime, dict[str, Any]] | None]],
    *,
    learn_interval: float,
) -> None:
    """The route, answering from ``latest_evaluation`` (the storage the web layer reads from);
    ``learn_interval`` is ``scoring.learn_interval``."""

    @app.get("/api/analytics/models")
    @admin_only(auth)
    async def models():
        try:
            latest = await latest_evaluation()
        except StorageError as exc:
            return error_response(
                503,
                "storage_unavailable",
                f"the models' figures cannot be read now: {exc}",
                headers={"Retry-After": "5"},
            )
        if latest is None:
            return json_response(
                {
                    "success": True,
                    "status": "pending",
                    "data": None,
                    "message": "the scores have not been backtested yet: the first backtest "
                    "starts within 30 s of the service's start and then every "
                    f"scoring.learn_interval = {learn_interval:g} s; it takes seconds to minutes "
                    "by the size of the history (or run `revivatech-actors evaluate --record`)",
                }
            )
        return json_response({"success": True, "status": "ready", "data": latest[1]})

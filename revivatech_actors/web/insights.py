"""Visitor routes: ``GET /api/analytics/insights/{fingerprint}`` and
``GET /api/analytics/journey/{fingerprint}`` (admin). They ask the profiles actor for the live
profile and storage for the recorded predictions and journeys; the documents are built by
``domain.insights``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from quart import Quart, request

from ..domain.insights import insights_document, journey_document
from ..domain.validation import MAX_ID_LENGTH
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

if TYPE_CHECKING:
    from ..service import Service

__all__ = ["register_insights_routes"]

#: Most predictions per model an insights answer may list (``?history=``).
MAX_HISTORY = 100


def _bad_fingerprint(fingerprint: str):
    if len(fingerprint) > MAX_ID_LENGTH:
        message = f"a user_fingerprint is at most {MAX_ID_LENGTH} characters"
        return error_response(400, "invalid_fingerprint", message, details=[{"field": "fingerprint", "message": message}])
    return None


def _unknown(fingerprint: str):
    return error_response(404, "unknown_visitor", f"no events were stored for the visitor {fingerprint!r}")


def register_insights_routes(app: Quart, service: Service, auth: AdminAuth) -> None:
    profiles = service.profiles
    scoring = service.settings.scoring

    @app.get("/api/analytics/insights/<path:fingerprint>")
    @admin_only(auth)
    async def insights(fingerprint: str):
        bad = _bad_fingerprint(fingerprint)
        if bad is not None:
            return bad
        raw = request.args.get("history", "1")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_HISTORY:
            message = f"history must be an integer between 1 and {MAX_HISTORY} (predictions per model), got {raw!r}"
            return error_response(400, "invalid_parameter", message, details=[{"field": "history", "message": message}])
        profile = await profiles.live_profile(fingerprint)
        if profile is None:
            return _unknown(fingerprint)
        predictions = await profiles.reader_storage.recent_predictions(fingerprint, int(raw))
        data = insights_document(profile, predictions, datetime.now(UTC), scoring)
        return json_response({"success": True, "data": data})

    @app.get("/api/analytics/journey/<path:fingerprint>")
    @admin_only(auth)
    async def journey(fingerprint: str):
        bad = _bad_fingerprint(fingerprint)
        if bad is not None:
            return bad
        journeys = await profiles.live_journeys(fingerprint)
        if not journeys:
            return _unknown(fingerprint)
        return json_response({"success": True, "data": journey_document(fingerprint, journeys)})

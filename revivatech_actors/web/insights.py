"""Visitor routes: ``GET /api/analytics/insights/{fingerprint}`` and
``GET /api/analytics/journey/{fingerprint}`` (admin). They ask the profiles actor for the live
profile and storage for the recorded predictions and journeys; the documents are built by
``domain.insights``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from quart import Quart, Response, request

from ..domain.insights import journey_document
from ..domain.reports import whole_number_within
from ..domain.validation import MAX_ID_LENGTH
from ..storage import StorageError
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

__all__ = ["register_insights_routes"]

#: Seconds a visitor read may take before the answer is 503.
READ_TIMEOUT = 5.0
_RETRY_AFTER = {"Retry-After": "5"}
T = TypeVar("T")

#: Most predictions per model an insights answer may list (``?history=``).
MAX_HISTORY = 100
#: Journey steps listed when the request gives no ``?limit=`` (the original service's default),
#: and the most.
DEFAULT_JOURNEY_LIMIT = 50
MAX_JOURNEY_LIMIT = 1000


def _whole_number(raw: str, low: int, high: int) -> int | None:
    """``raw`` as an integer from ``low`` to ``high``, else None."""
    return int(raw) if whole_number_within(raw, low, high) else None


def _bad_fingerprint(fingerprint: str):
    if len(fingerprint) > MAX_ID_LENGTH:
        message = f"a user_fingerprint is at most {MAX_ID_LENGTH} characters"
    elif "\x00" in fingerprint:
        # PostgreSQL cannot hold it in text: asking storage would fail as if storage were away (503)
        message = "a user_fingerprint cannot contain the NUL character"
    else:
        return None
    return error_response(
        400, "invalid_fingerprint", message, details=[{"field": "fingerprint", "message": message}]
    )


def _unknown(fingerprint: str):
    return error_response(
        404, "unknown_visitor", f"no events were stored for the visitor {fingerprint!r}"
    )


async def _within_deadline(read: Callable[[], Awaitable[T]]) -> T | Response:
    """``await read()``, or a 503 when storage is unavailable or the read (which may wait for a
    profile write in flight) takes longer than ``READ_TIMEOUT``."""
    try:
        with trio.move_on_after(READ_TIMEOUT):
            return await read()
    except StorageError as exc:
        return error_response(
            503,
            "storage_unavailable",
            f"the visitor's data cannot be read now: {exc}",
            headers=_RETRY_AFTER,
        )
    return error_response(
        503,
        "storage_unavailable",
        f"the visitor's data could not be read within {READ_TIMEOUT:g} s (storage is slow or away)",
        headers=_RETRY_AFTER,
    )


def register_insights_routes(
    app: Quart,
    auth: AdminAuth,
    *,
    visitor_insights: Callable[[str, int], Awaitable[dict[str, Any] | None]],
    live_journeys: Callable[[str], Awaitable[list[Any]]],
) -> None:
    """The visitor routes: ``visitor_insights(fingerprint, history)`` is the insights document
    (None: unknown visitor), ``live_journeys(fingerprint)`` the visitor's journeys."""

    @app.get("/api/analytics/insights/<path:fingerprint>")
    @admin_only(auth)
    async def insights(fingerprint: str):
        bad = _bad_fingerprint(fingerprint)
        if bad is not None:
            return bad
        raw = request.args.get("history", "1")
        history = _whole_number(raw, 1, MAX_HISTORY)
        if history is None:
            message = (
                f"history must be an integer between 1 and {MAX_HISTORY} "
                f"(predictions per model), got {raw!r}"
            )
            return error_response(
                400,
                "invalid_parameter",
                message,
                details=[{"field": "history", "message": message}],
            )
        data = await _within_deadline(lambda: visitor_insights(fingerprint, history))
        if not isinstance(data, dict):
            return data if data is not None else _unknown(fingerprint)
        return json_response({"success": True, "data": data})

    @app.get("/api/analytics/journey/<path:fingerprint>")
    @admin_only(auth)
    async def journey(fingerprint: str):
        bad = _bad_fingerprint(fingerprint)
        if bad is not None:
            return bad
        raw = request.args.get("limit", str(DEFAULT_JOURNEY_LIMIT))
        limit = _whole_number(raw, 1, MAX_JOURNEY_LIMIT)
        if limit is None:
            message = (
                f"limit must be an integer between 1 and {MAX_JOURNEY_LIMIT} (journey steps), "
                f"got {raw!r}"
            )
            return error_response(
                400, "invalid_parameter", message, details=[{"field": "limit", "message": message}]
            )
        journeys = await _within_deadline(lambda: live_journeys(fingerprint))
        if not isinstance(journeys, list):
            return journeys
        # An unknown visitor has an empty journey (200), as in the original service.
        return json_response(
            {"success": True, "data": journey_document(fingerprint, journeys, limit=limit)}
        )

"""Data lifecycle routes (admin): ``DELETE /api/analytics/users/{fingerprint}`` erases a visitor
(the janitor actor does it) and ``GET /api/analytics/rejected`` pages through the dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from quart import Quart, request

from ..domain.retention import rejected_query
from ..domain.timefmt import iso_datetime
from ..domain.validation import MAX_ID_LENGTH, truncate_payload
from ..storage import RejectedLetter, StorageError
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

__all__ = ["register_lifecycle_routes"]

#: Seconds a page of dead letters may take before the answer is 503.
READ_TIMEOUT = 5.0
#: Characters of a dead letter's payload shown in a listing (stored: up to 8192): a page of the
#: largest size stays around a megabyte.
LISTED_PAYLOAD_LIMIT = 2048
_RETRY_AFTER = {"Retry-After": "5"}


def _letter_json(letter: RejectedLetter) -> dict[str, Any]:
    payload = truncate_payload(letter.payload, LISTED_PAYLOAD_LIMIT)
    return {
        "id": letter.id,
        "letterId": letter.letter_id,
        "source": letter.source,
        "reasons": letter.reasons,
        "payload": payload,
        "payloadTruncated": payload != letter.payload,
        "receivedAt": iso_datetime(letter.received_at),
        "lastReceivedAt": None
        if letter.last_received_at is None
        else iso_datetime(letter.last_received_at),
        "timesReceived": letter.times_received,
    }


def register_lifecycle_routes(
    app: Quart,
    auth: AdminAuth,
    *,
    erase: Callable[[str], Awaitable[dict[str, int]]],
    dead_letters: Callable[[int, int | None], Awaitable[list[RejectedLetter]]],
) -> None:
    """The lifecycle routes: ``erase(fingerprint)`` erases a visitor (rows removed by table),
    ``dead_letters(limit, before)`` reads a page of dead letters (the janitor does both)."""

    @app.delete("/api/analytics/users/<path:fingerprint>")
    @admin_only(auth)
    async def erase_visitor(fingerprint: str):
        if not fingerprint.strip() or len(fingerprint) > MAX_ID_LENGTH:
            message = f"a user_fingerprint is 1 to {MAX_ID_LENGTH} characters, not blank"
            return error_response(
                400,
                "invalid_fingerprint",
                message,
                details=[{"field": "fingerprint", "message": message}],
            )
        # No deadline: a database call is not abandoned midway, so a deadline could only answer
        # 503 for an erasure that went through. It scans the events table once.
        try:
            removed = await erase(fingerprint)
        except StorageError as exc:
            return error_response(
                503,
                "storage_unavailable",
                f"the visitor could not be erased now (retrying finishes the job): {exc}",
                headers=_RETRY_AFTER,
            )
        return json_response(
            {
                "success": True,
                "userFingerprint": fingerprint,
                "removed": removed,
                "totalRemoved": sum(removed.values()),
            }
        )

    @app.get("/api/analytics/rejected")
    @admin_only(auth)
    async def rejected():
        query = rejected_query(request.args)
        if isinstance(query, list):
            return error_response(
                400, "invalid_parameter", "; ".join(p["message"] for p in query), details=query
            )
        letters = None
        try:
            with trio.move_on_after(READ_TIMEOUT):
                letters = await dead_letters(
                    query.limit + 1, query.before
                )  # one more: is there a next page?
        except StorageError as exc:
            return error_response(
                503,
                "storage_unavailable",
                f"the dead letters cannot be read now: {exc}",
                headers=_RETRY_AFTER,
            )
        if letters is None:
            return error_response(
                503,
                "storage_unavailable",
                f"the dead letters could not be read within {READ_TIMEOUT:g} s",
                headers=_RETRY_AFTER,
            )
        page = letters[: query.limit]
        more = len(letters) > query.limit
        return json_response(
            {
                "success": True,
                "data": [_letter_json(letter) for letter in page],
                "limit": query.limit,
                "nextCursor": str(page[-1].id) if more else None,
            }
        )

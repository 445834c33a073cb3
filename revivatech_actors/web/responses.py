"""JSON answers in the one shape every endpoint uses, encoded by orjson."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from quart import Response

__all__ = ["error_response", "json_response"]


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload),
        status=status,
        headers=dict(headers or {}),
        content_type="application/json",
    )


def error_response(
    status: int,
    error: str,
    message: str,
    *,
    details: Sequence[Any] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``{"success": false, "error": code, "message": text, "details": [...]}`` with ``status``."""
    payload = {"success": False, "error": error, "message": message, "details": list(details)}
    return json_response(payload, status, headers)

"""Admin authentication: ``Authorization: Bearer <token>`` against ``auth.admin_tokens``.

One check serves every admin route (:func:`admin_only`). Tokens are compared in constant time,
and every configured token is compared, so the answer's timing says nothing about which token
came close. The WebSocket also takes ``?token=``, since browsers cannot set its headers.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Iterable

from quart import request

from .responses import error_response

__all__ = ["AdminAuth", "admin_only"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="revivatech-actors"'}


class AdminAuth:
    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)
        if not self._tokens:
            msg = "at least one admin token is needed (serve generates one when none is configured)"
            raise ValueError(msg)

    def accepts(self, presented: str | None) -> bool:
        """True when ``presented`` equals one of the configured tokens (constant time)."""
        if not presented:
            return False
        candidate = presented.encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    @staticmethod
    def bearer(header: str | None) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, else None."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def admin_only(auth: AdminAuth, *, allow_query_token: bool = False):
    """Decorate a route so that it answers 401 (with a ``WWW-Authenticate`` challenge) unless the
    request carries an admin token."""

    def decorate(handler: Callable[..., Awaitable]):
        @functools.wraps(handler)
        async def guarded(*args, **kwargs):
            presented = AdminAuth.bearer(request.headers.get("Authorization"))
            if presented is None and allow_query_token:
                presented = request.args.get("token")
            if not auth.accepts(presented):
                reason = "missing" if presented is None else "invalid"
                return error_response(401, "unauthorized", f"{reason} admin token: send Authorization: Bearer <token>", headers=_CHALLENGE)
            return await handler(*args, **kwargs)

        return guarded

    return decorate

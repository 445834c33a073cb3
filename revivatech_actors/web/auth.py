"""Admin authentication for HTTP routes and the WebSocket: finds the credential a request
carries and answers the verdict of :class:`~revivatech_actors.domain.credentials.AdminCredentials`.

A credential comes from ``Authorization: Bearer <token>`` (it wins when present), then, on the
WebSocket only, ``?token=`` (browsers cannot set its headers), then the ``token`` cookie, which
is where the main app keeps its JWT. A cookie is sent by the browser on its own, whichever page
made the request, so it counts only when the request's ``Origin`` is the service's own or one of
``cors.allowed_origins``; on HTTP a request without ``Origin`` (a same-origin GET) keeps it too.
Nothing here logs a credential.

An admin request also takes a token of ``limits.admin_rate`` for its credential (the verdict's
``subject``: a hash of the token or the JWT's subject, never the credential), 429 without one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping

import attrs
from quart import request
from werkzeug.datastructures import Headers

from ..domain.cors import CorsPolicy, is_same_origin
from ..domain.credentials import MISSING, AdminCredentials, Verdict
from ..shared_state.limits import Limiter
from .limits import too_many_requests, with_headers
from .responses import error_response

__all__ = ["AdminAuth", "Credential", "admin_only", "denied"]

_REALM = 'Bearer realm="revivatech-actors"'
#: The cookie the main app keeps its JWT in (as the original service read it).
TOKEN_COOKIE = "token"


@attrs.frozen
class Credential:
    token: str | None
    source: str  # "header", "query", "cookie" or "none"


NO_CREDENTIAL = Credential(None, "none")


class AdminAuth:
    """The admin check of every admin route and of the WebSocket.

    Args:
        tokens: static admin tokens (at least one: serve generates one when none is configured).
        jwt_secret: the main app's HS256 secret; empty turns JWTs off.
        jwt_roles: roles of an admin JWT.
        allowed_origins: ``cors.allowed_origins``, whose pages may use the ``token`` cookie.
        limiter: ``limits.admin_rate`` per credential; None: no limit.
    """

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        jwt_secret: str = "",
        jwt_roles: Iterable[str] = ("ADMIN", "SUPER_ADMIN"),
        allowed_origins: Iterable[str] = (),
        limiter: Limiter | None = None,
    ) -> None:
        self.credentials = AdminCredentials(tuple(tokens), jwt_secret, frozenset(jwt_roles))
        self.limiter = limiter
        if not self.credentials.tokens:
            msg = "at least one admin token is needed (serve generates one when none is configured)"
            raise ValueError(msg)
        self._origins = CorsPolicy((), allowed_origins)

    def judge(self, presented: str | None) -> Verdict:
        return self.credentials.judge(presented)

    def accepts(self, presented: str | None) -> bool:
        """True when ``presented`` is an admin credential (static token or admin JWT)."""
        return self.credentials.judge(presented).is_admin

    def trusts_origin(self, origin: str | None, host: str | None) -> bool:
        """True when a page of ``origin`` may use the cookie: the service's own origin or an
        allowed one."""
        return is_same_origin(origin, host) or self._origins.is_allowed(origin)

    @staticmethod
    def bearer(header: str | None) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, else None."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @staticmethod
    def credential(
        headers: Headers | Mapping[str, str],
        cookies: Mapping[str, str],
        args: Mapping[str, str] | None = None,
    ) -> Credential:
        """Where the request's credential is: the header, ``args["token"]`` (when ``args`` is
        given), then the cookie."""
        token = AdminAuth.bearer(headers.get("Authorization"))
        if token:
            return Credential(token, "header")
        if args is not None and args.get("token"):
            return Credential(args["token"], "query")
        if cookies.get(TOKEN_COOKIE):
            return Credential(cookies[TOKEN_COOKIE], "cookie")
        return NO_CREDENTIAL

    def judge_http(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Verdict:
        """The verdict on an HTTP request; a cookie sent from a foreign page is not a credential."""
        found = self.credential(headers, cookies)
        if found.source == "cookie":
            origin = headers.get("Origin")
            if origin is not None and not self.trusts_origin(origin, headers.get("Host")):
                return MISSING
        return self.judge(found.token)


def denied(verdict: Verdict, *, hint: str = "send Authorization: Bearer <token>"):
    """The 401 (with a ``WWW-Authenticate`` challenge) or 403 answer to a non-admin ``verdict``."""
    if verdict.access.status == 403:
        return error_response(403, "forbidden", verdict.reason)
    challenge = _REALM if verdict is MISSING else _REALM + ', error="invalid_token"'
    return error_response(
        401, "unauthorized", f"{verdict.reason}: {hint}", headers={"WWW-Authenticate": challenge}
    )


def admin_only(auth: AdminAuth):
    """Decorate a route so that it answers 401 or 403 (see :func:`denied`) unless the request
    carries an admin credential, and 429 when that credential is over ``limits.admin_rate``."""

    def decorate(handler: Callable[..., Awaitable]):
        @functools.wraps(handler)
        async def guarded(*args, **kwargs):
            verdict = auth.judge_http(request.headers, request.cookies)
            if not verdict.is_admin:
                return denied(verdict)
            if auth.limiter is None:
                return await handler(*args, **kwargs)
            decision = await auth.limiter.take(verdict.subject)
            if not decision.allowed:
                return too_many_requests(
                    auth.limiter.rate,
                    decision,
                    "admin requests for this credential",
                    "limits.admin_rate",
                )
            return await with_headers(await handler(*args, **kwargs), decision)

        return guarded

    return decorate

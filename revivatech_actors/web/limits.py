"""Rate limits over HTTP: a limiter's decision as ``RateLimit-*`` headers, and the 429.

Every answer of a limited route carries ``RateLimit-Limit`` (the bucket's size, N of the rate),
``RateLimit-Remaining`` (requests left now) and ``RateLimit-Reset`` (seconds until the bucket is
full again); a refusal is 429 ``rate_limited`` with ``Retry-After`` (seconds until the next
request is allowed) as well.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable

from quart import Response, g, make_response
from quart.typing import ResponseTypes

from ..domain.rates import Decision, Rate
from ..prometheus import record_rate_limited
from ..shared_state.limits import Limiter
from .responses import error_response

__all__ = ["limited", "rate_headers", "too_many_requests", "upgrade_headers"]


def rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset)),
    }


def too_many_requests(rate: Rate, decision: Decision, what: str, setting: str) -> Response:
    """The 429 for a refused request: ``what`` is limited to ``rate`` by ``setting`` (counted
    in ``revivatech_rate_limited_total`` under the setting's name, e.g. ``ingest_rate``)."""
    record_rate_limited(setting.removeprefix("limits."))
    retry = max(1, math.ceil(decision.retry_after))
    message = f"too many {what}: the limit is {rate.text} ({setting}); retry in {retry} s"
    return error_response(
        429, "rate_limited", message, headers={**rate_headers(decision), "Retry-After": str(retry)}
    )


async def with_headers(result, decision: Decision) -> ResponseTypes:
    """The handler's ``result`` as a response carrying ``decision``'s headers."""
    response = result if isinstance(result, Response) else await make_response(result)
    headers = response.headers
    for name, value in rate_headers(decision).items():
        headers.add(name, value)  # no route sets these itself: add, without set's search
    return response


def limited(
    limiter: Limiter | None,
    key: Callable[[], str],
    what: str,
    setting: str,
    *,
    headers: bool = True,
):
    """Decorate a route so that each request takes a token of ``limiter`` for ``key()`` (answered
    429 without one); ``limiter`` None leaves the route unlimited. ``headers=False`` leaves an
    allowed answer as it is (a WebSocket's, whose headers go out with the upgrade: the route
    gives :func:`upgrade_headers` to ``websocket.accept``)."""

    def decorate(handler: Callable[..., Awaitable]):
        if limiter is None:
            return handler

        @functools.wraps(handler)
        async def guarded(*args, **kwargs):
            decision = await limiter.take(key())
            if not decision.allowed:
                return too_many_requests(limiter.rate, decision, what, setting)
            if headers:
                return await with_headers(await handler(*args, **kwargs), decision)
            g.rate_limit_decision = decision
            return await handler(*args, **kwargs)

        return guarded

    return decorate


def upgrade_headers() -> dict[str, str] | None:
    """The ``RateLimit-*`` headers of this WebSocket's upgrade (None when it is not limited)."""
    decision = g.get("rate_limit_decision")
    return None if decision is None else rate_headers(decision)

"""CORS: which headers a browser's cross-origin request gets, decided without I/O.

Two kinds of route, two lists (``[cors]`` in config/default.toml):

* **ingest** routes (trackers post events from any site): an origin of ``cors.ingest_origins``
  (``"*"``: any) may post, never with credentials; the answer says ``*`` when the list holds it;
* every other route (**admin**): only ``cors.allowed_origins``, with
  ``Access-Control-Allow-Credentials`` when ``cors.allow_credentials``. Those origins are
  trusted on ingest routes too, with credentials, so the main app can post with its cookies.

An origin a route does not allow gets no CORS header at all (the browser then keeps the answer
from the page); ``Vary: Origin`` is on every answer, so a cache never hands one origin's answer
to another. The same decision serves every status, errors included: a page must be able to read
a 401 to refresh its token, or a 503 to wait.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs

__all__ = ["CorsPolicy", "RouteKind", "cors_headers", "is_same_origin"]

#: Request headers the service reads (X-Write-Key: ingest write keys); all a preflight allows.
ALLOWED_HEADERS = "Authorization, Content-Type, X-Write-Key"
#: Response headers a page may read besides the safelisted ones.
EXPOSED_HEADERS = (
    "Retry-After, WWW-Authenticate, X-Request-Id, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class RouteKind(enum.Enum):
    INGEST = "ingest"
    ADMIN = "admin"


def _lowered(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(origin.lower() for origin in origins)


@attrs.frozen
class CorsPolicy:
    """``[cors]`` as sets of lowercased origins (browsers send scheme and host lowercased)."""

    ingest_origins: frozenset[str] = attrs.field(converter=_lowered)
    allowed_origins: frozenset[str] = attrs.field(converter=_lowered)
    allow_credentials: bool = True
    max_age: int = 600

    @property
    def any_ingest_origin(self) -> bool:
        return "*" in self.ingest_origins

    def is_allowed(self, origin: str | None) -> bool:
        """True for an origin of ``allowed_origins`` (trusted with credentials)."""
        return origin is not None and origin.lower() in self.allowed_origins


def cors_headers(
    origin: str | None,
    kind: RouteKind,
    policy: CorsPolicy,
    *,
    preflight_methods: Iterable[str] | None = None,
) -> dict[str, str]:
    """The CORS headers of an answer to a request from ``origin`` on a route of ``kind``.

    Args:
        origin: the request's ``Origin`` header (None: not a cross-origin browser request).
        preflight_methods: for a preflight (OPTIONS with Access-Control-Request-Method), the
            route's methods; None for an actual request.

    Returns:
        ``Vary: Origin`` always; the ``Access-Control-*`` headers only when ``origin`` is allowed.
    """
    headers = {"Vary": "Origin"}
    if not origin:
        return headers
    if policy.is_allowed(origin):
        headers["Access-Control-Allow-Origin"] = origin
        if policy.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
    elif kind is RouteKind.INGEST and (
        policy.any_ingest_origin or origin.lower() in policy.ingest_origins
    ):
        headers["Access-Control-Allow-Origin"] = "*" if policy.any_ingest_origin else origin
    else:
        return headers
    if preflight_methods is None:
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    else:
        headers["Access-Control-Allow-Methods"] = ", ".join(sorted(set(preflight_methods)))
        headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = str(policy.max_age)
    return headers


def _host_port(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = _DEFAULT_PORTS.get(scheme)
    return netloc.removesuffix(f":{default}") if default else netloc


def is_same_origin(origin: str | None, host: str | None) -> bool:
    """True when ``origin`` names the host the request was sent to (its ``Host`` header).

    The scheme is not compared: behind a TLS-terminating proxy the service cannot know it.
    """
    if not origin or not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False
    scheme = parts.scheme.lower()
    return _host_port(scheme, parts.netloc) == _host_port(scheme, host)

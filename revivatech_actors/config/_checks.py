"""Field validators: what a good value of each setting looks like, and the one-line reason a
value is refused. A reason never quotes a secret (a token, a key, a URL that may hold a
password)."""

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..domain.addresses import parse_networks
from ..domain.rates import rate_problem
from ..domain.secrets import secret_problem
from ._convert import NAMED_STEPS
from ._errors import Invalid

# Shorter admin tokens are guessable.
MIN_TOKEN_LENGTH = 16
# An HS256 key shorter than the hash (RFC 7518 section 3.2) can be brute-forced from any JWT it
# signed.
MIN_JWT_SECRET_LENGTH = 32
# Most named funnels: the dashboard computes each of them.
MAX_NAMED_FUNNELS = 20
# A named funnel's name (GET /api/analytics/funnel?funnel_name=...).
_FUNNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# One label of a host name (RFC 1123): letters, digits and inner hyphens, at most 63.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# An origin as browsers send it: scheme://host[:port], nothing after.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+", re.IGNORECASE)


@attrs.frozen
class Check:
    """attrs validator: ``problem(value)`` is None for a good value, else the one-line reason."""

    problem: Callable[[Any], str | None]
    rule: str  # what a good value looks like; also used when the value has the wrong type

    def __call__(self, instance: object, attribute: attrs.Attribute, value: Any) -> None:
        problem = self.problem(value)
        if problem is not None:
            raise Invalid(attribute.name, problem)


def rule(text: str, ok: Callable[[Any], bool], **metadata: Any) -> Any:
    """A field whose value must satisfy ``ok``; refused with "<text>, got <value>"."""
    check = Check(lambda v: None if ok(v) else f"{text}, got {v!r}", text)
    return attrs.field(validator=check, metadata=metadata)


def checked(problem: Callable[[Any], str | None], text: str, **metadata: Any) -> Any:
    """A field judged by ``problem`` (None: good); ``text`` says what a good value looks like."""
    return attrs.field(validator=Check(problem, text), metadata=metadata)


def integer(low: int, high: int | None = None) -> Any:
    if high is None:
        return rule(f"must be an integer >= {low}", lambda v: v >= low)
    return rule(f"must be an integer between {low} and {high}", lambda v: low <= v <= high)


def number(low: float, *, inclusive: bool = False) -> Any:
    op = ">=" if inclusive else ">"
    return rule(
        f"must be a number {op} {low}",
        lambda v: math.isfinite(v) and (v >= low if inclusive else v > low),
    )


#: What :func:`is_share` accepts, in the words of an error.
SHARE_RULE = "must be a number > 0 and <= 1"


def is_share(value: float) -> bool:
    """A share of time: more than none, at most all."""
    return math.isfinite(value) and 0 < value <= 1


def share() -> Any:
    return rule(SHARE_RULE, is_share)


def points() -> Any:
    """A score threshold: 0 to 100 points."""
    return rule("must be a number between 0 and 100", lambda v: math.isfinite(v) and 0 <= v <= 100)


def choice(*options: str) -> Any:
    return rule(f"must be one of {', '.join(options)}", lambda v: v in options)


def rate() -> Any:
    """A token-bucket rate ``N/<int>(s|m|h)`` (domain/rates.py), or empty for no limit."""
    text = 'must be a rate N/<int>(s|m|h), e.g. "600/1m", or empty for no limit'
    return checked(lambda v: None if v == "" else rate_problem(v), text)


def is_host(value: str) -> bool:
    """True for an IP address (``127.0.0.1``, ``::``) or a host name (``localhost``,
    ``api.example.com``, a trailing dot allowed). Says nothing about whether the name resolves."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        name = value[:-1] if value.endswith(".") else value
        labels = name.split(".")
        return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)
    return True


def _url_problem(url: str, needs: dict[str, str], usage: str) -> str | None:
    """None if ``url`` has a scheme of ``needs`` and the part it needs ("host", "path",
    "host or path"). Never quotes the URL: it may hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"cannot parse URL (check the host and port); use {usage}"
    if "://" not in url:
        return f"is not a URL; use {usage}"
    need = needs.get(parts.scheme)
    if need is None:
        return f"unsupported scheme {parts.scheme!r} (use {usage})"
    has = {"host": bool(parts.hostname), "path": bool(parts.path.strip("/"))}
    if any(has[part] for part in need.split(" or ")):
        return None
    return f"a {parts.scheme} URL needs a {need}"


def storage_url_problem(url: str) -> str | None:
    lower = url.lower()
    if lower.startswith("sqlite:") and not (lower.startswith("sqlite:///") and len(url) > 10):
        return "use sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:"
    needs = {"sqlite": "path", "postgresql": "host or path", "postgres": "host or path"}
    return _url_problem(url, needs, "sqlite:/// or postgresql://")


def redis_url_problem(url: str) -> str | None:
    needs = {"redis": "host", "rediss": "host", "unix": "path"}
    usage = "redis://, rediss:// or unix://, or leave empty"
    return None if url == "" else _url_problem(url, needs, usage)


def secrets_problem(entries: tuple[str, ...], what: str) -> str | None:
    """Why a list of admin tokens / write keys cannot be used; never quotes one."""
    for position, entry in enumerate(entries, 1):
        problem = secret_problem(entry, MIN_TOKEN_LENGTH)
        if problem is not None:
            return (
                f"each {what} {problem}; {what} {position} of {len(entries)} is not "
                f"({what}s are never printed)"
            )
    return None


def networks_problem(entries: tuple[str, ...]) -> str | None:
    try:
        parse_networks(entries)
    except ValueError as exc:
        return str(exc)
    return None


def jwt_secret_problem(secret: str) -> str | None:
    if secret and len(secret.encode()) < MIN_JWT_SECRET_LENGTH:
        return (
            f"must be empty (JWTs off) or at least {MIN_JWT_SECRET_LENGTH} bytes "
            "(RFC 7518 section 3.2); the secret is never printed"
        )
    return None


def metrics_token_problem(token: str) -> str | None:
    if token and len(token) < MIN_TOKEN_LENGTH:
        return (
            f"must be empty or at least {MIN_TOKEN_LENGTH} characters (the token is never printed)"
        )
    return None


def roles_problem(roles: tuple[str, ...]) -> str | None:
    if not roles:
        return "must name at least one role"
    bad = [role for role in roles if not 0 < len(role) <= 100]
    return f"a role is 1 to 100 characters, got {bad[0]!r}" if bad else None


def origins_problem(origins: tuple[str, ...], *, wildcard: bool) -> str | None:
    for origin in origins:
        if origin == "*":
            if not wildcard:
                return (
                    '"*" is not allowed here: these origins may send credentials; list each origin'
                )
            continue
        if not _ORIGIN.fullmatch(origin):
            bare = origin.rstrip("/")
            hint = f" (no path: {bare!r})" if _ORIGIN.fullmatch(bare) else ""
            return f"an origin is scheme://host[:port], got {origin!r}{hint}"
    return None


def names_problem(names: tuple[str, ...]) -> str | None:
    if not names:
        return "must name at least one event type"
    long = [name for name in names if len(name) > 100]
    return f"an event type is at most 100 characters, got {long[0]!r}" if long else None


def funnel_steps_problem(steps: tuple[str, ...]) -> str | None:
    if not 1 <= len(steps) <= 10:
        return f"must name 1 to 10 event types, got {len(steps)}"
    return names_problem(steps)


def named_funnels_problem(named: NAMED_STEPS) -> str | None:
    if len(named) > MAX_NAMED_FUNNELS:
        return f"at most {MAX_NAMED_FUNNELS} named funnels, got {len(named)}"
    for name, steps in named:
        if not _FUNNEL_NAME.fullmatch(name):
            return f"a funnel name is 1 to 64 letters, digits, _ or -, got {name!r}"
        problem = funnel_steps_problem(steps)
        if problem is not None:
            return f"funnel {name!r} {problem}"
    return None

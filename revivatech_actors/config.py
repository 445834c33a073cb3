"""Settings: defaults from ``default.toml``, then a config file, then environment, then overrides.

Every setting is a typed field of a frozen attrs class, one class per TOML section. The loader is
generic: it walks the attrs fields, converts each raw value by the field's type and lets the
field's validator judge it. Every failure becomes one :class:`ConfigError` line naming the key,
the problem and where the value came from. Secrets are never part of an error message.
"""

import difflib
import importlib.resources
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from .domain.addresses import KEEP_MODES, parse_networks
from .domain.rates import rate_problem
from .domain.secrets import secret_problem

__all__ = [
    "AuthSettings", "BatchSettings", "BroadcastSettings", "ConfigError", "CorsSettings", "FaultSettings",
    "FunnelSettings",
    "IngestSettings", "LimitSettings", "LogSettings", "MetricsSettings", "ProfileSettings", "RealtimeSettings",
    "RedisSettings", "RetentionSettings", "ScoringSettings",
    "Settings",
    "ShutdownSettings", "StorageSettings", "SupervisorSettings", "WebSettings",
    "env_var_name", "is_host", "load_settings", "render_toml", "settings_as_dict",
]

# Environment variables REVIVATECH_<SECTION>_<KEY> override the files.
ENV_PREFIX = "REVIVATECH_"
# Reserved: the config file path when no --config is given. Not a setting, never an error.
CONFIG_ENV_VAR = "REVIVATECH_CONFIG"
# Reserved for the test suite's own variables (tests/conftest.py) and for the bench client
# (REVIVATECH_BENCH_TOKEN); the service ignores them.
RESERVED_ENV_PREFIXES = ("REVIVATECH_TEST_", "REVIVATECH_BENCH_")
# How the shipped defaults are named in error messages.
DEFAULTS_SOURCE = "default.toml"
# How values from load_settings(overrides=...) (the CLI's serve --host/--port/--workers) are named.
OVERRIDE_SOURCE = "override"
# Shown instead of a secret; one per admin token so an operator sees how many are set.
MASK = "***"
# Shorter admin tokens are guessable.
MIN_TOKEN_LENGTH = 16
# An HS256 key shorter than the hash (RFC 7518 section 3.2) can be brute-forced from any JWT it signed.
MIN_JWT_SECRET_LENGTH = 32
# Spellings accepted for booleans in environment variables (case-insensitive).
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_TOKENS = tuple[str, ...]
# Named funnels: (name, steps) pairs in the order written (a tuple, so settings stay hashable).
_NAMED_STEPS = tuple[tuple[str, tuple[str, ...]], ...]
# What a value of each field type looks like, for fields whose validator says nothing better.
_TYPE_RULES = {
    int: "must be an integer", float: "must be a number", bool: "must be true or false",
    str: "must be a string", _TOKENS: "must be a list of strings or one comma-separated string",
    _NAMED_STEPS: "must be a table of funnel name = list of event types (in the environment, a JSON object)",
}
# A named funnel's name (GET /api/analytics/funnel?funnel_name=...).
_FUNNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Most named funnels: the dashboard computes each of them.
MAX_NAMED_FUNNELS = 20


class ConfigError(Exception):
    """A setting is unknown, has the wrong type or an impossible value, or a file is unreadable.

    ``key`` is "section.key" (or the file path / variable name), ``problem`` the reason and
    ``source`` where the value came from. ``str(err)`` is always exactly one line.
    """

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key, self.problem, self.source = key, problem, source
        line = f"{key}: {problem}" + (f" (from {source})" if source else "")
        super().__init__(" ".join(line.splitlines()))


class _Invalid(ValueError):
    """Raised by field validators; the loader adds the section and the source."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


@attrs.frozen
class _Check:
    """attrs validator: ``problem(value)`` is None for a good value, else the one-line reason."""

    problem: Callable[[Any], str | None]
    rule: str  # what a good value looks like; also used when the value has the wrong type

    def __call__(self, instance: object, attribute: attrs.Attribute, value: Any) -> None:
        problem = self.problem(value)
        if problem is not None:
            raise _Invalid(attribute.name, problem)


def _rule(text: str, ok: Callable[[Any], bool], **metadata: Any) -> Any:
    """A field whose value must satisfy ``ok``; refused with "<text>, got <value>"."""
    check = _Check(lambda v: None if ok(v) else f"{text}, got {v!r}", text)
    return attrs.field(validator=check, metadata=metadata)


def _int(low: int, high: int | None = None) -> Any:
    if high is None:
        return _rule(f"must be an integer >= {low}", lambda v: v >= low)
    return _rule(f"must be an integer between {low} and {high}", lambda v: low <= v <= high)


def _number(low: float, *, inclusive: bool = False) -> Any:
    op = ">=" if inclusive else ">"
    return _rule(f"must be a number {op} {low}",
                 lambda v: math.isfinite(v) and (v >= low if inclusive else v > low))


def _share() -> Any:
    return _rule("must be a number > 0 and <= 1", lambda v: math.isfinite(v) and 0 < v <= 1)


def _choice(*options: str) -> Any:
    return _rule(f"must be one of {', '.join(options)}", lambda v: v in options)


def _url_problem(url: str, needs: dict[str, str], usage: str) -> str | None:
    """None if ``url`` has a scheme of ``needs`` and the part it needs ("host", "path", "host or path").

    Never quotes the URL: it may hold a password.
    """
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
    return None if any(has[part] for part in need.split(" or ")) else f"a {parts.scheme} URL needs a {need}"


# One label of a host name (RFC 1123): letters, digits and inner hyphens, at most 63.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_host(value: str) -> bool:
    """True for an IP address (``127.0.0.1``, ``::``) or a host name (``localhost``,
    ``api.example.com``, a trailing dot allowed). Says nothing about whether the name resolves."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        name = value[:-1] if value.endswith(".") else value
        return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))
    return True


def _storage_url_problem(url: str) -> str | None:
    if url.lower().startswith("sqlite:") and not (url.lower().startswith("sqlite:///") and len(url) > 10):
        return "use sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:"
    needs = {"sqlite": "path", "postgresql": "host or path", "postgres": "host or path"}
    return _url_problem(url, needs, "sqlite:/// or postgresql://")


def _redis_url_problem(url: str) -> str | None:
    needs = {"redis": "host", "rediss": "host", "unix": "path"}
    return None if url == "" else _url_problem(url, needs, "redis://, rediss:// or unix://, or leave empty")


def _secrets_problem(entries: tuple[str, ...], what: str) -> str | None:
    """Why a list of admin tokens / write keys cannot be used; never quotes one."""
    for number, entry in enumerate(entries, 1):
        problem = secret_problem(entry, MIN_TOKEN_LENGTH)
        if problem is not None:
            return f"each {what} {problem}; {what} {number} of {len(entries)} is not ({what}s are never printed)"
    return None


def _limit_rate_problem(text: str) -> str | None:
    return None if text == "" else rate_problem(text)


def _networks_problem(entries: tuple[str, ...]) -> str | None:
    try:
        parse_networks(entries)
    except ValueError as exc:
        return str(exc)
    return None


def _jwt_secret_problem(secret: str) -> str | None:
    if secret and len(secret.encode()) < MIN_JWT_SECRET_LENGTH:
        return (f"must be empty (JWTs off) or at least {MIN_JWT_SECRET_LENGTH} bytes (RFC 7518 section 3.2); "
                "the secret is never printed")
    return None


def _roles_problem(roles: tuple[str, ...]) -> str | None:
    if not roles:
        return "must name at least one role"
    bad = [role for role in roles if not 0 < len(role) <= 100]
    return f"a role is 1 to 100 characters, got {bad[0]!r}" if bad else None


# An origin as browsers send it: scheme://host[:port], nothing after.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+", re.IGNORECASE)


def _origins_problem(origins: tuple[str, ...], *, wildcard: bool) -> str | None:
    for origin in origins:
        if origin == "*":
            if not wildcard:
                return '"*" is not allowed here: these origins may send credentials; list each origin'
            continue
        if not _ORIGIN.fullmatch(origin):
            hint = f" (no path: {origin.rstrip('/')!r})" if _ORIGIN.fullmatch(origin.rstrip("/")) else ""
            return f"an origin is scheme://host[:port], got {origin!r}{hint}"
    return None


def _names_problem(names: tuple[str, ...]) -> str | None:
    if not names:
        return "must name at least one event type"
    long = [name for name in names if len(name) > 100]
    return f"an event type is at most 100 characters, got {long[0]!r}" if long else None


def _funnel_steps_problem(steps: tuple[str, ...]) -> str | None:
    if not 1 <= len(steps) <= 10:
        return f"must name 1 to 10 event types, got {len(steps)}"
    return _names_problem(steps)


def _named_funnels_problem(named: _NAMED_STEPS) -> str | None:
    if len(named) > MAX_NAMED_FUNNELS:
        return f"at most {MAX_NAMED_FUNNELS} named funnels, got {len(named)}"
    for name, steps in named:
        if not _FUNNEL_NAME.fullmatch(name):
            return f"a funnel name is 1 to 64 letters, digits, _ or -, got {name!r}"
        problem = _funnel_steps_problem(steps)
        if problem is not None:
            return f"funnel {name!r} {problem}"
    return None


def _named_steps(value: Any) -> _NAMED_STEPS:
    """A TOML table (or parsed JSON object) of name -> list of strings as ``_NAMED_STEPS``;
    raises TypeError for anything else."""
    if not isinstance(value, dict):
        raise TypeError(value)
    named = []
    for name, steps in value.items():
        if not isinstance(steps, list | tuple) or not all(type(step) is str for step in steps):
            raise TypeError(value)
        named.append((name, tuple(steps)))
    return tuple(named)


@attrs.frozen(kw_only=True)
class WebSettings:
    """[web]: where the HTTP / WebSocket server listens."""
    host: str = _rule("must be an IP address or a host name", is_host)
    port: int = _int(1, 65535)
    #: Processes serving the port (SO_REUSEPORT), each a whole service; more than 1 needs
    #: PostgreSQL and Redis (checked by the loader, see _workers_problem).
    workers: int = _int(1)
    access_log: bool  # log one line per request
    #: Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs).
    trusted_proxies: tuple[str, ...] = attrs.field(
        validator=_Check(_networks_problem, "must be a list of IP addresses or CIDR networks"))
    #: Seconds a request has to send its whole request line and headers (from the connection's
    #: opening, or from the first byte of a later request on a kept-alive connection).
    header_timeout: float = _number(0)
    #: Seconds a request has to send its whole body once its headers are complete.
    body_timeout: float = _number(0)
    #: Most open connections (HTTP and WebSocket); past it new ones are closed at once.
    max_connections: int = _int(1)
    #: Largest request line plus headers, in bytes; past it the answer is 431.
    max_header_size: int = _int(1024)


@attrs.frozen(kw_only=True)
class StorageSettings:
    """[storage]: the event database. Timeouts and intervals are seconds."""
    url: str = attrs.field(validator=_Check(_storage_url_problem, "must be a URL like "
                           "sqlite:///revivatech.db or postgresql://host/db"), metadata={"url": True})
    connect_timeout: float = _number(0)
    ping_timeout: float = _number(0)  # a health ping slower than this counts as unreachable
    health_interval: float = _number(0)  # between the storage actor's background pings


@attrs.frozen(kw_only=True)
class RedisSettings:
    """[redis]: shared real-time state; an empty ``url`` keeps it in-process."""
    url: str = attrs.field(validator=_Check(_redis_url_problem, "must be a redis://, rediss:// "
                           "or unix:// URL, or empty"), metadata={"url": True})
    ping_timeout: float = _number(0)
    key_prefix: str = _rule("must be 1 to 100 characters", lambda v: 0 < len(v) <= 100)


@attrs.frozen(kw_only=True)
class AuthSettings:
    """[auth]: admin bearer tokens and ingest write keys, each plain or ``sha256:<hex>`` (secret;
    never logged or printed), and the main app's JWTs."""
    admin_tokens: tuple[str, ...] = attrs.field(
        validator=_Check(lambda v: _secrets_problem(v, "token"), _TYPE_RULES[_TOKENS]), metadata={"secret": True})
    #: Empty: ingest needs no key; otherwise one of these in X-Write-Key or a write_key field.
    write_keys: tuple[str, ...] = attrs.field(
        validator=_Check(lambda v: _secrets_problem(v, "write key"), _TYPE_RULES[_TOKENS]), metadata={"secret": True})
    jwt_secret: str = attrs.field(validator=_Check(_jwt_secret_problem, "must be a string"), metadata={"secret": True})
    jwt_admin_roles: tuple[str, ...] = attrs.field(validator=_Check(_roles_problem, _TYPE_RULES[_TOKENS]))


@attrs.frozen(kw_only=True)
class CorsSettings:
    """[cors]: origins a browser may call from; ``ingest_origins`` for the ingest routes (never
    with credentials), ``allowed_origins`` for the others and for credentialed requests;
    ``max_age`` is seconds a preflight may be cached."""
    ingest_origins: tuple[str, ...] = attrs.field(
        validator=_Check(lambda v: _origins_problem(v, wildcard=True), _TYPE_RULES[_TOKENS]))
    allowed_origins: tuple[str, ...] = attrs.field(
        validator=_Check(lambda v: _origins_problem(v, wildcard=False), _TYPE_RULES[_TOKENS]))
    allow_credentials: bool
    max_age: int = _int(0, 86400)


@attrs.frozen(kw_only=True)
class SupervisorSettings:
    """[supervisor]: more than ``max_restarts`` restarts within ``max_seconds`` make it give up."""
    max_restarts: int = _int(0)
    max_seconds: float = _number(0)
    backoff_initial: float = _number(0, inclusive=True)
    backoff_max: float = _number(0, inclusive=True)
    child_shutdown_timeout: float = _number(0)

    @backoff_max.validator
    def _not_below_initial(self, attribute: attrs.Attribute, value: float) -> None:
        if value < self.backoff_initial:
            problem = f"must be >= backoff_initial ({self.backoff_initial}), got {value!r}"
            raise _Invalid(attribute.name, problem)


@attrs.frozen(kw_only=True)
class ShutdownSettings:
    """[shutdown]: seconds from the first signal until the ordered stop must be done (else exit 1)."""
    timeout: float = _number(0)


@attrs.frozen(kw_only=True)
class FaultSettings:
    """[faults]: ``enabled`` exposes POST /api/analytics/actors/{name}/crash; off in production."""
    enabled: bool


@attrs.frozen(kw_only=True)
class LogSettings:
    """[log]: the log level and the format of a line (``text``, or ``json``: one object a line)."""
    level: str = _choice("debug", "info", "warning", "error")
    format: str = _choice("text", "json")


def _metrics_token_problem(token: str) -> str | None:
    if token and len(token) < MIN_TOKEN_LENGTH:
        return f"must be empty or at least {MIN_TOKEN_LENGTH} characters (the token is never printed)"
    return None


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """[metrics]: who may read ``GET /metrics``. ``token`` (secret) is a bearer token for it;
    ``port`` > 0 serves it on ``host:port`` only (an internal listener) instead of ``web.port``."""
    token: str = attrs.field(validator=_Check(_metrics_token_problem, "must be a string"), metadata={"secret": True})
    port: int = _int(0, 65535)
    host: str = _rule("must be a non-empty string", lambda v: bool(v.strip()))


@attrs.frozen(kw_only=True)
class IngestSettings:
    """[ingest]: acknowledgement mode and limits; ``max_body`` is bytes, the timeouts seconds."""
    ack: str = _choice("durable", "accepted")
    max_batch: int = _int(1)
    max_body: int = _int(1024)
    enqueue_timeout: float = _number(0)
    inbox: int = _int(1)  # capacity of the ingest inbox
    ack_timeout: float = _number(0)  # longest wait for a durable acknowledgement
    client_ip: str = _choice(*KEEP_MODES)  # how much of the client's address each event keeps
    #: Seconds an event's (skew-corrected) time may be ahead of its receive time; further ahead it
    #: is replaced by the receive time.
    max_future_seconds: float = _number(0, inclusive=True)
    max_age_days: int = _int(0)  # older events are refused; 0: no limit (backfills)


def _limit_rate() -> Any:
    return attrs.field(validator=_Check(_limit_rate_problem, 'must be a rate N/<int>(s|m|h), e.g. "600/1m", '
                                                            'or empty for no limit'))


@attrs.frozen(kw_only=True)
class LimitSettings:
    """[limits]: token-bucket rates ``N/<int>(s|m|h)`` (domain/rates.py); empty: no limit."""
    admin_rate: str = _limit_rate()  # per admin credential
    ingest_rate: str = _limit_rate()  # per client address, on the ingest routes
    ws_connect_rate: str = _limit_rate()  # per client address, WebSocket connections


@attrs.frozen(kw_only=True)
class BatchSettings:
    """[batch]: storage write batching; ``max_wait`` is seconds (0 writes at once)."""
    max_events: int = _int(1)
    max_wait: float = _number(0, inclusive=True)


@attrs.frozen(kw_only=True)
class ProfileSettings:
    """[profiles]: per-visitor profile actors; times in seconds."""
    idle_timeout: float = _number(0)  # passivate a visitor's actor after this long without events
    max_active: int = _int(1)  # most visitor actors kept active; least recently used go first
    flush_interval: float = _number(0)  # how often pending profile deltas are written
    max_write_share: float = _share()  # most of the time profile writes may keep storage busy
    max_touchpoints: int = _int(1)  # touchpoints kept per session journey
    max_unwritten_events: int = _int(1)  # past it, a write starts at once whatever the pacing
    partitions: int = _int(1, 65536)  # visitors' partitions, each with one owner (grow: docs/scaling.md)
    lease_ttl: float = _number(0)  # seconds a partition's lease lasts without renewal
    poll_interval: float = _number(0)  # seconds between reads of the log for events stored elsewhere


def _score_threshold() -> Any:
    return _rule("must be a number between 0 and 100", lambda v: math.isfinite(v) and 0 <= v <= 100)


@attrs.frozen(kw_only=True)
class ScoringSettings:
    """[scoring]: weights and caps of the explainable scores (docs/scoring.md), segment rules, and
    how far a score must move before a prediction row is written.

    A ``*_weight`` is the points its factor gives at saturation (>= 0; each model's weights sum to
    100 by default); a ``*_cap`` / ``*_scale*`` / ``*_half_life*`` is where the factor saturates
    or how fast it decays (> 0). Times are days.
    """
    engagement_sessions_weight: float = _number(0, inclusive=True)
    engagement_sessions_cap: float = _number(0)
    engagement_pages_per_session_weight: float = _number(0, inclusive=True)
    engagement_pages_per_session_cap: float = _number(0)
    engagement_session_seconds_weight: float = _number(0, inclusive=True)
    engagement_session_seconds_cap: float = _number(0)  # seconds of average session length
    engagement_days_active_weight: float = _number(0, inclusive=True)
    engagement_days_active_cap: float = _number(0)
    engagement_recency_half_life_days: float = _number(0)
    engagement_confidence_events: float = _number(0)
    lead_open_bookings_weight: float = _number(0, inclusive=True)
    lead_open_bookings_cap: float = _number(0)
    lead_quotes_weight: float = _number(0, inclusive=True)
    lead_quotes_cap: float = _number(0)
    lead_contacts_weight: float = _number(0, inclusive=True)
    lead_contacts_cap: float = _number(0)
    lead_pricing_views_weight: float = _number(0, inclusive=True)
    lead_pricing_views_cap: float = _number(0)
    lead_service_views_weight: float = _number(0, inclusive=True)
    lead_service_views_cap: float = _number(0)
    lead_return_visits_weight: float = _number(0, inclusive=True)
    lead_return_visits_cap: float = _number(0)
    lead_recency_half_life_days: float = _number(0)
    lead_after_booking_half_life_days: float = _number(0)
    lead_confidence_events: float = _number(0)
    churn_absence_weight: float = _number(0, inclusive=True)
    churn_absence_scale_days: float = _number(0)
    churn_overdue_weight: float = _number(0, inclusive=True)
    churn_overdue_cap: float = _number(0)  # in usual gaps between the visitor's active days
    churn_default_gap_days: float = _number(0)
    churn_few_bookings_weight: float = _number(0, inclusive=True)
    churn_few_bookings_cap: float = _number(0)
    churn_confidence_days: float = _number(0)
    price_pricing_share_weight: float = _number(0, inclusive=True)
    price_pricing_share_cap: float = _number(0)
    price_discounts_weight: float = _number(0, inclusive=True)
    price_discounts_cap: float = _number(0)
    price_abandoned_weight: float = _number(0, inclusive=True)
    price_abandoned_cap: float = _number(0)
    price_low_order_value_weight: float = _number(0, inclusive=True)
    price_reference_order_value: float = _number(0)
    price_confidence_events: float = _number(0)
    churned_after_days: int = _int(1)
    at_risk_churn: float = _score_threshold()
    loyal_min_bookings: int = _int(1)
    engaged_min_engagement: float = _score_threshold()
    record_threshold: float = _number(0, inclusive=True)  # points; 0 records every change
    max_share: float = _share()  # most of one core's time the scorer may take
    rescore_interval: float = _number(0)  # seconds: idle visitors are rescored this often


@attrs.frozen(kw_only=True)
class BroadcastSettings:
    """[broadcast]: seconds between periodic WebSocket broadcasts, the least time between
    change-driven ones, the caps of admin and of tokenless (public) clients, the protocol ping
    interval, and how long one send may stay stuck before the client is closed with 1013."""
    interval: float = _number(0)
    min_interval: float = _number(0)
    max_clients: int = _int(1)
    public_realtime: bool  # tokenless clients may follow the realtime aggregates, never a visitor
    max_public_clients: int = _int(0)
    ping_interval: float = _number(0)
    stuck_timeout: float = _number(0)
    max_message_size: int = _int(128)  # bytes of one client message; larger ones close with 1009
    max_messages_per_second: float = _number(0)  # a client's sustained rate of messages
    max_subscriptions: int = _int(1)  # per connection: realtime plus each followed visitor


@attrs.frozen(kw_only=True)
class RealtimeSettings:
    """[realtime]: sliding window of the real-time metrics (seconds), the event types that count
    as conversions, and how many top pages to list."""
    window: int = _int(10, 86400)
    conversion_types: tuple[str, ...] = attrs.field(
        validator=_Check(_names_problem, _TYPE_RULES[_TOKENS]))
    top_pages: int = _int(1, 100)


@attrs.frozen(kw_only=True)
class FunnelSettings:
    """[funnel]: the default steps, conversion window (seconds), entry range (seconds back from
    now), how long an answer is cached and how long a computation may take."""
    steps: tuple[str, ...] = attrs.field(validator=_Check(_funnel_steps_problem, _TYPE_RULES[_TOKENS]))
    window: float = _number(0)
    range: float = _number(0)
    cache_ttl: float = _number(0, inclusive=True)
    timeout: float = _number(0)
    named: _NAMED_STEPS = attrs.field(validator=_Check(_named_funnels_problem, _TYPE_RULES[_NAMED_STEPS]))

    def named_steps(self) -> dict[str, tuple[str, ...]]:
        """The named funnels (``?funnel_name=``): name -> steps, in the order configured."""
        return dict(self.named)


@attrs.frozen(kw_only=True)
class RetentionSettings:
    """[retention]: the janitor that deletes old rows (docs/operations.md, "Data lifecycle")."""
    days: int = _int(0, 36500)  # rows older than this many days are deleted; 0 keeps everything
    interval: float = _number(0)  # seconds between the janitor's passes
    batch_size: int = _int(1, 100_000)  # most rows one delete statement removes
    max_share: float = _share()  # most of the time the janitor may keep storage busy


@attrs.frozen(kw_only=True)
class Settings:
    """All settings; one field per TOML section, named as the section."""

    web: WebSettings
    storage: StorageSettings
    redis: RedisSettings
    auth: AuthSettings
    cors: CorsSettings
    supervisor: SupervisorSettings
    shutdown: ShutdownSettings
    faults: FaultSettings
    log: LogSettings
    metrics: MetricsSettings
    ingest: IngestSettings
    limits: LimitSettings
    batch: BatchSettings
    profiles: ProfileSettings
    scoring: ScoringSettings
    broadcast: BroadcastSettings
    realtime: RealtimeSettings
    funnel: FunnelSettings
    retention: RetentionSettings


def _workers_problem(settings: Settings) -> str | None:
    """Why ``web.workers`` cannot work with the other settings, or None. Several worker processes
    write to one database and must see the same realtime figures: one SQLite file cannot take
    several processes' writes, and without Redis each worker would count and broadcast only what
    it ingested itself."""
    workers = settings.web.workers
    if workers == 1:
        return None
    if settings.storage.url.lower().startswith("sqlite:"):
        return ("more than 1 needs PostgreSQL storage (storage.url is SQLite, whose one file cannot take "
                f"several processes' writes), got {workers}")
    if not settings.redis.url:
        return ("more than 1 needs redis.url (without Redis each worker would count its own realtime figures "
                f"and send its own live updates), got {workers}")
    return None


def _metrics_port_problem(settings: Settings) -> str | None:
    """Why ``metrics.port`` cannot be used with ``web.port``, or None."""
    port = settings.metrics.port
    if port and port == settings.web.port:
        return f"must differ from web.port (0 serves /metrics on web.port), got {port}"
    return None


def env_var_name(section: str, key: str) -> str:
    """The variable for ``section.key``: ``env_var_name("web", "port") == "REVIVATECH_WEB_PORT"``."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _sections() -> dict[str, dict[str, attrs.Attribute]]:
    return {s.name: {f.name: f for f in attrs.fields(s.type)} for s in attrs.fields(Settings)}


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _from_text(text: str, kind: Any) -> Any:
    """Convert an environment / command-line string; raises ValueError."""
    if kind is bool:
        word = text.strip().lower()
        if word not in _TRUE_WORDS | _FALSE_WORDS:
            raise ValueError(text)
        return word in _TRUE_WORDS
    if kind == _TOKENS:
        return _split(text)
    if kind == _NAMED_STEPS:
        return _named_steps(json.loads(text))  # a JSONDecodeError is a ValueError
    return text if kind is str else kind(text.strip())


def _from_value(value: Any, kind: Any) -> Any:
    """Check a TOML value's type (bool is not accepted as int); raises TypeError."""
    if kind is float and type(value) is int:
        return float(value)
    if kind == _TOKENS and isinstance(value, str):
        return _split(value)
    if kind == _TOKENS and isinstance(value, list) and all(type(v) is str for v in value):
        return tuple(value)
    if kind == _NAMED_STEPS:
        return _named_steps(value)
    if type(value) is not kind:
        raise TypeError(value)
    return value


def _put(values: dict, section: str, key: str, raw: Any, source: str, *, text: bool) -> None:
    """Convert ``raw`` for ``section.key`` and record it with its source in ``values``."""
    sections = _sections()
    if section not in sections:
        raise ConfigError(section, f"unknown section (known: {', '.join(sections)})", source)
    field = sections[section].get(key)
    if field is None:
        known = ", ".join(sections[section])
        raise ConfigError(f"{section}.{key}", f"unknown setting (known in [{section}]: {known})", source)
    try:
        value = _from_text(raw, field.type) if text and isinstance(raw, str) else _from_value(raw, field.type)
    except (TypeError, ValueError):
        rule = getattr(field.validator, "rule", None) or _TYPE_RULES[field.type]
        shown = "" if field.metadata.get("secret") else f", got {raw!r}"
        raise ConfigError(f"{section}.{key}", rule + shown, source) from None
    values[section, key] = (value, source)


def _put_toml(values: dict, data: dict, source: str) -> None:
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(section, "settings belong inside a [section] table", source)
        for key, raw in table.items():
            _put(values, section, key, raw, source, text=False)


def _read_toml(path: str | os.PathLike) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(os.fspath(path), f"cannot read config file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(os.fspath(path), f"invalid TOML: {exc}") from None


def load_settings(config_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, object] | None = None) -> Settings:
    """Load the settings: defaults < ``config_file`` < environment < ``overrides``.

    ``config_file`` falls back to ``$REVIVATECH_CONFIG``; ``environ`` defaults to ``os.environ``.
    ``overrides`` are keyed "section.key"; strings are converted like environment values and
    None values are skipped, so a CLI can pass its optional arguments straight through.

    Raises:
        ConfigError: for an unreadable file, invalid TOML, an unknown section, key or
            ``REVIVATECH_*`` variable, a wrong type or an impossible value (alone, or together
            with other settings: ``web.workers`` > 1 without PostgreSQL or Redis) — the first one found.
    """
    environ = os.environ if environ is None else environ
    if config_file is None:
        config_file = environ.get(CONFIG_ENV_VAR) or None
    values: dict[tuple[str, str], tuple[Any, str]] = {}
    defaults = importlib.resources.files("revivatech_actors._config").joinpath("default.toml")
    _put_toml(values, tomllib.loads(defaults.read_text(encoding="utf-8")), DEFAULTS_SOURCE)
    if config_file is not None:
        _put_toml(values, _read_toml(config_file), os.fspath(config_file))
    sections = _sections()
    by_env = {env_var_name(s, k): (s, k) for s, fields in sections.items() for k in fields}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV_VAR or name.startswith(RESERVED_ENV_PREFIXES):
            continue
        if name not in by_env:
            close = difflib.get_close_matches(name, by_env, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(name, "unknown environment variable" + hint)
        _put(values, *by_env[name], environ[name], name, text=True)
    for dotted, raw in (overrides or {}).items():
        if raw is not None:
            _put(values, *dotted.partition(".")[::2], raw, OVERRIDE_SOURCE, text=True)
    built = {}
    for section, fields in sections.items():
        missing = [key for key in fields if (section, key) not in values]
        if missing:
            raise ConfigError(f"{section}.{missing[0]}", "has no value", DEFAULTS_SOURCE)
        try:
            built[section] = attrs.fields_dict(Settings)[section].type(
                **{key: values[section, key][0] for key in fields})
        except _Invalid as exc:
            raise ConfigError(f"{section}.{exc.name}", exc.problem, values[section, exc.name][1]) from None
    settings = Settings(**built)
    problem = _workers_problem(settings)
    if problem is not None:
        raise ConfigError("web.workers", problem, values["web", "workers"][1])
    problem = _metrics_port_problem(settings)
    if problem is not None:
        raise ConfigError("metrics.port", problem, values["metrics", "port"][1])
    return settings


def _mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``?password=``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        url = url.replace("//" + parts.netloc, f"//{userinfo.partition(':')[0]}:{MASK}@{hostport}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        masked = urlencode([(n, MASK if n == "password" else v) for n, v in pairs], safe="*")
        url = url.replace("?" + parts.query, "?" + masked, 1)
    return url


def settings_as_dict(settings: Settings, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` with lists for tuples, ready for :func:`render_toml`.

    With ``mask_secrets`` each admin token becomes ``"***"`` (so the count stays visible) and
    passwords inside URLs become ``***``.
    """
    result: dict[str, dict[str, Any]] = {}
    for section, fields in _sections().items():
        group, table = getattr(settings, section), {}
        for key, field in fields.items():
            value = getattr(group, key)
            if field.type == _NAMED_STEPS:
                value = {name: list(steps) for name, steps in value}
            value = list(value) if isinstance(value, tuple) else value
            if mask_secrets and field.metadata.get("secret"):
                # an empty secret stays visible as empty: the operator sees it is off
                value = [MASK] * len(value) if isinstance(value, list) else (MASK if value else value)
            elif mask_secrets and field.metadata.get("url") and value:
                value = _mask_url(value)
            table[key] = value
        result[section] = table
    return result


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes (ASCII only) are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):  # an inline table: one line, as TOML 1.0 requires
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def render_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``data``: top-level scalars first, then one ``[table]`` per nested dict.

    Supports str, int, float, bool and lists of those; ``tomllib.loads`` gives ``data`` back.
    """
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_toml_key(name)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"

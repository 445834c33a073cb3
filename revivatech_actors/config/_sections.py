"""One frozen attrs class per TOML section (but [scoring]: ``_scoring.py``). A field's type says
how a raw value is converted (``_convert.py``), its validator which values are good
(``_checks.py``); a setting's default lives only in ``config/default.toml``."""

import attrs

from ..domain.addresses import KEEP_MODES
from ._checks import (
    checked,
    choice,
    funnel_steps_problem,
    integer,
    is_host,
    jwt_secret_problem,
    metrics_token_problem,
    named_funnels_problem,
    names_problem,
    networks_problem,
    number,
    origins_problem,
    rate,
    redis_url_problem,
    roles_problem,
    rule,
    secrets_problem,
    share,
    storage_url_problem,
)
from ._convert import NAMED_STEPS, TOKENS, TYPE_RULES
from ._errors import Invalid

_LIST = TYPE_RULES[TOKENS]


@attrs.frozen(kw_only=True)
class WebSettings:
    """[web]: where the HTTP / WebSocket server listens."""

    host: str = rule("must be an IP address or a host name", is_host)
    port: int = integer(1, 65535)
    #: Processes serving the port (SO_REUSEPORT), each a whole service; more than 1 needs
    #: PostgreSQL and Redis (checked across sections, see _settings.py).
    workers: int = integer(1)
    access_log: bool  # log one line per request
    #: Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs).
    trusted_proxies: tuple[str, ...] = checked(
        networks_problem, "must be a list of IP addresses or CIDR networks"
    )
    #: Seconds a request has to send its whole request line and headers (from the connection's
    #: opening, or from the first byte of a later request on a kept-alive connection).
    header_timeout: float = number(0)
    #: Seconds a request has to send its whole body once its headers are complete.
    body_timeout: float = number(0)
    #: Most open connections (HTTP and WebSocket); past it new ones are closed at once.
    max_connections: int = integer(1)
    #: Largest request line plus headers, in bytes; past it the answer is 431.
    max_header_size: int = integer(1024)


@attrs.frozen(kw_only=True)
class StorageSettings:
    """[storage]: the event database. Timeouts and intervals are seconds."""

    url: str = checked(
        storage_url_problem,
        "must be a URL like sqlite:///revivatech.db or postgresql://host/db",
        url=True,
    )
    connect_timeout: float = number(0)
    ping_timeout: float = number(0)  # a health ping slower than this counts as unreachable
    health_interval: float = number(0)  # between the storage actor's background pings


@attrs.frozen(kw_only=True)
class RedisSettings:
    """[redis]: shared real-time state; an empty ``url`` keeps it in-process."""

    url: str = checked(
        redis_url_problem, "must be a redis://, rediss:// or unix:// URL, or empty", url=True
    )
    ping_timeout: float = number(0)
    key_prefix: str = rule("must be 1 to 100 characters", lambda v: 0 < len(v) <= 100)


@attrs.frozen(kw_only=True)
class AuthSettings:
    """[auth]: admin bearer tokens and ingest write keys, each plain or ``sha256:<hex>`` (secret;
    never logged or printed), and the main app's JWTs."""

    admin_tokens: tuple[str, ...] = checked(
        lambda v: secrets_problem(v, "token"), _LIST, secret=True
    )
    #: Empty: ingest needs no key; otherwise one of these in X-Write-Key or a write_key field.
    write_keys: tuple[str, ...] = checked(
        lambda v: secrets_problem(v, "write key"), _LIST, secret=True
    )
    jwt_secret: str = checked(jwt_secret_problem, "must be a string", secret=True)
    jwt_admin_roles: tuple[str, ...] = checked(roles_problem, _LIST)


@attrs.frozen(kw_only=True)
class CorsSettings:
    """[cors]: origins a browser may call from; ``ingest_origins`` for the ingest routes (never
    with credentials), ``allowed_origins`` for the others and for credentialed requests;
    ``max_age`` is seconds a preflight may be cached."""

    ingest_origins: tuple[str, ...] = checked(lambda v: origins_problem(v, wildcard=True), _LIST)
    allowed_origins: tuple[str, ...] = checked(lambda v: origins_problem(v, wildcard=False), _LIST)
    allow_credentials: bool
    max_age: int = integer(0, 86400)


@attrs.frozen(kw_only=True)
class SupervisorSettings:
    """[supervisor]: more than ``max_restarts`` restarts within ``max_seconds`` make it give up."""

    max_restarts: int = integer(0)
    max_seconds: float = number(0)
    backoff_initial: float = number(0, inclusive=True)
    backoff_max: float = number(0, inclusive=True)
    child_shutdown_timeout: float = number(0)

    @backoff_max.validator
    def _not_below_initial(self, attribute: attrs.Attribute, value: float) -> None:
        if value < self.backoff_initial:
            problem = f"must be >= backoff_initial ({self.backoff_initial}), got {value!r}"
            raise Invalid(attribute.name, problem)


@attrs.frozen(kw_only=True)
class ShutdownSettings:
    """[shutdown]: seconds from the first signal until the ordered stop must be done (else
    exit 1)."""

    timeout: float = number(0)


@attrs.frozen(kw_only=True)
class FaultSettings:
    """[faults]: ``enabled`` exposes POST /api/analytics/actors/{name}/crash; off in production."""

    enabled: bool


@attrs.frozen(kw_only=True)
class LogSettings:
    """[log]: the log level and the format of a line (``text``, or ``json``: one object a line)."""

    level: str = choice("debug", "info", "warning", "error")
    format: str = choice("text", "json")


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """[metrics]: who may read ``GET /metrics``. ``token`` (secret) is a bearer token for it;
    ``port`` > 0 serves it on ``host:port`` only (an internal listener) instead of ``web.port``."""

    token: str = checked(metrics_token_problem, "must be a string", secret=True)
    port: int = integer(0, 65535)
    host: str = rule("must be a non-empty string", lambda v: bool(v.strip()))


@attrs.frozen(kw_only=True)
class IngestSettings:
    """[ingest]: acknowledgement mode and limits; ``max_body`` is bytes, the timeouts seconds."""

    ack: str = choice("durable", "accepted")
    max_batch: int = integer(1)
    max_body: int = integer(1024)
    enqueue_timeout: float = number(0)
    inbox: int = integer(1)  # capacity of the ingest inbox
    ack_timeout: float = number(0)  # longest wait for a durable acknowledgement
    client_ip: str = choice(*KEEP_MODES)  # how much of the client's address each event keeps
    #: Seconds an event's (skew-corrected) time may be ahead of its receive time; further ahead
    #: it is replaced by the receive time.
    max_future_seconds: float = number(0, inclusive=True)
    max_age_days: int = integer(0)  # older events are refused; 0: no limit (backfills)


@attrs.frozen(kw_only=True)
class LimitSettings:
    """[limits]: token-bucket rates ``N/<int>(s|m|h)`` (domain/rates.py); empty: no limit."""

    admin_rate: str = rate()  # per admin credential
    ingest_rate: str = rate()  # per client address, on the ingest routes
    ws_connect_rate: str = rate()  # per client address, WebSocket connections


@attrs.frozen(kw_only=True)
class BatchSettings:
    """[batch]: storage write batching; ``max_wait`` is seconds (0 writes at once)."""

    max_events: int = integer(1)
    max_wait: float = number(0, inclusive=True)


@attrs.frozen(kw_only=True)
class ProfileSettings:
    """[profiles]: per-visitor profile actors; times in seconds."""

    idle_timeout: float = number(0)  # passivate a visitor's actor after this long without events
    max_active: int = integer(1)  # most visitor actors kept active; least recently used go first
    flush_interval: float = number(0)  # how often pending profile deltas are written
    max_write_share: float = share()  # most of the time profile writes may keep storage busy
    max_touchpoints: int = integer(1)  # touchpoints kept per session journey
    max_unwritten_events: int = integer(1)  # past it, a write starts at once whatever the pacing
    #: Visitors' partitions, each with one owner (to grow them: docs/scaling.md).
    partitions: int = integer(1, 65536)
    lease_ttl: float = number(0)  # seconds a partition's lease lasts without renewal
    poll_interval: float = number(0)  # seconds between reads of the log for events stored elsewhere


@attrs.frozen(kw_only=True)
class BroadcastSettings:
    """[broadcast]: seconds between periodic WebSocket broadcasts, the least time between
    change-driven ones, the share of time snapshots may be in flight and the snapshots sent per
    second to all clients together, the caps of admin and
    of tokenless (public) clients, the protocol ping interval, and how long one send may stay
    stuck before the client is closed with 1013."""

    interval: float = number(0)
    min_interval: float = number(0)
    max_share: float = share()  # most of the time a change-driven snapshot may be in flight
    max_sends_per_second: float = number(0)  # snapshots to all clients together (0: no bound)
    max_clients: int = integer(1)
    public_realtime: bool  # tokenless clients may follow the realtime aggregates, never a visitor
    max_public_clients: int = integer(0)
    ping_interval: float = number(0)
    stuck_timeout: float = number(0)
    max_message_size: int = integer(128)  # bytes of one client message; larger ones close (1009)
    max_messages_per_second: float = number(0)  # a client's sustained rate of messages
    max_subscriptions: int = integer(1)  # per connection: realtime plus each followed visitor


@attrs.frozen(kw_only=True)
class RealtimeSettings:
    """[realtime]: sliding window of the real-time metrics (seconds), the event types that count
    as conversions, and how many top pages to list."""

    window: int = integer(10, 86400)
    conversion_types: tuple[str, ...] = checked(names_problem, _LIST)
    top_pages: int = integer(1, 100)


@attrs.frozen(kw_only=True)
class FunnelSettings:
    """[funnel]: the default steps, conversion window (seconds), entry range (seconds back from
    now), how long an answer is cached and how long a computation may take."""

    steps: tuple[str, ...] = checked(funnel_steps_problem, _LIST)
    window: float = number(0)
    range: float = number(0)
    cache_ttl: float = number(0, inclusive=True)
    timeout: float = number(0)
    named: NAMED_STEPS = checked(named_funnels_problem, TYPE_RULES[NAMED_STEPS])

    def named_steps(self) -> dict[str, tuple[str, ...]]:
        """The named funnels (``?funnel_name=``): name -> steps, in the order configured."""
        return dict(self.named)


@attrs.frozen(kw_only=True)
class RetentionSettings:
    """[retention]: the janitor that deletes old rows (docs/operations.md, "Data lifecycle")."""

    days: int = integer(0, 36500)  # rows older than this many days are deleted; 0 keeps all
    interval: float = number(0)  # seconds between the janitor's passes
    batch_size: int = integer(1, 100_000)  # most rows one delete statement removes
    max_share: float = share()  # most of the time the janitor may keep storage busy

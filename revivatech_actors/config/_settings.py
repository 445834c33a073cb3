"""The whole configuration: one field per TOML section, the rules that involve several sections,
and the settings that were renamed (their old paths keep working, deprecated)."""

import attrs

from ._scoring import RENAMED as _SCORING_RENAMED
from ._scoring import ScoringSettings
from ._sections import (
    AuthSettings,
    BatchSettings,
    BroadcastSettings,
    CorsSettings,
    FaultSettings,
    FunnelSettings,
    IngestSettings,
    LimitSettings,
    LogSettings,
    MetricsSettings,
    ProfileSettings,
    RealtimeSettings,
    RedisSettings,
    RetentionSettings,
    ShutdownSettings,
    StorageSettings,
    SupervisorSettings,
    WebSettings,
)

#: Deprecated path of a setting -> its path now.
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {**_SCORING_RENAMED}


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
        return (
            "more than 1 needs PostgreSQL storage (storage.url is SQLite, whose one file cannot "
            f"take several processes' writes), got {workers}"
        )
    if not settings.redis.url:
        return (
            "more than 1 needs redis.url (without Redis each worker would count its own realtime "
            f"figures and send its own live updates), got {workers}"
        )
    return None


def _metrics_port_problem(settings: Settings) -> str | None:
    """Why ``metrics.port`` cannot be used with ``web.port``, or None."""
    port = settings.metrics.port
    if port and port == settings.web.port:
        return f"must differ from web.port (0 serves /metrics on web.port), got {port}"
    return None


def cross_section_problem(settings: Settings) -> tuple[tuple[str, ...], str] | None:
    """The first setting that cannot work with the others, as (its path, the reason), or None."""
    for path, problem in (
        (("web", "workers"), _workers_problem),
        (("metrics", "port"), _metrics_port_problem),
    ):
        reason = problem(settings)
        if reason is not None:
            return path, reason
    return None

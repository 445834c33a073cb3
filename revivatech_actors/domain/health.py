"""How healthy the service is, decided from probe results and the supervision tree. No I/O.

The rules operators page on (also in docs/operations.md):

* **unhealthy** (HTTP 503): the database is unreachable, the root supervisor is not running, or a
  ``permanent`` actor is neither running nor being restarted (it failed for good);
* **degraded** (HTTP 200): everything needed to store events works, but Redis is configured and
  unreachable, an actor is restarting right now, or the event loop lags by more than
  :data:`LOOP_LAG_DEGRADED_MS`;
* **healthy** (HTTP 200) otherwise.

Readiness (``/readyz``) is stricter about actors and ignores Redis: the database answers and every
``permanent`` actor is running.

Reasons never carry a driver's error text (it can name hosts and databases, and health endpoints
are open); the probe results keep it for those who may see it.
"""

from __future__ import annotations

import attrs

from ..supervisor import ActorStatus, Restart, State

__all__ = [
    "HealthReport",
    "ProbeResult",
    "Readiness",
    "assess_health",
    "assess_readiness",
    "LOOP_LAG_DEGRADED_MS",
]

#: An event loop that wakes a sleeping task this late answers every request at least this late.
LOOP_LAG_DEGRADED_MS = 500.0

_ALIVE = (State.RUNNING, State.STARTING, State.RESTARTING)


@attrs.frozen
class ProbeResult:
    """One check of an external dependency."""

    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    checked_at: float | None = None  # wall clock


@attrs.frozen
class ActorSummary:
    total: int
    running: int
    restarting: int
    failed: int
    stopped: int
    restarts: int
    not_running: tuple[str, ...]


@attrs.frozen
class HealthReport:
    status: str  # healthy | degraded | unhealthy
    database: str  # connected | disconnected
    redis: str  # connected | disconnected | disabled
    analytics: str  # operational | degraded | down
    reasons: tuple[str, ...]
    actors: ActorSummary

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unhealthy" else 200


@attrs.frozen
class Readiness:
    ready: bool
    reasons: tuple[str, ...]


def _actors(tree: ActorStatus) -> list[ActorStatus]:
    return list(tree.walk())[1:]  # the root reports itself separately


def summarize_actors(tree: ActorStatus) -> ActorSummary:
    actors = _actors(tree)
    return ActorSummary(
        total=len(actors),
        running=sum(a.state is State.RUNNING for a in actors),
        restarting=sum(a.state is State.RESTARTING for a in actors),
        failed=sum(a.state is State.FAILED for a in actors),
        stopped=sum(a.state is State.STOPPED for a in actors),
        restarts=sum(a.restarts for a in actors),
        not_running=tuple(a.name for a in actors if a.state is not State.RUNNING),
    )


def assess_health(
    *,
    database: ProbeResult,
    redis: ProbeResult | None,
    tree: ActorStatus,
    loop_lag_ms: float | None = None,
) -> HealthReport:
    """Combine the probes and the actor tree into one report. ``redis`` is None when disabled."""
    fatal: list[str] = []
    degraded: list[str] = []
    if not database.ok:
        fatal.append("database unreachable")
    if tree.state is not State.RUNNING:
        fatal.append(f"supervisor {tree.name} is {tree.state.value}")
    for actor in _actors(tree):
        if actor.restart is Restart.PERMANENT and actor.state not in _ALIVE:
            fatal.append(f"actor {actor.name} is {actor.state.value}")
        elif actor.state is State.RESTARTING:
            degraded.append(f"actor {actor.name} is restarting")
    if redis is not None and not redis.ok:
        degraded.append("redis unreachable")
    if loop_lag_ms is not None and loop_lag_ms > LOOP_LAG_DEGRADED_MS:
        degraded.append(f"event loop lags by {loop_lag_ms:.0f} ms")
    if fatal:
        status, analytics = "unhealthy", "down"
    elif degraded:
        status, analytics = "degraded", "degraded"
    else:
        status, analytics = "healthy", "operational"
    return HealthReport(
        status=status,
        database="connected" if database.ok else "disconnected",
        redis="disabled" if redis is None else ("connected" if redis.ok else "disconnected"),
        analytics=analytics,
        reasons=tuple(fatal + degraded),
        actors=summarize_actors(tree),
    )


def assess_readiness(*, database: ProbeResult, tree: ActorStatus) -> Readiness:
    """Ready to take traffic: the database answers and every permanent actor is running."""
    reasons = []
    if not database.ok:
        reasons.append("database unreachable")
    if tree.state is not State.RUNNING:
        reasons.append(f"supervisor {tree.name} is {tree.state.value}")
    reasons.extend(
        f"actor {actor.name} is {actor.state.value}"
        for actor in _actors(tree)
        if actor.restart is Restart.PERMANENT and actor.state is not State.RUNNING
    )
    return Readiness(ready=not reasons, reasons=tuple(reasons))

"""The telemetry actor: writes to the Prometheus metrics what is a state rather than an event.

Inbox depths, actor restarts, active profile actors, WebSocket clients and the age of the oldest
event not yet committed live in the actor tree and in the actors' own records. Every
:data:`SAMPLE_INTERVAL` (and just before ``/metrics`` answers, through
:meth:`TelemetryActor.sample`) this actor copies them into the metrics of
:mod:`revivatech_actors.prometheus`. Under ``serve --workers N`` the values must be written to be
summed across workers (a scrape answered by one worker cannot ask the others), so sampling is
periodic in every worker and a scrape sees the other workers' figures at most this old.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import trio

from ..prometheus import (
    ACTIVE_PROFILE_ACTORS,
    ACTOR_INBOX_DEPTH,
    ACTOR_RESTARTS,
    INGEST_LAG_SECONDS,
    WEBSOCKET_CLIENTS,
)
from ..supervisor import Activity, ActorStatus

__all__ = ["SAMPLE_INTERVAL", "TelemetryActor"]

#: Seconds between two samples: the age of another worker's gauges in a scrape at most.
SAMPLE_INTERVAL = 1.0


@attrs.define(eq=False)
class TelemetryActor:
    """Samples ``tree()`` (the supervision tree), ``active_profiles()``, ``websocket_clients()``
    and ``oldest_held()`` (when the oldest event not yet committed was received, or None) into
    the Prometheus metrics. Restarts are counted as the increase of each actor's restart count
    since the previous sample, so the counter only grows."""

    tree: Callable[[], ActorStatus]
    active_profiles: Callable[[], int]
    websocket_clients: Callable[[], int]
    oldest_held: Callable[[], datetime | None] = lambda: None
    interval: float = SAMPLE_INTERVAL
    activity: Activity = attrs.Factory(Activity)
    _restarts_seen: dict[str, int] = attrs.field(init=False, factory=dict)

    def sample(self) -> None:
        """Write the current figures to the metrics (no I/O but the metrics' own)."""
        for node in self.tree().walk():
            if node.kind != "actor":
                continue
            if node.inbox is not None:
                ACTOR_INBOX_DEPTH.labels(node.name).set(node.inbox.depth)
            restarts = ACTOR_RESTARTS.labels(node.name)  # present at 0 before the first restart
            increase = node.restarts - self._restarts_seen.get(node.name, 0)
            if increase > 0:
                restarts.inc(increase)
                self._restarts_seen[node.name] = node.restarts
        ACTIVE_PROFILE_ACTORS.set(self.active_profiles())
        WEBSOCKET_CLIENTS.set(self.websocket_clients())
        oldest = self.oldest_held()
        INGEST_LAG_SECONDS.set(
            0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        )
        self.activity.record()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.sample()
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            self.sample()

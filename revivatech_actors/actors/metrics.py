"""The metrics actor: keeps the realtime window (``domain.realtime``) for
``GET /api/analytics/realtime`` and the WebSocket's ``realtime_metrics``.

It hears every stored event from the batcher (after commit, so it counts only what is stored),
every answered HTTP request from the web layer (``record_request``, a plain call: counting costs
less than a message), and watches readiness once a second for the uptime figure. At start it
rebuilds the window from the stored events of the window's span, so a restart of the actor or of
the process does not zero the dashboard.

Listeners (the broadcaster) wait on :meth:`wait_for_change`: it returns once events have been
counted since the version they last saw.

With Redis (``shared``), the figures are the shared window's (``shared_state.realtime``), the
same on every instance: each batch of events is added there in one pipeline, and answered
requests once a second. This instance's own window is kept as well; while Redis cannot be
reached the figures come from it (``source`` says which), and what happened meanwhile is missing
from the shared window.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import redis
import trio

from ..domain.realtime import (
    RealtimeFigures,
    RealtimeWindow,
    ServiceUptime,
    bucket_of,
    realtime_document,
)
from ..domain.timefmt import iso_datetime
from ..messages import Event, StoredBatch
from ..shared_state.realtime import RedisRealtime
from ..storage import Storage, StorageError
from ..supervisor import Activity

__all__ = ["MetricsActor"]

logger = logging.getLogger(__name__)

#: Seconds between two readiness observations (the uptime figure's resolution).
READINESS_INTERVAL = 1.0
#: Events counted between two yields to the event loop.
SLICE_EVENTS = 1000
#: Seconds the rebuild from storage may take before the actor starts with what it has.
RESTORE_TIMEOUT = 30.0
#: Seconds between two additions of answered requests to the shared window.
REQUESTS_FLUSH_INTERVAL = 1.0
#: Seconds without calls to Redis after one failed: a Redis that hangs must not slow the counting
#: of every batch (and through it the batcher) by a timeout each.
REDIS_RETRY_AFTER = 5.0
_REDIS_ERRORS = (redis.RedisError, OSError)


@attrs.define(eq=False)
class MetricsActor:
    """See the module docstring. ``clock`` gives seconds since the epoch (tests replace it)."""

    storage: Storage
    inbox: trio.MemoryReceiveChannel[StoredBatch]
    window_seconds: int
    page_types: frozenset[str]
    conversion_types: frozenset[str]
    top_pages: int = 10
    is_ready: Callable[[], Awaitable[bool]] | None = None
    shared: RedisRealtime | None = None
    started_at: float = attrs.Factory(time.time)
    clock: Callable[[], float] = time.time
    activity: Activity = attrs.Factory(Activity)
    version: int = attrs.field(init=False, default=0)  # grows with each batch of events counted
    window: RealtimeWindow = attrs.field(init=False)
    uptime: ServiceUptime = attrs.field(init=False)
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    shared_ok: bool = attrs.field(init=False, default=True)  # the last call to Redis succeeded
    _shared_retry_at: float = attrs.field(
        init=False, default=0.0
    )  # trio clock: no Redis call before
    _requests: dict[int, list] = attrs.field(
        init=False, factory=lambda: collections.defaultdict(lambda: [0, 0.0, 0])
    )

    def __attrs_post_init__(self) -> None:
        self.window = self._new_window()
        self.uptime = ServiceUptime(started=self.started_at)

    def _new_window(self) -> RealtimeWindow:
        return RealtimeWindow(
            self.window_seconds,
            page_types=self.page_types,
            conversion_types=self.conversion_types,
            top_pages=self.top_pages,
        )

    # ------------------------------------------------------------------ what the web layer calls

    async def figures(self) -> tuple[RealtimeFigures, str]:
        """The window's figures now, and where they come from: ``redis`` (every instance's) or
        ``local`` (this instance's: no Redis configured, or Redis unreachable)."""
        if self._use_shared():
            assert self.shared is not None
            try:
                figures = await self.shared.figures(self.clock())
            except _REDIS_ERRORS as exc:
                self._shared_failed("read", exc)
            else:
                self._shared_worked()
                return figures, "redis"
        return self.window.figures(self.clock()), "local"

    async def document(self) -> dict[str, Any]:
        """The realtime document (``domain.realtime.realtime_document``) as of now."""
        figures, source = await self.figures()
        return realtime_document(figures, await self.uptime_percent(), datetime.now(UTC), source)

    def _use_shared(self) -> bool:
        return self.shared is not None and trio.current_time() >= self._shared_retry_at

    def _shared_worked(self) -> None:
        if not self.shared_ok:
            # Debug: the Redis connection logs the outage and its end, once each.
            logger.debug(
                "Redis reachable again: realtime figures are shared by every instance again"
            )
        self.shared_ok = True

    def _shared_failed(self, what: str, exc: BaseException) -> None:
        if self.shared_ok:
            logger.debug(
                "Redis unreachable (%s): realtime figures are this instance's until it is back: %s",
                what,
                exc,
            )
        self.shared_ok = False
        self._shared_retry_at = trio.current_time() + REDIS_RETRY_AFTER

    async def uptime_percent(self) -> float:
        """Percent of the time since start the service was ready, up to now (readiness is
        observed again for the answer, so a young process is not reported by its start-up alone)."""
        if self.is_ready is not None:
            self.uptime.observe(await self.is_ready(), self.clock())
        return self.uptime.percent(self.clock())

    def record_request(self, seconds: float, status: int) -> None:
        """Count one answered HTTP request (its handling time and status)."""
        now = self.clock()
        self.window.add_request(seconds, status, now)
        if self.shared is not None:
            pending = self._requests[bucket_of(now)]
            pending[0] += 1
            pending[1] += seconds
            pending[2] += status >= 500

    async def wait_for_change(self, seen_version: int) -> int:
        """Return the current version once it differs from ``seen_version``."""
        while self.version == seen_version:
            await self._changed.wait()
        return self.version

    # ------------------------------------------------------------------ the actor

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.window = (
            self._new_window()
        )  # a restarted actor rebuilds from storage, not on top of it
        await self._restore()
        async with trio.open_nursery() as nursery:
            if self.is_ready is not None:
                nursery.start_soon(self._observe_readiness)
            if self.shared is not None:
                nursery.start_soon(self._flush_requests)
            task_status.started()
            await self._count_events()
            nursery.cancel_scope.cancel()

    async def _restore(self) -> None:
        now = self.clock()
        since = datetime.fromtimestamp(self.window.start(now), UTC)
        try:
            with trio.fail_after(RESTORE_TIMEOUT):
                seed = await self.storage.realtime_seed(
                    since, page_types=self.page_types, conversion_types=self.conversion_types
                )
        except (StorageError, trio.TooSlowError) as exc:
            logger.warning(
                "realtime window starts empty: the stored events since %s could not be read (%s)",
                iso_datetime(since),
                exc or "timed out",
            )
            return
        self.window.restore(
            seed.bucket_counts, seed.page_views, seed.users, seed.sessions, now=self.clock()
        )
        if self.shared is not None:
            try:
                if await self.shared.claim_seed(now):
                    await self.shared.restore(seed, now)
                    logger.info(
                        "the shared realtime window in Redis was empty: rebuilt it from storage"
                    )
            except _REDIS_ERRORS as exc:
                self._shared_failed("rebuild", exc)
        logger.info(
            "realtime window rebuilt from storage: %d visitor(s), %d event(s) since %s",
            len(seed.users),
            sum(row[1] for row in seed.bucket_counts),
            iso_datetime(since),
        )

    async def _count_events(self) -> None:
        while True:
            try:
                events = (await self.inbox.receive()).events
            except trio.EndOfChannel:
                return
            for start in range(0, len(events), SLICE_EVENTS):
                if start:
                    await trio.lowlevel.checkpoint()
                self._count(events[start : start + SLICE_EVENTS])
            if self._use_shared():
                assert self.shared is not None
                try:
                    await self.shared.add_events(events, self.clock())
                    self._shared_worked()
                except _REDIS_ERRORS as exc:
                    self._shared_failed("count events", exc)
            self.activity.record(len(events))
            self.version += 1
            changed, self._changed = self._changed, trio.Event()
            changed.set()

    def _count(self, events: list[Event]) -> None:
        self.window.add_events(events, self.clock())

    async def _flush_requests(self) -> None:
        assert self.shared is not None
        while True:
            await trio.sleep(REQUESTS_FLUSH_INTERVAL)
            pending, self._requests = self._requests, collections.defaultdict(lambda: [0, 0.0, 0])
            if not self._use_shared():
                continue
            try:
                await self.shared.add_requests(
                    {b: (n, secs, errors) for b, (n, secs, errors) in pending.items()}
                )
            except _REDIS_ERRORS as exc:
                self._shared_failed("count requests", exc)

    async def _observe_readiness(self) -> None:
        assert self.is_ready is not None
        while True:
            self.uptime.observe(await self.is_ready(), self.clock())
            await trio.sleep(READINESS_INTERVAL)

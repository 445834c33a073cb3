"""Builds the actor tree from the settings and runs it until a signal stops it.

The tree (start order; stop order is the reverse)::

    root (supervisor, one_for_one)
    ├── storage        opens the database, applies migrations, watches its health
    ├── scorer         scores written profiles, records the scores that moved (ml_predictions)
    ├── profiles       per-visitor profile actors: live profiles, journeys, paced delta writes
    ├── janitor        the data lifecycle: deletes rows past retention.days, erases visitors
    ├── metrics        the realtime window: stored events, HTTP timings, uptime
    ├── batcher        group commit of events (stopped after ingest: it writes all it holds;
    │                  closing its subscriber channel then ends profiles, which writes all it holds)
    ├── ingest         admits submissions (the budget behind 503s), assigns ids, corrects clocks
    ├── loop_monitor   measures event loop lag
    ├── telemetry      samples the tree into the Prometheus gauges (revivatech_actors.prometheus)
    ├── metrics_web    only with metrics.port: serves /metrics on metrics.host:metrics.port
    ├── web            Hypercorn + Quart-Trio: started after the actors behind it are ready,
                       stopped before them, so nothing new arrives while they stop; its open
                       requests still get their answers, since ingest and batcher stop after it
    └── broadcaster    the live feed's subscriptions and outboxes: stopped first, closing every
                       WebSocket with 1001, so open feeds do not hold up the web server's stop
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import attrs
import trio

from . import __version__
from .actors.batcher import BatcherActor
from .actors.broadcaster import BroadcasterActor
from .actors.ingest import EventBudget, IngestActor
from .actors.janitor import JanitorActor
from .actors.loop_monitor import LoopMonitor
from .actors.metrics import MetricsActor
from .actors.profiles import ProfilesActor
from .actors.scorer import ScorerActor
from .actors.storage import StorageActor
from .actors.telemetry import TelemetryActor
from .config import Settings
from .domain.health import HealthReport, ProbeResult, Readiness, assess_health, assess_readiness
from .domain.sessions import PAGE_VIEW_TYPES
from .shared_state.cache import AnswerCache, LocalCache, RedisCache
from .shared_state.limits import RateLimits
from .shared_state.realtime import RedisRealtime
from .shared_state.redis import RedisConnection
from .storage import Storage, open_storage
from .supervisor import Activity, ActorStatus, ChildSpec, Restart, Supervisor, SupervisorGaveUp
from .web.app import create_app, create_metrics_app
from .web.connection_limits import ConnectionLimits
from .web.server import WebServer

__all__ = ["HealthSnapshot", "Service", "force_exit", "serve_until_signalled", "watch_signals"]

logger = logging.getLogger(__name__)

#: Lists of written visitors' fingerprints that may wait for the scorer (it takes them into its own queue at once).
SCORER_INBOX = 16
#: Share of ``shutdown.timeout`` the profiles actor may spend writing what it holds when stopping.
PROFILES_SHUTDOWN_SHARE = 0.8
#: Share of a child's shutdown deadline that Hypercorn may spend letting open requests finish.
WEB_GRACE_SHARE = 0.6


@attrs.frozen
class HealthSnapshot:
    report: HealthReport
    database: ProbeResult
    redis: ProbeResult | None
    loop_lag_ms: float | None
    uptime_seconds: float
    checked_at: float
    version: str
    storage_engine: str


@attrs.define(eq=False)
class Service:
    """The running service as the web layer sees it: health, the actor tree, fault injection."""

    settings: Settings
    admin_tokens: tuple[str, ...]
    storage: Storage
    storage_actor: StorageActor
    loop_monitor: LoopMonitor
    ingest: IngestActor
    batcher: BatcherActor
    profiles: ProfilesActor
    scorer: ScorerActor
    metrics: MetricsActor
    janitor: JanitorActor
    broadcaster: BroadcasterActor
    redis: RedisConnection | None
    answer_cache: AnswerCache
    #: This process's index among the workers of `serve --workers N` (1 to N); None when the
    #: process serves alone.
    worker: int | None = None
    #: The rate limits (limits.*), and the Redis connection of their shared buckets: their own,
    #: so a request that must ask Redis never waits behind the realtime figures' writes.
    limits: RateLimits = attrs.Factory(RateLimits)
    limits_redis: RedisConnection | None = None
    web: WebServer | None = attrs.field(init=False)  # None when built without it (web=False)
    telemetry: TelemetryActor = attrs.field(init=False)
    #: The internal listener of metrics.port; None when metrics.port is 0 or without web.
    metrics_web: WebServer | None = attrs.field(init=False, default=None)
    root: Supervisor = attrs.field(init=False)
    started_at: float = attrs.field(init=False, factory=time.time)

    @classmethod
    def build(cls, settings: Settings, admin_tokens: tuple[str, ...], *, web: bool = True,
              worker: int | None = None) -> Service:
        """The service of ``settings``. ``web=False`` leaves the web server out of the tree (no
        port is listened on): for the pipeline run in-process, as ``import-original`` does.
        ``worker`` (1 to N) makes it worker ``worker`` of `serve --workers N`: its web server
        shares the port with the other workers' (SO_REUSEPORT)."""
        def new_storage() -> Storage:
            # One instance per actor that writes: each has its own connections.
            return open_storage(
                settings.storage.url,
                connect_timeout=settings.storage.connect_timeout,
                ping_timeout=settings.storage.ping_timeout,
            )

        storage = new_storage()
        redis = RedisConnection(settings.redis.url, timeout=settings.redis.ping_timeout) if settings.redis.url else None
        # Its own connection (a lease never queues behind the realtime figures), one outage log.
        limits_redis = (RedisConnection(settings.redis.url, timeout=settings.redis.ping_timeout, outage=redis.outage)
                        if redis is not None else None)
        lim = settings.limits
        limits = RateLimits.build(admin=lim.admin_rate, ingest=lim.ingest_rate, ws_connect=lim.ws_connect_rate,
                                  connection=limits_redis, prefix=settings.redis.key_prefix + "rl:",
                                  timeout=settings.redis.ping_timeout)
        budget = EventBudget(settings.ingest.inbox)
        # Bounded like every channel; the budget (events admitted, not yet committed) is the
        # real limit, and every submission weighs at least one event.
        to_batcher, batcher_inbox = trio.open_memory_channel(settings.ingest.inbox)
        batcher = BatcherActor(
            storage, batcher_inbox, budget, max_events=settings.batch.max_events, max_wait=settings.batch.max_wait
        )
        to_scorer, scorer_inbox = trio.open_memory_channel(SCORER_INBOX)
        p = settings.profiles
        scorer = ScorerActor(
            new_storage(), scorer_inbox, settings.scoring, interval=p.flush_interval,
            max_share=settings.scoring.max_share, rescore_interval=settings.scoring.rescore_interval,
        )
        profiles = ProfilesActor(
            new_storage(), batcher.subscribe(), reader=new_storage(), leases=new_storage(),
            listener=new_storage() if storage.announces_log else None,
            scorer=to_scorer,
            stop_writer=new_storage() if storage.parallel_writes else None, partitions=p.partitions,
            lease_ttl=p.lease_ttl, poll_interval=p.poll_interval, idle_timeout=p.idle_timeout,
            max_active=p.max_active, flush_interval=p.flush_interval, max_write_share=p.max_write_share,
            max_touchpoints=p.max_touchpoints, max_unwritten_events=p.max_unwritten_events,
        )
        r = settings.retention
        janitor = JanitorActor(new_storage(), days=r.days, interval=r.interval, batch_size=r.batch_size,
                               max_share=r.max_share, partitions=p.partitions, on_erased=profiles.fenced)
        rt = settings.realtime
        shared = None
        if redis is not None:  # the realtime window and the live feed's changes, shared by instances
            shared = RedisRealtime(redis, settings.redis.url, settings.redis.key_prefix, window=rt.window,
                                   page_types=PAGE_VIEW_TYPES, conversion_types=frozenset(rt.conversion_types),
                                   top_pages=rt.top_pages)
        metrics = MetricsActor(
            storage, batcher.subscribe(), rt.window, PAGE_VIEW_TYPES, frozenset(rt.conversion_types),
            top_pages=rt.top_pages, shared=shared,
        )

        async def insights_data(fingerprint: str) -> dict | None:
            return await profiles.insights(fingerprint, history=1, scoring=settings.scoring, now=datetime.now(UTC))

        b = settings.broadcast
        broadcaster = BroadcasterActor(metrics.document, metrics.wait_for_change, insights_data, interval=b.interval,
                                       min_interval=b.min_interval, max_clients=b.max_clients,
                                       max_public_clients=b.max_public_clients, shared=shared)
        scorer.on_recorded = lambda record: broadcaster.scores_recorded(record.user_fingerprint)
        service = cls(
            settings=settings,
            admin_tokens=admin_tokens,
            storage=storage,
            storage_actor=StorageActor(storage, health_interval=settings.storage.health_interval),
            loop_monitor=LoopMonitor(),
            ingest=IngestActor(to_batcher, budget, enqueue_timeout=settings.ingest.enqueue_timeout),
            batcher=batcher,
            profiles=profiles,
            scorer=scorer,
            metrics=metrics,
            janitor=janitor,
            broadcaster=broadcaster,
            redis=redis,
            answer_cache=(RedisCache(redis, settings.redis.key_prefix + "cache:") if redis is not None
                          else LocalCache()),
            worker=worker,
            limits=limits,
            limits_redis=limits_redis,
        )
        metrics.started_at = service.started_at

        async def is_ready() -> bool:
            return (await service.readiness()).ready

        metrics.is_ready = is_ready
        sup = settings.supervisor
        service.telemetry = TelemetryActor(service.actor_tree, lambda: profiles.stats_json()["active"],
                                           lambda: len(broadcaster.clients), batcher.oldest_held)
        web_activity = Activity()
        service.web = WebServer(
            create_app(service, web_activity),
            activity=web_activity,
            host=settings.web.host,
            port=settings.web.port,
            graceful_timeout=sup.child_shutdown_timeout * WEB_GRACE_SHARE,
            websocket_ping_interval=b.ping_interval,
            reuse_port=worker is not None,
            limits=ConnectionLimits(header_timeout=settings.web.header_timeout,
                                    body_timeout=settings.web.body_timeout,
                                    max_connections=settings.web.max_connections,
                                    max_header_size=settings.web.max_header_size),
            websocket_max_message=b.max_message_size,
        ) if web else None
        if web and settings.metrics.port:
            service.metrics_web = WebServer(
                create_metrics_app(service), host=settings.metrics.host, port=settings.metrics.port,
                graceful_timeout=sup.child_shutdown_timeout * WEB_GRACE_SHARE, reuse_port=worker is not None,
                name="metrics",
            )
        timeout = sup.child_shutdown_timeout
        service.root = Supervisor(
            "root",
            [
                ChildSpec("storage", service.storage_actor.run, Restart.PERMANENT, timeout, activity=service.storage_actor.activity),
                ChildSpec(
                    "scorer", scorer.run, Restart.PERMANENT, timeout,
                    stop=scorer.request_stop, inbox=scorer_inbox, activity=scorer.activity,
                ),
                ChildSpec(
                    # its last write may hold many visitors: most of the service's deadline
                    "profiles", profiles.run, Restart.PERMANENT,
                    max(timeout, settings.shutdown.timeout * PROFILES_SHUTDOWN_SHARE),
                    stop=profiles.request_stop, inbox=profiles.inbox, activity=profiles.activity,
                ),
                ChildSpec("janitor", janitor.run, Restart.PERMANENT, timeout, stop=janitor.request_stop,
                          activity=janitor.activity),
                ChildSpec("metrics", metrics.run, Restart.PERMANENT, timeout, inbox=metrics.inbox, activity=metrics.activity),
                ChildSpec(
                    "batcher", service.batcher.run, Restart.PERMANENT, timeout,
                    stop=service.batcher.request_stop, inbox=batcher_inbox, activity=service.batcher.activity,
                ),
                ChildSpec(
                    "ingest", service.ingest.run, Restart.PERMANENT, timeout,
                    stop=service.ingest.request_stop, activity=service.ingest.activity,  # no inbox: admission runs in the request
                ),
                ChildSpec("loop_monitor", service.loop_monitor.run, Restart.PERMANENT, timeout, activity=service.loop_monitor.activity),
                ChildSpec("telemetry", service.telemetry.run, Restart.PERMANENT, timeout, activity=service.telemetry.activity),
                *([ChildSpec("metrics_web", service.metrics_web.run, Restart.PERMANENT, timeout,
                             stop=service.metrics_web.request_stop, activity=service.metrics_web.activity)]
                  if service.metrics_web is not None else []),
                *([ChildSpec("web", service.web.run, Restart.PERMANENT, timeout, stop=service.web.request_stop,
                             activity=service.web.activity)] if service.web is not None else []),
                ChildSpec("broadcaster", broadcaster.run, Restart.PERMANENT, timeout, activity=broadcaster.activity),
            ],
            max_restarts=sup.max_restarts,
            max_seconds=sup.max_seconds,
            backoff_initial=sup.backoff_initial,
            backoff_max=sup.backoff_max,
        )
        return service

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until :meth:`request_stop`; raises SupervisorGaveUp if the root gives up."""
        try:
            await self.root.run(task_status=task_status)
        finally:
            for connection in (self.redis, self.limits_redis):
                if connection is not None:
                    connection.close()

    def request_stop(self) -> None:
        self.root.request_stop()

    def actor_tree(self) -> ActorStatus:
        return self.root.status()

    def inject_crash(self, name: str) -> None:
        self.root.inject_crash(name)

    async def _probe_all(self) -> tuple[ProbeResult, ProbeResult | None]:
        results: dict[str, ProbeResult] = {}

        async def probe(key, check):
            results[key] = await check()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, "database", self.storage_actor.recent_probe)
            if self.redis is not None:
                nursery.start_soon(probe, "redis", self.redis.check)
        return results["database"], results.get("redis")

    async def health(self) -> HealthSnapshot:
        """Probes of the database (at most ``storage.health_interval`` old) and Redis (fresh),
        concurrently and each bounded, plus the tree."""
        database, redis = await self._probe_all()
        lag = self.loop_monitor.lag_ms
        report = assess_health(database=database, redis=redis, tree=self.actor_tree(), loop_lag_ms=lag)
        now = time.time()
        return HealthSnapshot(
            report=report,
            database=database,
            redis=redis,
            loop_lag_ms=lag,
            uptime_seconds=now - self.started_at,
            checked_at=now,
            version=__version__,
            storage_engine=self.storage.engine,
        )

    async def readiness(self) -> Readiness:
        database = await self.storage_actor.recent_probe()
        return assess_readiness(database=database, tree=self.actor_tree())


async def serve_until_signalled(service: Service) -> int:
    """Run ``service`` until SIGINT or SIGTERM, then stop it in order. Returns the exit code.

    The first signal starts an ordered shutdown bounded by ``shutdown.timeout``; a second signal,
    or that deadline passing, ends the process at once with exit code 1.
    """
    deadline = service.settings.shutdown.timeout
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

            def stop(name: str) -> None:
                logger.warning("%s received: shutting down (deadline %g s)", name, deadline)
                service.request_stop()

            nursery.start_soon(watch_signals, signals, stop, deadline,
                               f"shutdown took longer than shutdown.timeout = {deadline:g} s")
            try:
                await service.run()
            except SupervisorGaveUp as exc:
                logger.critical("%s; exiting", exc)
                return 1
            finally:
                nursery.cancel_scope.cancel()
    logger.info("stopped cleanly")
    return 0


async def watch_signals(signals: AsyncIterator[int], stop: Callable[[str], None], deadline: float,
                        overdue: str) -> None:
    """On the first of ``signals``, ``stop(its name)``; a second signal, or ``deadline`` seconds
    after the first, ends the process at once (exit code 1, ``overdue`` logged as the reason)."""
    async for signum in signals:
        stop(signal.Signals(signum).name)
        break
    with trio.move_on_after(deadline):
        async for signum in signals:
            force_exit(f"second signal ({signal.Signals(signum).name})")
    force_exit(overdue)


def force_exit(reason: str) -> None:
    """Leave now: some task would not stop. Nothing acknowledged is lost, since acknowledgement
    happens only after commit; only work not yet acknowledged is abandoned."""
    logger.critical("forced exit: %s", reason)
    logging.shutdown()
    os._exit(1)

"""Builds the actor tree from the settings and runs it until a signal stops it.

The tree (start order; stop order is the reverse)::

    root (supervisor, one_for_one)
    ├── storage        opens the database, applies migrations, watches its health; the web
    │                  layer's reader (funnel, reports) is open as long as it runs
    ├── scorer         scores written profiles, records the scores that moved (ml_predictions)
    ├── profiles       per-visitor profile actors: live profiles, journeys, paced delta writes
    ├── janitor        the data lifecycle: deletes rows past retention.days, erases visitors
    ├── models         keeps the backtest of the scores fresh, run in a process of its own, and
    │                  the learned models it puts in use (read by scorer and insights)
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
from functools import partial
from typing import Any

import attrs
import trio

from .actors.batcher import BatcherActor
from .actors.broadcaster import BroadcasterActor
from .actors.ingest import EventBudget, IngestActor
from .actors.janitor import JanitorActor
from .actors.loop_monitor import LoopMonitor
from .actors.metrics import MetricsActor
from .actors.models import ModelsActor
from .actors.profiles import ProfilesActor
from .actors.scorer import ScorerActor
from .actors.storage import StorageActor, close_storages
from .actors.telemetry import TelemetryActor
from .backtest_process import backtest_in_subprocess
from .config import Settings
from .domain.scoring import ScoreRecord
from .domain.sessions import PAGE_VIEW_TYPES
from .probes import HealthChecks, HealthSnapshot
from .shared_state.cache import LocalCache, RedisCache
from .shared_state.limits import RateLimits
from .shared_state.realtime import RedisRealtime
from .shared_state.redis import RedisConnection
from .storage import Storage, open_storage
from .supervisor import Activity, ActorStatus, ChildSpec, Restart, Supervisor, SupervisorGaveUp
from .web import AppParts, ConnectionLimits, WebServer, create_app, create_metrics_app

__all__ = ["HealthSnapshot", "Service", "force_exit", "serve_until_signalled", "watch_signals"]

logger = logging.getLogger(__name__)

#: Lists of written visitors' fingerprints that may wait for the scorer (it takes them into its
#: own queue at once).
SCORER_INBOX = 16
#: Share of ``shutdown.timeout`` the profiles actor may spend writing what it holds when stopping.
PROFILES_SHUTDOWN_SHARE = 0.8
#: Share of a child's shutdown deadline that Hypercorn may spend letting open requests finish.
WEB_GRACE_SHARE = 0.6


@attrs.frozen(eq=False)
class Service:
    """What :meth:`build` made: the actor tree (``root``) and its parts, for tests and tools."""

    settings: Settings
    root: Supervisor
    checks: HealthChecks
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
    telemetry: TelemetryActor
    redis: RedisConnection | None
    #: The rate limits' own Redis connection (see :meth:`build`).
    limits_redis: RedisConnection | None
    #: None when built without the web server (``web=False``).
    web: WebServer | None
    #: The internal listener of metrics.port; None when metrics.port is 0 or without web.
    metrics_web: WebServer | None
    #: What the routes were given (None without the web server).
    app_parts: AppParts | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        admin_tokens: tuple[str, ...],
        *,
        web: bool = True,
        worker: int | None = None,
    ) -> Service:
        """The service of ``settings``, each part built before what needs it. ``web=False``
        leaves the web server out of the tree (no port is listened on): for the pipeline run
        in-process, as ``import-original`` does. ``worker`` (1 to N) makes it worker ``worker``
        of `serve --workers N`: its web server shares the port with the other workers'
        (SO_REUSEPORT)."""
        started_at = time.time()

        def new_storage() -> Storage:
            # One instance per actor that writes: each has its own connections.
            return open_storage(
                settings.storage.url,
                connect_timeout=settings.storage.connect_timeout,
                ping_timeout=settings.storage.ping_timeout,
            )

        # The tree is built last, from every actor; what reports on it reads it when called.
        root: Supervisor

        def tree() -> ActorStatus:
            return root.status()

        storage = new_storage()
        rs = settings.redis
        redis = RedisConnection(rs.url, timeout=rs.ping_timeout) if rs.url else None
        # The rate limits' own connection (a lease never queues behind the realtime figures'
        # writes), sharing one outage log.
        limits_redis = (
            RedisConnection(rs.url, timeout=rs.ping_timeout, outage=redis.outage)
            if redis is not None
            else None
        )
        lim = settings.limits
        limits = RateLimits.build(
            admin=lim.admin_rate,
            ingest=lim.ingest_rate,
            ws_connect=lim.ws_connect_rate,
            connection=limits_redis,
            prefix=rs.key_prefix + "rl:",
            timeout=rs.ping_timeout,
        )
        budget = EventBudget(settings.ingest.inbox)
        # Bounded like every channel; the budget (events admitted, not yet committed) is the
        # real limit, and every submission weighs at least one event.
        to_batcher, batcher_inbox = trio.open_memory_channel(settings.ingest.inbox)
        batcher = BatcherActor(
            storage,
            batcher_inbox,
            budget,
            max_events=settings.batch.max_events,
            max_wait=settings.batch.max_wait,
        )
        ingest = IngestActor(to_batcher, budget, enqueue_timeout=settings.ingest.enqueue_timeout)
        to_scorer, scorer_inbox = trio.open_memory_channel(SCORER_INBOX)
        p = settings.profiles
        profiles = ProfilesActor(
            new_storage(),
            batcher.subscribe(),
            reader=new_storage(),
            leases=new_storage(),
            listener=new_storage() if storage.announces_log else None,
            scorer=to_scorer,
            stop_writer=new_storage() if storage.parallel_writes else None,
            partitions=p.partitions,
            lease_ttl=p.lease_ttl,
            poll_interval=p.poll_interval,
            idle_timeout=p.idle_timeout,
            max_active=p.max_active,
            flush_interval=p.flush_interval,
            max_write_share=p.max_write_share,
            max_touchpoints=p.max_touchpoints,
            max_unwritten_events=p.max_unwritten_events,
        )
        r = settings.retention
        janitor = JanitorActor(
            new_storage(),
            days=r.days,
            interval=r.interval,
            batch_size=r.batch_size,
            max_share=r.max_share,
            partitions=p.partitions,
            on_erased=profiles.fenced,
        )
        models = ModelsActor(
            new_storage(),
            partial(backtest_in_subprocess, settings),
            interval=settings.scoring.learn_interval,
        )
        storage_actor = StorageActor(storage, health_interval=settings.storage.health_interval)
        loop_monitor = LoopMonitor()
        checks = HealthChecks(
            storage_actor, loop_monitor, redis, tree, started_at, storage_engine=storage.engine
        )
        rt = settings.realtime
        shared = None
        if redis is not None:  # the realtime window and the live feed's changes, shared
            shared = RedisRealtime(
                redis,
                rs.url,
                rs.key_prefix,
                window=rt.window,
                page_types=PAGE_VIEW_TYPES,
                conversion_types=frozenset(rt.conversion_types),
                top_pages=rt.top_pages,
            )
        metrics = MetricsActor(
            storage,
            batcher.subscribe(),
            rt.window,
            PAGE_VIEW_TYPES,
            frozenset(rt.conversion_types),
            top_pages=rt.top_pages,
            is_ready=checks.is_ready,
            shared=shared,
            started_at=started_at,
        )

        async def visitor_insights(fingerprint: str, history: int = 1) -> dict[str, Any] | None:
            return await profiles.insights(
                fingerprint,
                history=history,
                scoring=settings.scoring,
                now=datetime.now(UTC),
                learned=models.in_use,
            )

        b = settings.broadcast
        broadcaster = BroadcasterActor(
            metrics.document,
            metrics.wait_for_change,
            visitor_insights,
            interval=b.interval,
            min_interval=b.min_interval,
            max_share=b.max_share,
            max_sends_per_second=b.max_sends_per_second,
            max_clients=b.max_clients,
            max_public_clients=b.max_public_clients,
            shared=shared,
        )

        def scores_recorded(record: ScoreRecord) -> None:
            broadcaster.scores_recorded(record.user_fingerprint)

        scorer = ScorerActor(
            new_storage(),
            scorer_inbox,
            settings.scoring,
            interval=p.flush_interval,
            max_share=settings.scoring.max_share,
            rescore_interval=settings.scoring.rescore_interval,
            on_recorded=scores_recorded,
            learned_models=lambda: models.in_use,
        )
        telemetry = TelemetryActor(
            tree,
            lambda: profiles.stats_json()["active"],
            lambda: len(broadcaster.clients),
            batcher.oldest_held,
        )
        sup = settings.supervisor
        timeout = sup.child_shutdown_timeout
        web_server: WebServer | None = None
        metrics_web: WebServer | None = None
        parts: AppParts | None = None
        web_reader: Storage | None = None
        if web:
            # The web layer's reads (funnel, reports) have connections of their own, so that a
            # long one never holds up the profiles actor's; open while the storage actor runs.
            web_reader = new_storage()
            parts = AppParts(
                settings=settings,
                admin_tokens=admin_tokens,
                limits=limits,
                worker=worker,
                checks=checks,
                actor_stats=lambda: {
                    "profiles": profiles.stats_json(),
                    "scorer": scorer.stats_json(),
                    "broadcaster": broadcaster.stats_json(),
                    "janitor": janitor.stats_json(),
                    "models": models.stats_json(),
                },
                inject_crash=lambda name: root.inject_crash(name),
                ingest=ingest,
                journey_step_number=profiles.journey_step_number,
                visitor_insights=visitor_insights,
                live_journeys=profiles.live_journeys,
                realtime_document=metrics.document,
                record_request=metrics.record_request,
                reader=web_reader,
                answer_cache=(
                    RedisCache(redis, rs.key_prefix + "cache:")
                    if redis is not None
                    else LocalCache()
                ),
                broadcaster=broadcaster,
                erase_visitor=janitor.erase,
                dead_letters=janitor.dead_letters,
                sample_metrics=telemetry.sample,
            )
            web_server, metrics_web = _web_servers(settings, parts, worker=worker)
        root = Supervisor(
            "root",
            [
                ChildSpec(
                    "storage",
                    _opening(storage_actor.run, web_reader),
                    Restart.PERMANENT,
                    timeout,
                    activity=storage_actor.activity,
                ),
                ChildSpec(
                    "scorer",
                    scorer.run,
                    Restart.PERMANENT,
                    timeout,
                    stop=scorer.request_stop,
                    inbox=scorer_inbox,
                    activity=scorer.activity,
                ),
                ChildSpec(
                    # its last write may hold many visitors: most of the service's deadline
                    "profiles",
                    profiles.run,
                    Restart.PERMANENT,
                    max(timeout, settings.shutdown.timeout * PROFILES_SHUTDOWN_SHARE),
                    stop=profiles.request_stop,
                    inbox=profiles.inbox,
                    activity=profiles.activity,
                ),
                ChildSpec(
                    "janitor",
                    janitor.run,
                    Restart.PERMANENT,
                    timeout,
                    stop=janitor.request_stop,
                    activity=janitor.activity,
                ),
                ChildSpec(
                    "models",
                    models.run,
                    Restart.PERMANENT,
                    timeout,
                    activity=models.activity,
                ),
                ChildSpec(
                    "metrics",
                    metrics.run,
                    Restart.PERMANENT,
                    timeout,
                    inbox=metrics.inbox,
                    activity=metrics.activity,
                ),
                ChildSpec(
                    "batcher",
                    batcher.run,
                    Restart.PERMANENT,
                    timeout,
                    stop=batcher.request_stop,
                    inbox=batcher_inbox,
                    activity=batcher.activity,
                ),
                ChildSpec(  # no inbox: admission runs in the request
                    "ingest",
                    ingest.run,
                    Restart.PERMANENT,
                    timeout,
                    stop=ingest.request_stop,
                    activity=ingest.activity,
                ),
                ChildSpec(
                    "loop_monitor",
                    loop_monitor.run,
                    Restart.PERMANENT,
                    timeout,
                    activity=loop_monitor.activity,
                ),
                ChildSpec(
                    "telemetry",
                    telemetry.run,
                    Restart.PERMANENT,
                    timeout,
                    activity=telemetry.activity,
                ),
                *(
                    [
                        ChildSpec(
                            "metrics_web",
                            metrics_web.run,
                            Restart.PERMANENT,
                            timeout,
                            stop=metrics_web.request_stop,
                            activity=metrics_web.activity,
                        )
                    ]
                    if metrics_web is not None
                    else []
                ),
                *(
                    [
                        ChildSpec(
                            "web",
                            web_server.run,
                            Restart.PERMANENT,
                            timeout,
                            stop=web_server.request_stop,
                            activity=web_server.activity,
                        )
                    ]
                    if web_server is not None
                    else []
                ),
                ChildSpec(
                    "broadcaster",
                    broadcaster.run,
                    Restart.PERMANENT,
                    timeout,
                    activity=broadcaster.activity,
                ),
            ],
            max_restarts=sup.max_restarts,
            max_seconds=sup.max_seconds,
            backoff_initial=sup.backoff_initial,
            backoff_max=sup.backoff_max,
        )
        return cls(
            settings=settings,
            root=root,
            checks=checks,
            storage=storage,
            storage_actor=storage_actor,
            loop_monitor=loop_monitor,
            ingest=ingest,
            batcher=batcher,
            profiles=profiles,
            scorer=scorer,
            metrics=metrics,
            janitor=janitor,
            broadcaster=broadcaster,
            telemetry=telemetry,
            redis=redis,
            limits_redis=limits_redis,
            web=web_server,
            metrics_web=metrics_web,
            app_parts=parts,
        )

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


def _web_servers(
    settings: Settings, parts: AppParts, *, worker: int | None
) -> tuple[WebServer, WebServer | None]:
    """The web server of the app of ``parts`` and, with ``metrics.port``, the internal listener
    of ``/metrics``. A ``worker`` of `serve --workers N` shares the ports with the others."""
    web, b = settings.web, settings.broadcast
    graceful_timeout = settings.supervisor.child_shutdown_timeout * WEB_GRACE_SHARE
    activity = Activity()
    server = WebServer(
        create_app(parts, activity),
        activity=activity,
        host=web.host,
        port=web.port,
        graceful_timeout=graceful_timeout,
        websocket_ping_interval=b.ping_interval,
        reuse_port=worker is not None,
        limits=ConnectionLimits(
            header_timeout=web.header_timeout,
            body_timeout=web.body_timeout,
            max_connections=web.max_connections,
            max_header_size=web.max_header_size,
        ),
        websocket_max_message=b.max_message_size,
    )
    if not settings.metrics.port:
        return server, None
    metrics = WebServer(
        create_metrics_app(settings, parts.sample_metrics),
        host=settings.metrics.host,
        port=settings.metrics.port,
        graceful_timeout=graceful_timeout,
        reuse_port=worker is not None,
        name="metrics",
    )
    return server, metrics


def _opening(run: Callable[..., Any], also: Storage | None) -> Callable[..., Any]:
    """``run`` (an actor's), with ``also`` open while it runs: opened before it starts (the
    database is needed then anyway) and closed after it ends."""
    if also is None:
        return run
    extra = also

    async def run_with(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await extra.open()
        try:
            await run(task_status=task_status)
        finally:
            await close_storages(extra)

    return run_with


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

            nursery.start_soon(
                watch_signals,
                signals,
                stop,
                deadline,
                f"shutdown took longer than shutdown.timeout = {deadline:g} s",
            )
            try:
                await service.run()
            except SupervisorGaveUp as exc:
                logger.critical("%s; exiting", exc)
                return 1
            finally:
                nursery.cancel_scope.cancel()
    logger.info("stopped cleanly")
    return 0


async def watch_signals(
    signals: AsyncIterator[int], stop: Callable[[str], None], deadline: float, overdue: str
) -> None:
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

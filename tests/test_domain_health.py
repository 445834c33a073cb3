"""Health and readiness rules: pure functions over probe results and a status tree."""

from __future__ import annotations

from revivatech_actors.domain.health import (
    LOOP_LAG_DEGRADED_MS,
    ProbeResult,
    assess_health,
    assess_readiness,
)
from revivatech_actors.supervisor import ActorStatus, Restart, State

UP = ProbeResult(ok=True, latency_ms=0.5)
DOWN = ProbeResult(ok=False, error="connection refused")


def actor(name, state=State.RUNNING, restart=Restart.PERMANENT, restarts=0):
    return ActorStatus(name, "actor", state, restart, restarts, None, None, 0, None, None)


def tree(*children, state=State.RUNNING):
    return ActorStatus(
        "root",
        "supervisor",
        state,
        Restart.PERMANENT,
        0,
        None,
        None,
        0,
        None,
        None,
        tuple(children),
    )


def test_all_up_is_healthy_and_operational():
    report = assess_health(database=UP, redis=None, tree=tree(actor("storage"), actor("web")))
    assert (report.status, report.database, report.redis, report.analytics) == (
        "healthy",
        "connected",
        "disabled",
        "operational",
    )
    assert report.http_status == 200
    assert report.reasons == ()
    assert (report.actors.total, report.actors.running, report.actors.not_running) == (2, 2, ())


def test_database_down_is_unhealthy_with_503():
    report = assess_health(database=DOWN, redis=None, tree=tree(actor("storage")))
    assert (report.status, report.database, report.analytics) == (
        "unhealthy",
        "disconnected",
        "down",
    )
    assert report.http_status == 503
    assert report.reasons == ("database unreachable",)


def test_redis_down_only_degrades():
    report = assess_health(database=UP, redis=DOWN, tree=tree(actor("storage")))
    assert (report.status, report.redis, report.http_status) == ("degraded", "disconnected", 200)
    assert assess_health(database=UP, redis=UP, tree=tree(actor("storage"))).redis == "connected"


def test_restarting_actor_degrades_and_failed_permanent_actor_is_unhealthy():
    restarting = assess_health(
        database=UP, redis=None, tree=tree(actor("storage", State.RESTARTING, restarts=2))
    )
    assert restarting.status == "degraded"
    assert restarting.actors.restarting == 1 and restarting.actors.restarts == 2
    failed = assess_health(database=UP, redis=None, tree=tree(actor("web", State.FAILED)))
    assert failed.status == "unhealthy" and failed.reasons == ("actor web is failed",)


def test_a_finished_temporary_actor_does_not_count_against_health():
    report = assess_health(
        database=UP, redis=None, tree=tree(actor("once", State.STOPPED, Restart.TEMPORARY))
    )
    assert report.status == "healthy" and report.actors.stopped == 1


def test_nested_actors_are_counted_and_judged():
    inner = ActorStatus(
        "pipeline",
        "supervisor",
        State.RUNNING,
        Restart.PERMANENT,
        0,
        None,
        None,
        0,
        None,
        None,
        (actor("batcher", State.FAILED),),
    )
    report = assess_health(database=UP, redis=None, tree=tree(inner))
    assert report.actors.total == 2 and report.status == "unhealthy"


def test_stopping_root_is_unhealthy():
    assert (
        assess_health(database=UP, redis=None, tree=tree(state=State.STOPPING)).status
        == "unhealthy"
    )


def test_event_loop_lag_degrades_past_the_threshold():
    assert (
        assess_health(
            database=UP, redis=None, tree=tree(), loop_lag_ms=LOOP_LAG_DEGRADED_MS - 1
        ).status
        == "healthy"
    )
    lagging = assess_health(
        database=UP, redis=None, tree=tree(), loop_lag_ms=LOOP_LAG_DEGRADED_MS + 1
    )
    assert lagging.status == "degraded" and "event loop lags" in lagging.reasons[0]


def test_readiness_needs_database_and_every_permanent_actor_running():
    assert assess_readiness(database=UP, tree=tree(actor("storage"), actor("web"))).ready
    not_ready = assess_readiness(
        database=DOWN, tree=tree(actor("storage"), actor("web", State.STARTING))
    )
    assert not not_ready.ready
    assert not_ready.reasons == ("database unreachable", "actor web is starting")
    temp_done = tree(actor("storage"), actor("once", State.STOPPED, Restart.TEMPORARY))
    assert assess_readiness(database=UP, tree=temp_done).ready

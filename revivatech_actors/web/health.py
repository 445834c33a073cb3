"""Operator routes: health, liveness, readiness, the actor tree and (opt-in) fault injection."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from quart import Quart, request

from ..domain.health import ProbeResult
from ..domain.timefmt import iso_utc
from ..probes import HealthChecks
from ..supervisor import ActorStatus, UnknownActor
from .auth import AdminAuth, admin_only
from .responses import error_response, json_response

__all__ = ["actor_status_json", "register_health_routes"]


def actor_status_json(node: ActorStatus) -> dict[str, Any]:
    """One node of the supervision tree in the API's camelCase shape, children included."""
    data: dict[str, Any] = {
        "name": node.name,
        "kind": node.kind,
        "state": node.state.value,
        "restart": node.restart.value,
        "restarts": node.restarts,
        "lastError": None,
        "inbox": None,
        "handled": node.handled,
        "lastActivity": iso_utc(node.last_activity),
        "startedAt": iso_utc(node.started_at),
    }
    if node.last_error is not None:
        error = node.last_error
        data["lastError"] = {
            "type": error.type,
            "message": error.message,
            "time": iso_utc(error.time),
        }
    if node.inbox is not None:
        data["inbox"] = {"depth": node.inbox.depth, "capacity": node.inbox.capacity}
    if node.kind == "supervisor":
        data["children"] = [actor_status_json(child) for child in node.children]
    return data


def _probe_json(probe: ProbeResult | None, *, detailed: bool) -> dict[str, Any] | None:
    """A probe result; the driver's error text only when ``detailed`` (an admin asked): it can
    name hosts and databases, and the health endpoint is open to anyone."""
    if probe is None:
        return None
    error = (
        probe.error
        if detailed or probe.error is None
        else "unreachable (send an admin token for details)"
    )
    return {
        "ok": probe.ok,
        "latencyMs": probe.latency_ms,
        "error": error,
        "checkedAt": iso_utc(probe.checked_at),
    }


def register_health_routes(
    app: Quart,
    checks: HealthChecks,
    auth: AdminAuth,
    *,
    worker: int | None,
    actor_stats: Callable[[], dict[str, Any]],
    inject_crash: Callable[[str], None] | None,
) -> None:
    """The operator routes. ``worker`` is this process's index under `serve --workers N`;
    ``actor_stats()`` the actors' own figures; ``inject_crash`` is None unless
    ``faults.enabled``."""
    tree = checks.tree

    @app.get("/healthz")
    async def healthz():
        # Liveness: answering at all proves the event loop turns. No dependency is consulted,
        # so a database outage never gets the process killed by its manager.
        return json_response({"status": "alive"})

    @app.get("/readyz")
    async def readyz():
        readiness = await checks.readiness()
        payload = {"ready": readiness.ready, "reasons": list(readiness.reasons)}
        return json_response(payload, 200 if readiness.ready else 503)

    @app.get("/api/analytics/health")
    @app.get("/health")  # where the original service answered it (its API client reads `status`)
    async def health():
        snapshot = await checks.health()
        detailed = auth.judge_http(request.headers, request.cookies).is_admin
        report = snapshot.report
        summary = report.actors
        payload = {
            "status": report.status,
            "database": report.database,
            "redis": report.redis,
            "analytics": report.analytics,
            "reasons": list(report.reasons),
            "timestamp": iso_utc(snapshot.checked_at),
            "version": snapshot.version,
            "uptimeSeconds": round(snapshot.uptime_seconds, 3),
            "storageEngine": snapshot.storage_engine,
            "eventLoopLagMs": snapshot.loop_lag_ms,
            "pid": os.getpid(),
            "worker": worker,
            "checks": {
                "database": _probe_json(snapshot.database, detailed=detailed),
                "redis": _probe_json(snapshot.redis, detailed=detailed),
            },
            "actors": {
                "total": summary.total,
                "running": summary.running,
                "restarting": summary.restarting,
                "failed": summary.failed,
                "stopped": summary.stopped,
                "restarts": summary.restarts,
                "notRunning": list(summary.not_running),
            },
        }
        return json_response(payload, report.http_status)

    @app.get("/api/analytics/actors")
    @admin_only(auth)
    async def actors():
        payload = {
            "success": True,
            "data": actor_status_json(tree()),
            "stats": actor_stats(),
            "pid": os.getpid(),
            "worker": worker,
        }
        return json_response(payload)

    if inject_crash is not None:
        crash = inject_crash

        @app.post("/api/analytics/actors/<name>/crash")
        @admin_only(auth)
        async def crash_actor(name: str):
            try:
                crash(name)
            except UnknownActor:
                return error_response(404, "unknown_actor", f"no actor named {name!r}")
            except RuntimeError as exc:
                return error_response(409, "actor_not_running", str(exc))
            return json_response(
                {
                    "success": True,
                    "actor": name,
                    "message": "crash injected; watch /api/analytics/actors",
                },
                202,
            )

"""The service in-process: the real actor tree, a real HTTP socket, real SQLite / PostgreSQL /
Redis.

These run the service inside the test's own trio loop (fast, and its state can be inspected);
tests/e2e/ runs the real ``revivatech-actors serve`` process.
"""

from __future__ import annotations

import httpx
import psycopg
import trio

from revivatech_actors.config import load_settings
from revivatech_actors.service import Service

from .conftest import free_port

TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_service(storage_url: str, **overrides) -> Service:
    values = {
        "storage.url": storage_url,
        "web.port": free_port(),
        "auth.admin_tokens": TOKEN,
        "storage.health_interval": 0.2,
        "supervisor.backoff_initial": 0.05,
        **overrides,
    }
    return Service.build(load_settings(environ={}, overrides=values), (TOKEN,))


class Running:
    """Runs a service for the length of an ``async with`` and gives an HTTP client for it."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __aenter__(self) -> httpx.AsyncClient:
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        await nursery.start(self.service.run)
        web = self.service.settings.web
        self._client = httpx.AsyncClient(base_url=f"http://{web.host}:{web.port}", timeout=5)
        return self._client

    async def __aexit__(self, *exc_info):
        await self._client.aclose()
        self.service.request_stop()
        return await self._nursery_manager.__aexit__(*exc_info)


async def wait_until(predicate, *, timeout: float = 5.0, interval: float = 0.05):
    with trio.fail_after(timeout):
        while True:
            result = await predicate()
            if result:
                return result
            await trio.sleep(interval)


def find(node: dict, name: str) -> dict | None:
    if node["name"] == name:
        return node
    for child in node.get("children", []):
        found = find(child, name)
        if found is not None:
            return found
    return None


async def test_health_liveness_and_readiness_on_each_engine(storage_url):
    service = make_service(storage_url)
    async with Running(service) as client:
        health = await client.get("/api/analytics/health")
        assert health.status_code == 200
        body = health.json()
        assert (body["status"], body["database"], body["redis"], body["analytics"]) == (
            "healthy",
            "connected",
            "disabled",
            "operational",
        )
        assert body["storageEngine"] == service.storage.engine
        assert body["actors"]["total"] == 12 and body["actors"]["running"] == 12
        assert body["actors"]["notRunning"] == [] and body["reasons"] == []
        assert body["checks"]["database"]["ok"] is True
        assert isinstance(body["checks"]["database"]["latencyMs"], float)
        assert body["uptimeSeconds"] >= 0 and body["timestamp"].endswith("Z")

        root = await client.get("/health")  # where the original server answered it
        assert root.status_code == 200 and root.json()["status"] == "healthy"

        assert (await client.get("/healthz")).json() == {"status": "alive"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}


async def test_migrations_are_applied_at_start(sqlite_url):
    service = make_service(sqlite_url)
    async with Running(service):
        tables = await service.storage.table_names()
    assert {
        "analytics_events",
        "rejected_events",
        "user_behavior_profiles",
        "schema_migrations",
    } <= tables


async def test_actor_tree_needs_the_admin_token(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        missing = await client.get("/api/analytics/actors")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert missing.json()["error"] == "unauthorized"
        wrong = await client.get(
            "/api/analytics/actors", headers={"Authorization": "Bearer wrong-token-wrong-token"}
        )
        assert wrong.status_code == 401

        answer = await client.get("/api/analytics/actors", headers=AUTH)
        assert answer.status_code == 200
        root = answer.json()["data"]
        assert (root["name"], root["kind"], root["state"]) == ("root", "supervisor", "running")
        assert [child["name"] for child in root["children"]] == [
            "storage",
            "scorer",
            "profiles",
            "janitor",
            "models",
            "metrics",
            "batcher",
            "ingest",
            "loop_monitor",
            "telemetry",
            "web",
            "broadcaster",
        ]
        for child in root["children"]:
            assert (
                child["state"] == "running"
                and child["restarts"] == 0
                and child["lastError"] is None
            )
            assert set(child) >= {
                "name",
                "state",
                "restarts",
                "lastError",
                "inbox",
                "handled",
                "lastActivity",
            }
        storage = find(root, "storage")
        assert storage["handled"] >= 1 and storage["lastActivity"].endswith("Z")


async def test_injected_crash_shows_up_restarted_with_its_error(sqlite_url):
    async with Running(make_service(sqlite_url, **{"faults.enabled": True})) as client:
        crashed = await client.post("/api/analytics/actors/storage/crash", headers=AUTH)
        assert crashed.status_code == 202 and crashed.json()["actor"] == "storage"

        async def restarted():
            tree = (await client.get("/api/analytics/actors", headers=AUTH)).json()["data"]
            node = find(tree, "storage")
            return node if node["restarts"] == 1 and node["state"] == "running" else None

        node = await wait_until(restarted)
        assert node["lastError"]["type"] == "InjectedCrash"
        assert "storage" in node["lastError"]["message"] and node["lastError"]["time"].endswith("Z")
        # the others never noticed
        tree = (await client.get("/api/analytics/actors", headers=AUTH)).json()["data"]
        assert find(tree, "web")["restarts"] == 0 and find(tree, "loop_monitor")["restarts"] == 0
        assert (await client.get("/api/analytics/health")).json()["actors"]["restarts"] == 1

        unknown = await client.post("/api/analytics/actors/nobody/crash", headers=AUTH)
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_actor"
        assert (await client.post("/api/analytics/actors/storage/crash")).status_code == 401


async def test_fault_injection_is_off_by_default(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        answer = await client.post("/api/analytics/actors/storage/crash", headers=AUTH)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


async def test_unknown_route_and_wrong_method_answer_json_errors(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        missing = await client.get("/api/analytics/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["success"] is False and missing.json()["error"] == "not_found"
        wrong = await client.delete("/api/analytics/health")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
        assert "GET" in wrong.headers["Allow"]


async def test_redis_connected_and_unreachable(sqlite_url, redis_url):
    async with Running(make_service(sqlite_url, **{"redis.url": redis_url})) as client:
        body = (await client.get("/api/analytics/health")).json()
        assert (body["status"], body["redis"]) == ("healthy", "connected")
        assert body["checks"]["redis"]["ok"] is True

    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with Running(
        make_service(sqlite_url, **{"redis.url": dead, "redis.ping_timeout": 0.3})
    ) as client:
        answer = await client.get("/api/analytics/health")
        body = answer.json()
        assert answer.status_code == 200  # degraded still serves
        assert (body["status"], body["redis"], body["analytics"]) == (
            "degraded",
            "disconnected",
            "degraded",
        )
        assert body["reasons"] == ["redis unreachable"]
        # the driver's words (they may name hosts) only for admins
        assert body["checks"]["redis"]["error"] == "unreachable (send an admin token for details)"
        detailed = (await client.get("/api/analytics/health", headers=AUTH)).json()
        assert (
            "Connection" in detailed["checks"]["redis"]["error"]
            and str(dead.rsplit(":", 1)[1].split("/")[0]) in detailed["checks"]["redis"]["error"]
        )
        assert (await client.get("/readyz")).status_code == 200  # Redis is optional for readiness


async def test_database_lost_while_running_makes_health_unhealthy_and_not_ready(postgres_url):
    service = make_service(postgres_url, **{"storage.ping_timeout": 0.5})
    async with Running(service) as client:
        assert (await client.get("/readyz")).status_code == 200
        database = postgres_url.rsplit("/", 1)[1]
        admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            try:
                # health reads a probe at most storage.health_interval (0.2 s here) old
                async def unhealthy():
                    answer = await client.get("/api/analytics/health")
                    return answer if answer.status_code == 503 else None

                health = await wait_until(unhealthy, timeout=3)
                body = health.json()
                assert (body["status"], body["database"], body["analytics"]) == (
                    "unhealthy",
                    "disconnected",
                    "down",
                )
                assert body["reasons"][0].startswith("database unreachable")
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["ready"] is False
                assert (await client.get("/healthz")).status_code == 200  # alive all the same
            finally:
                admin.execute(f'CREATE DATABASE "{database}"')  # for the fixture's clean-up


def test_the_web_package_never_imports_the_service():
    # The routes get narrow parts (web.app.AppParts), never the service: service.py imports
    # the web package, so any import back would be a cycle, TYPE_CHECKING ones too.
    import ast
    import pathlib

    import revivatech_actors.web

    package = "revivatech_actors.web"
    offenders = []
    for path in pathlib.Path(revivatech_actors.web.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                if not node.level:
                    module = node.module or ""
                names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            service = "revivatech_actors.service"
            if any(name == service or name.startswith(service + ".") for name in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []

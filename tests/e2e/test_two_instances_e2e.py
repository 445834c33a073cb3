"""Two ``serve`` processes on one PostgreSQL database and one Redis: an event posted to A
reaches a WebSocket client on B, both report the same realtime figures, a visitor's insights
recorded on A reach B's follower; and an instance whose Redis is away keeps ingesting and says
so in its health."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from .conftest import ADMIN_TOKEN, next_of, quiet_feed_delays, service_env, ws_url

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def instance(serve, postgres_url: str, redis_url: str, prefix: str):
    return serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
            REVIVATECH_REDIS_KEY_PREFIX=prefix,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_BROADCAST_MIN_INTERVAL="0.1",
            REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2",
        )
    )


async def test_the_way_across_instances_adds_no_fixed_delay(
    serve, postgres_url, redis_url, redis_prefix
):
    """Default broadcast settings: events posted to A reach B's quiet clients at once (the
    change is announced on pub/sub as the events are counted)."""
    settings = {
        "REVIVATECH_STORAGE_URL": postgres_url,
        "REVIVATECH_REDIS_URL": redis_url,
        "REVIVATECH_REDIS_KEY_PREFIX": redis_prefix,
        "REVIVATECH_AUTH_ADMIN_TOKENS": ADMIN_TOKEN,
    }
    a, b = serve(env=service_env(**settings)), serve(env=service_env(**settings))
    delays = await quiet_feed_delays(a, b)
    assert len(delays) == 15 and max(delays) < 0.25, delays


async def test_an_event_posted_to_one_instance_reaches_the_other(
    serve, postgres_url, redis_url, redis_prefix
):
    a = instance(serve, postgres_url, redis_url, redis_prefix)
    b = instance(serve, postgres_url, redis_url, redis_prefix)
    fp = f"fp-{uuid.uuid4().hex[:10]}"
    async with open_websocket_url(ws_url(b)) as ws, httpx.AsyncClient(timeout=5) as http:
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
        first = await next_of(ws, "realtime_metrics")
        assert first["data"]["source"] == "redis"
        before = first["data"]["overview"]["total_events"]

        event = {
            "user_fingerprint": fp,
            "session_id": "s1",
            "event_type": "page_view",
            "page_url": "https://x.example/a",
        }
        assert (
            await http.post(a.base_url + "/api/analytics/events", json=event)
        ).status_code == 200
        started = trio.current_time()
        while (await next_of(ws, "realtime_metrics", timeout=2))["data"]["overview"][
            "total_events"
        ] != before + 1:
            pass
        assert trio.current_time() - started < 1.0

        views = []
        for server in (a, b):
            data = (
                await http.get(server.base_url + "/api/analytics/realtime", headers=AUTH)
            ).json()["data"]
            assert data["source"] == "redis"
            views.append((data["overview"], data["topPages"]))
        assert views[0] == views[1]
        assert views[0][0]["total_events"] == before + 1

        # insights: B's client follows the visitor; A records its scores after a booking
        await ws.send_message(json.dumps({"type": "subscribe_user_insights", "fingerprint": fp}))
        await next_of(ws, "user_insights")
        booking = {**event, "event_type": "booking_completed", "value": 90}
        assert (
            await http.post(a.base_url + "/api/analytics/events", json=booking)
        ).status_code == 200
        with trio.fail_after(10):
            while (await next_of(ws, "user_insights"))["data"]["profile"]["totalBookings"] != 1:
                pass


async def test_without_its_redis_an_instance_keeps_ingesting_and_says_degraded(
    serve, postgres_url, closed_port_url
):
    redis_away = (
        closed_port_url.replace("postgresql://postgres@", "redis://").rsplit("/", 1)[0] + "/0"
    )
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_away,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_REDIS_PING_TIMEOUT="0.2",
        )
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        event = {"user_fingerprint": "u", "session_id": "s", "event_type": "page_view"}
        assert (await http.post("/api/analytics/events", json=event)).status_code == 200
        health = (await http.get("/api/analytics/health", headers=AUTH)).json()
        assert health["status"] == "degraded", health
        data = (await http.get("/api/analytics/realtime", headers=AUTH)).json()["data"]
        assert data["source"] == "local" and data["overview"]["total_events"] == 1

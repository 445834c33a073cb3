"""``GET /api/analytics/realtime`` through the real ``serve`` process, on SQLite and PostgreSQL:
counts of what was posted, measured performance figures, admin only, and the same counts after
a restart (the window is rebuilt from storage)."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SITE = "https://revivatech.example"


def start(serve, storage_url: str):
    return serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=storage_url,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_REALTIME_CONVERSION_TYPES="booking_completed,quote_accepted",
        )
    )


def number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_realtime_counts_what_was_posted_and_survives_a_restart(serve, storage_url):
    tag = uuid.uuid4().hex[:8]
    events = [
        {
            "user_fingerprint": f"a-{tag}",
            "session_id": f"a1-{tag}",
            "event_type": "page_view",
            "page_url": f"{SITE}/home",
        },
        {
            "user_fingerprint": f"a-{tag}",
            "session_id": f"a1-{tag}",
            "event_type": "page_view",
            "page_url": f"{SITE}/prices",
        },
        {
            "user_fingerprint": f"a-{tag}",
            "session_id": f"a2-{tag}",
            "event_type": "booking_completed",
            "value": 80,
        },
        {
            "user_fingerprint": f"b-{tag}",
            "session_id": f"b1-{tag}",
            "event_type": "page_view",
            "page_url": f"{SITE}/home",
        },
        {"user_fingerprint": f"c-{tag}", "session_id": f"c1-{tag}", "event_type": "quote_accepted"},
    ]
    server = start(serve, storage_url)
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert client.get("/api/analytics/realtime").status_code == 401
        posted = client.post("/api/analytics/events/batch", json={"events": events[:4]})
        assert posted.status_code == 200, posted.text
        assert client.post("/api/analytics/events", json=events[4]).status_code == 200
        assert client.post("/api/analytics/events", json={"event_type": "x"}).status_code == 400

        answer = client.get("/api/analytics/realtime", headers=AUTH)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["overview"] == {
            "active_users": 3,
            "active_sessions": 4,
            "total_events": 5,
            "page_views": 3,
            "conversions": 2,
        }
        assert data["topPages"] == [
            {"page_url": f"{SITE}/home", "views": 2},
            {"page_url": f"{SITE}/prices", "views": 1},
        ]
        performance = data["performance"]
        assert all(
            number(performance[key])
            for key in ("avgResponseTime", "errorRate", "uptime", "requests")
        )
        assert performance["requests"] >= 4  # the 401, two posts and the 400 before this request
        assert 0 < performance["avgResponseTime"] < 1000
        assert (
            performance["errorRate"] == 0
        )  # a 400 or 401 is the client's error, not the service's
        assert 0 < performance["uptime"] <= 100
        assert data["timestamp"].endswith("Z") and data["windowSeconds"] == 300
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output()

    server = start(serve, storage_url)
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        data = client.get("/api/analytics/realtime", headers=AUTH).json()["data"]
        assert data["overview"]["total_events"] == 5 and data["overview"]["active_users"] == 3
        assert data["topPages"][0] == {"page_url": f"{SITE}/home", "views": 2}

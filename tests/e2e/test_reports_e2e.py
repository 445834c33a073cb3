"""The admin pages' report routes and the funnel's timeframe through the real ``serve`` process
(SQLite and PostgreSQL): events posted over HTTP, then each route asked as the admin pages ask."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_admin_reports_and_funnel_timeframe(serve, storage_url):
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=storage_url,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_PROFILES_FLUSH_INTERVAL="0.1",
        )
    )
    tag = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC) - timedelta(minutes=45)
    plan = [
        ("a", "page_view", 0, None),
        ("a", "booking_started", 60, None),
        ("a", "booking_completed", 60 + 1800, 99.5),
        ("b", "page_view", 120, None),
    ]
    events = [
        {
            "user_fingerprint": f"{fp}-{tag}",
            "session_id": f"{fp}-{tag}",
            "event_type": kind,
            "timestamp": rfc3339(t0 + timedelta(seconds=at)),
            **({"value": value} if value else {}),
        }
        for fp, kind, at, value in plan
    ]
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        stored = client.post("/api/analytics/events/batch", json={"events": events})
        assert stored.status_code == 200 and stored.json()["accepted"] == 4, stored.text

        for path in (
            "/api/analytics/revenue",
            "/api/analytics/performance",
            "/api/analytics/customers",
            "/api/analytics/dashboard",
        ):
            assert client.get(path).status_code == 401

        revenue = client.get("/api/analytics/revenue", headers=AUTH).json()["data"]
        assert revenue["currentMonth"]["total"] + revenue["previousMonth"]["total"] == 99.5
        performance = client.get("/api/analytics/performance", headers=AUTH).json()["data"]
        assert performance["performance"]["averageTimeHours"] == 0.5
        assert (
            performance["bookings"]["completed"] == 1
            and performance["bookings"]["inProgress"] is None
        )

        deadline = time.monotonic() + 5  # profiles are written every 0.1 s
        while True:
            customers = client.get(
                "/api/analytics/customers?timeframe=1%20hour", headers=AUTH
            ).json()["data"]
            if customers["customers"]["new"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert customers["customers"] == {"total": 2, "new": 2, "returning": 0}

        dashboard = client.get("/api/analytics/dashboard", headers=AUTH)
        assert dashboard.status_code == 200
        data = dashboard.json()["data"]
        assert (
            data["funnels"][0]["name"] == "booking" and data["funnels"][0]["steps"][0]["count"] == 2
        )
        assert {u["user_fingerprint"] for u in data["topUsers"]} == {f"a-{tag}", f"b-{tag}"}
        listed = client.get("/api/analytics/insights?page=1&limit=10", headers=AUTH).json()["data"]
        assert (
            listed["totalCount"] == 2 and listed["insights"][0]["fingerprint"] == f"a-{tag}"
        )  # completed last

        funnel = client.get(
            "/api/analytics/funnel",
            params={"funnel_name": "booking", "timeframe": "1 hour"},
            headers=AUTH,
        )
        assert funnel.status_code == 200, funnel.text
        assert [s["count"] for s in funnel.json()["data"]["steps"]] == [2, 0, 0, 0]
        short = client.get(
            "/api/analytics/funnel",
            params={"steps": "page_view,booking_started", "timeframe": "1 hour"},
            headers=AUTH,
        ).json()["data"]
        assert [s["count"] for s in short["steps"]] == [2, 1]
        bad = client.get(
            "/api/analytics/funnel",
            params={"timeframe": "7 days'; DROP TABLE analytics_events; --"},
            headers=AUTH,
        )
        assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "timeframe"

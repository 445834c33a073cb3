"""``GET /api/analytics/funnel`` through the real ``serve`` process on SQLite and PostgreSQL:
hand-computed counts, per-step windows, 400 naming a bad parameter (and nothing of it reaching
SQL), admin only, and the cached answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ..helpers import query as db_query
from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FUNNEL = "/api/analytics/funnel"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_funnel_counts_visitors_through_ordered_steps(serve, storage_url):
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=storage_url, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN
        )
    )
    tag = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    history = {  # seconds after t0
        "v1": [(0, "page_view"), (60, "booking_started"), (120, "booking_completed")],
        "v2": [(0, "page_view"), (30, "booking_started"), (7200, "booking_completed")],
        "v3": [(0, "booking_started"), (10, "page_view")],
        "v4": [(5, "page_view")],
    }
    events = [
        {
            "user_fingerprint": f"{fp}-{tag}",
            "session_id": f"{fp}-{tag}",
            "event_type": kind,
            "timestamp": rfc3339(t0 + timedelta(seconds=at)),
        }
        for fp, steps in history.items()
        for at, kind in steps
    ]
    steps = "page_view,booking_started,booking_completed"
    span = {"from": rfc3339(t0 - timedelta(minutes=1)), "to": rfc3339(t0 + timedelta(minutes=1))}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert (
            client.post("/api/analytics/events/batch", json={"events": events}).status_code == 200
        )
        assert client.get(FUNNEL, params={"steps": steps}).status_code == 401

        answer = client.get(FUNNEL, params={"steps": steps, **span, "window": "1d"}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert [(s["step"], s["count"]) for s in data["steps"]] == [
            ("page_view", 4),
            ("booking_started", 2),
            ("booking_completed", 2),
        ]
        assert data["steps"][1] == {
            "step": "booking_started",
            "count": 2,
            "conversionFromPrevious": 0.5,
            "conversionFromFirst": 0.5,
            "medianSecondsFromPrevious": 45.0,
        }
        assert data["steps"][2]["medianSecondsFromPrevious"] == (60 + 7170) / 2
        assert data["cached"] is False

        again = client.get(
            FUNNEL, params={"steps": steps, **span, "window": "1d"}, headers=AUTH
        ).json()["data"]
        assert again["cached"] is True and again["steps"] == data["steps"]

        per_step = client.get(
            FUNNEL, params={"steps": steps, **span, "windows": "1h,1h"}, headers=AUTH
        ).json()["data"]
        assert [s["count"] for s in per_step["steps"]] == [
            4,
            2,
            1,
        ]  # v2 completes 2 h after starting

        for params, field in [
            ({"window": "forever"}, "window"),
            ({"windows": "1h"}, "windows"),
            ({"timeframe": "7 days'; DROP TABLE analytics_events; --"}, "timeframe"),
            ({"from": "2026-13-01"}, "from"),
            ({"steps": "a,,b"}, "steps"),
        ]:
            bad = client.get(FUNNEL, params={"steps": steps, **params}, headers=AUTH)
            assert bad.status_code == 400, bad.text
            body = bad.json()
            assert body["success"] is False and body["error"] == "invalid_parameter"
            assert body["details"][0]["field"] == field and field in body["message"]
            assert "syntax" not in body["message"].lower()  # never a database's error text
    assert db_query(storage_url, "SELECT count(*) FROM analytics_events")[0][0] == len(events)

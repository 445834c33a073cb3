"""The admin report routes and the funnel's timeframe / funnel_name through Quart's test client,
on the real actors of an in-process service (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.messages import Event
from revivatech_actors.supervisor import Activity
from revivatech_actors.web.app import create_app

from .helpers import make_event
from .test_service import AUTH, make_service


@pytest.fixture
async def client(storage_url):
    service = make_service(storage_url, **{"profiles.flush_interval": 0.05})
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        now = datetime.now(UTC)
        events: list[Event] = []
        for n, (fp, kind, minutes, value) in enumerate(
            [
                ("v1", "page_view", -50, None),
                ("v1", "booking_started", -40, None),
                ("v1", "booking_completed", -10, 120.0),
                ("v2", "page_view", -30, None),
                ("v2", "booking_started", -20, None),
            ]
        ):
            events.append(
                make_event(
                    n,
                    user_fingerprint=fp,
                    session_id=f"{fp}-s",
                    event_type=kind,
                    value=value,
                    timestamp=now + timedelta(minutes=minutes),
                    received_at=now,
                )
            )
        await service.storage.write_batch(events)
        await service.profiles.storage.apply_profile_deltas(
            [
                delta_from_events(fp, [e for e in events if e.user_fingerprint == fp])
                for fp in ("v1", "v2")
            ]
        )
        app = create_app(service.app_parts, Activity())
        async with app.test_app() as test_app:
            yield test_app.test_client()
        service.request_stop()


async def get(client, path, **headers):
    answer = await client.get(path, headers={**AUTH, **headers})
    return answer.status_code, await answer.get_json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/analytics/dashboard",
        "/api/analytics/revenue",
        "/api/analytics/performance",
        "/api/analytics/customers",
        "/api/analytics/insights",
    ],
)
async def test_admin_only(client, path):
    answer = await client.get(path)
    assert answer.status_code == 401 and (await answer.get_json())["error"] == "unauthorized"


async def test_the_four_report_routes_answer_what_the_pages_read(client):
    status, revenue = await get(client, "/api/analytics/revenue")
    assert status == 200 and revenue["success"] is True
    month = revenue["data"]["currentMonth"]
    # the booking may fall in last month on the first day of a month, a few minutes past midnight
    assert month["total"] + revenue["data"]["previousMonth"]["total"] == 120.0
    assert "growth" in month and revenue["data"]["summary"]["totalRevenue"] >= 0

    status, performance = await get(client, "/api/analytics/performance")
    assert status == 200
    data = performance["data"]
    assert (
        data["performance"]["averageTimeHours"] == 0.5 and data["performance"]["efficiency"] == 50.0
    )
    assert data["bookings"] == {
        "started": 2,
        "completed": 1,
        "open": 1,
        "inProgress": None,
        "pending": None,
    }

    status, customers = await get(client, "/api/analytics/customers?timeframe=1%20hour")
    assert status == 200 and customers["data"]["customers"] == {
        "total": 2,
        "new": 2,
        "returning": 0,
    }

    status, dashboard = await get(client, "/api/analytics/dashboard?timeframe=2%20hours")
    assert status == 200
    data = dashboard["data"]
    assert {"overview", "funnels", "topUsers", "lastUpdated", "timeframe"} <= data.keys()
    assert "active_users" in data["overview"]
    (booking,) = data["funnels"]
    assert booking["name"] == "booking" and booking["timeframe"] == "2 hours"
    assert [s["count"] for s in booking["steps"]] == [2, 0, 0, 0]  # nobody viewed a service
    assert sorted(u["user_fingerprint"] for u in data["topUsers"]) == ["v1", "v2"]


async def test_the_visitor_list_pages_newest_first(client):
    status, body = await get(client, "/api/analytics/insights?page=1&limit=1")
    assert status == 200
    data = body["data"]
    assert (data["totalCount"], data["totalPages"], data["currentPage"]) == (2, 2, 1)
    assert [v["fingerprint"] for v in data["insights"]] == ["v1"]  # last seen 10 minutes ago, v2 20
    _, second = await get(client, "/api/analytics/insights?page=2&limit=1")
    assert [v["fingerprint"] for v in second["data"]["insights"]] == ["v2"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/analytics/insights?limit=0", "limit"),
        ("/api/analytics/insights?page=x", "page"),
        ("/api/analytics/insights?limit=500", "limit"),
        ("/api/analytics/insights?sort=name", "sort"),
        ("/api/analytics/dashboard?timeframe=7%20days%27%3B%20DROP%20TABLE%20x", "timeframe"),
        ("/api/analytics/performance?timeframe=1%20year", "timeframe"),
        ("/api/analytics/customers?from=x", "from"),
        ("/api/analytics/revenue?month=3", "month"),
        ("/api/analytics/funnel?timeframe=soon", "timeframe"),
        ("/api/analytics/funnel?timeframe=1%20day&to=2026-01-01T00:00:00Z", "timeframe"),
        ("/api/analytics/funnel?funnel_name=checkout", "funnel_name"),
    ],
)
async def test_bad_parameters_are_400_naming_them(client, path, field):
    status, body = await get(client, path)
    assert status == 400 and body["error"] == "invalid_parameter"
    assert body["details"][0]["field"] == field


async def test_funnel_by_name_and_timeframe(client):
    status, body = await get(client, "/api/analytics/funnel?funnel_name=booking&timeframe=1%20hour")
    assert status == 200
    data = body["data"]
    assert (data["name"], data["timeframe"]) == ("booking", "1 hour")
    assert [s["step"] for s in data["steps"]] == [
        "page_view",
        "service_viewed",
        "booking_started",
        "booking_completed",
    ]
    assert data["steps"][0]["count"] == 2
    _, later = await get(client, "/api/analytics/funnel?funnel_name=booking&timeframe=1%20minute")
    assert later["data"]["steps"][0]["count"] == 0


async def test_insights_of_a_visitor_stays_404_when_unknown(client):
    status, body = await get(client, "/api/analytics/insights/nobody-at-all")
    assert status == 404 and body["error"] == "unknown_visitor"

"""The original RevivaTech frontend's clients, replayed request for request against a real
``serve`` configured as that frontend needs it (``cors.allowed_origins``, ``auth.jwt_secret``,
``broadcast.public_realtime``), then the database read afterwards.

Each request is built as its client file builds it (public repository
``ronaldopdias/RevivaTech-Complete-Platform``, frontend/src): the tracker's batches
(``lib/analytics/behavioral-tracking.ts``), the journey calls, visitor lookup and tokenless live
feed of every visitor's tab (``lib/analytics/customer-intelligence.ts``), the API client
(``services/analyticsApiService.ts``), the dashboard's live feed
(``services/analyticsWebSocketService.ts``) and the admin pages with the main app's JWT
(``app/admin/analytics``, ``app/admin/reports``, ``app/admin/ml-analytics`` through
``lib/auth/useAuthenticatedApi.ts``).
"""

from __future__ import annotations

import json
import random
import signal
import string
import time

import httpx
import jwt
import pytest
import trio
from trio_websocket import open_websocket_url

from ..helpers import query
from .conftest import ADMIN_TOKEN, next_of, service_env, ws_url

pytestmark = pytest.mark.e2e

FRONTEND = "http://localhost:3010"
JWT_SECRET = "the-main-apps-jwt-secret-0123456789abcdef"
API = "/api/analytics"
DEVICE = "device-7f3a9c2b"
SESSION = "session_1764686400000_x7k2"
PAGE = "http://localhost:3010/services/screen-repair?utm_source=google&utm_medium=cpc&utm_campaign=winter"


def main_app_jwt(role: str = "ADMIN") -> str:
    """An access token as the main app signs it (HS256 with its JWT_SECRET, a role claim)."""
    claims = {
        "userId": "admin-1",
        "email": "admin@revivatech.co.uk",
        "role": role,
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def tracker_event(
    event_type: str, event_name: str, event_data: dict, started: int, last: int, now: int
) -> dict:
    """BehavioralTrackingService.trackEvent: the event it queues (JSON.stringify drops
    undefined)."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=13))
    return {
        "id": f"{now}_{suffix}",
        "user_fingerprint": DEVICE,
        "session_id": SESSION,
        "event_type": event_type,
        "event_name": event_name,
        "event_data": event_data,
        "page_url": PAGE,
        "referrer_url": "https://www.google.com/",
        "timestamp": now,
        "device_type": "mobile",
        "browser": "Chrome",
        "os": "Linux armv8l",
        "screen_resolution": "412x915",
        "viewport_size": "412x839",
        "time_on_page": now - started,
        "time_since_last_event": now - last,
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "winter",
    }


def tracker_batch() -> list[dict]:
    """Ten events, the batch size at which the tracker flushes."""
    started = last = int(time.time() * 1000) - 60_000
    events = []
    for n in range(10):
        now = started + 1_000 * (n + 1)
        if n == 0:
            events.append(
                tracker_event(
                    "page_view",
                    "Page View",
                    {
                        "page_title": "Screen repair",
                        "page_load_time": 812,
                        "referrer": "https://www.google.com/",
                    },
                    started,
                    last,
                    now,
                )
            )
        elif n == 9:
            events.append(
                tracker_event(
                    "booking_started", "Booking Started", {"service": "screen"}, started, last, now
                )
            )
        else:
            events.append(
                tracker_event(
                    "click",
                    "Element Click",
                    {"element_selector": f"#cta-{n}", "is_link": False},
                    started,
                    last,
                    now,
                )
            )
        last = now
    return events


async def test_the_original_clients_work_unchanged(serve, storage_url):
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=storage_url,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_AUTH_JWT_SECRET=JWT_SECRET,
            REVIVATECH_CORS_ALLOWED_ORIGINS=FRONTEND,
            REVIVATECH_BROADCAST_PUBLIC_REALTIME="true",
            REVIVATECH_BROADCAST_MIN_INTERVAL="0.1",
            REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2",
        )
    )
    admin_jwt = main_app_jwt()
    browser = {
        "Origin": FRONTEND,
        "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile",
    }
    events = tracker_batch()

    # A visitor's tab (customer-intelligence.ts): no token, subscribe_realtime on open.
    async with (
        open_websocket_url(ws_url(server, None), extra_headers=list(browser.items())) as tab,
        open_websocket_url(ws_url(server, None), extra_headers=list(browser.items())) as dashboard,
    ):
        await tab.send_message(json.dumps({"type": "subscribe_realtime"}))
        first = await next_of(tab, "realtime_metrics")
        assert first["data"]["overview"]["total_events"] == 0

        # The dashboard service (analyticsWebSocketService.ts): subscribe after
        # connection_established.
        established = await next_of(dashboard, "connection_established")
        assert established["clientId"]
        await dashboard.send_message(json.dumps({"type": "subscribe_realtime"}))
        await next_of(dashboard, "realtime_metrics")
        await dashboard.send_message(json.dumps({"type": "ping"}))
        await next_of(dashboard, "pong")
        await dashboard.send_message(
            json.dumps({"type": "subscribe_user_insights", "fingerprint": DEVICE})
        )
        refused = await next_of(dashboard, "error")
        assert (
            refused["error"] == "admin_only" and refused["message"]
        )  # a visitor's insights are not public

        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            # The tracker's flush (behavioral-tracking.ts): fetch(apiEndpoint + '/batch'),
            # keepalive.
            flushed = await client.post(
                f"{API}/events/batch",
                content=json.dumps({"events": events}),
                headers={**browser, "Content-Type": "application/json"},
            )
            assert flushed.status_code == 200, flushed.text  # the tracker reads only response.ok
            assert flushed.json()["accepted"] == 10
            assert flushed.headers["access-control-allow-origin"] == FRONTEND

            # Realtime pushed to the tokenless tab.
            with trio.fail_after(10):
                while (await next_of(tab, "realtime_metrics"))["data"]["overview"][
                    "total_events"
                ] < 10:
                    pass

            # customer-intelligence.ts updateJourneyStage: no event_type, the original's names.
            step = await client.post(
                f"{API}/track/journey",
                headers={**browser, "Content-Type": "application/json"},
                content=json.dumps(
                    {
                        "user_fingerprint": DEVICE,
                        "session_id": SESSION,
                        "journey_stage": "conversion",
                        "touchpoint": "booking_complete",
                        "time_spent_seconds": 184.215,
                    }
                ),
            )
            assert step.status_code == 200, step.text
            assert step.json()["sequenceNumber"] == 1 and step.json()["journeyId"]

            # analyticsApiService.recordEvent: metadata.
            recorded = await client.post(
                f"{API}/events",
                headers={"Content-Type": "application/json"},
                json={
                    "user_fingerprint": DEVICE,
                    "session_id": SESSION,
                    "event_type": "quote_requested",
                    "page_url": "http://localhost:3010/quote",
                    "metadata": {"device": "iPhone 15", "issue": "screen"},
                },
            )
            assert recorded.status_code == 200, recorded.text

            # customer-intelligence.ts loadCustomerProfile: its hard-coded key is no admin
            # credential.
            hard_coded = await client.get(
                f"{API}/insights/{DEVICE}", headers={"Authorization": "Bearer admin-api-key"}
            )
            assert hard_coded.status_code == 401

            # The admin pages (useAuthenticatedApi.ts): the user's JWT in Authorization.
            bearer = {"Authorization": f"Bearer {admin_jwt}", "Content-Type": "application/json"}
            pages = {
                path: await client.get(f"{API}/{path}", headers=bearer)
                for path in ("revenue", "performance", "realtime", "customers", "dashboard")
            }
            assert {path: answer.status_code for path, answer in pages.items()} == dict.fromkeys(
                pages, 200
            )
            assert all(answer.json()["success"] is True for answer in pages.values())
            revenue, performance = (
                pages["revenue"].json()["data"],
                pages["performance"].json()["data"],
            )
            assert set(revenue["currentMonth"]) >= {"total", "growth"}
            assert set(performance["performance"]) >= {"averageTimeHours", "efficiency"}
            assert set(performance["bookings"]) >= {"completed", "inProgress", "pending"}
            assert pages["realtime"].json()["data"]["activeSessions"] >= 1
            assert "new" in pages["customers"].json()["data"]["customers"]
            assert set(pages["dashboard"].json()["data"]) >= {
                "overview",
                "funnels",
                "topUsers",
                "lastUpdated",
            }

            # The same from the cookie the main app sets, from the frontend's page, after a
            # preflight.
            preflight = await client.options(
                f"{API}/revenue",
                headers={
                    "Origin": FRONTEND,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == FRONTEND
            assert preflight.headers["access-control-allow-credentials"] == "true"
            by_cookie = await client.get(
                f"{API}/customers", headers={"Origin": FRONTEND, "Cookie": f"token={admin_jwt}"}
            )
            assert by_cookie.status_code == 200, by_cookie.text
            assert by_cookie.headers["access-control-allow-origin"] == FRONTEND
            customer = await client.get(
                f"{API}/revenue", headers={"Authorization": f"Bearer {main_app_jwt('CUSTOMER')}"}
            )
            assert customer.status_code == 403

            # analyticsApiService with an admin token: realtime, funnel, the profiles page, a
            # journey.
            api = {"Authorization": f"Bearer {admin_jwt}", "Content-Type": "application/json"}
            for path in ("realtime", "funnel", "insights?page=1&limit=20", f"journey/{DEVICE}"):
                answer = await client.get(f"{API}/{path}", headers=api)
                assert answer.status_code == 200, (path, answer.text)
            funnel = await client.get(
                f"{API}/funnel?timeframe=7 days&funnel_name=booking", headers=api
            )
            assert funnel.status_code == 200, funnel.text
            journey = (await client.get(f"{API}/journey/{DEVICE}?limit=5", headers=api)).json()[
                "data"
            ]
            assert journey["journey"][0]["touchpoint"] in ("booking_complete", "quote_requested")
            assert {s["touchpoint"] for s in journey["journey"]} >= {"booking_complete"}

            # The visitor's insights as customer-intelligence.ts reads them, with a real credential.
            insights = (await client.get(f"{API}/insights/{DEVICE}", headers=api)).json()["data"]
            profile = insights["profile"]
            assert profile["fingerprint"] == DEVICE and profile["sessionId"] == SESSION
            assert profile["totalSessions"] == 1 and profile["totalBookings"] == 0
            assert {"engagement", "lead", "conversionProbability", "churnRisk"} <= set(
                insights["scores"]
            )
            assert insights["behavior"]["preferredDevice"] == "mobile"
            assert {"avgSessionDuration", "pagesPerSession", "bounceRate"} <= set(
                insights["behavior"]
            )
            assert insights["journey"]["currentStage"] and insights["journey"]["stages"]
            unknown = await client.get(f"{API}/insights/device-never-seen", headers=api)
            assert unknown.status_code == 404  # "new customer" to the original client

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output()

    # What the database holds: every field the tracker sent, where analysts query it.
    columns = (
        "client_event_id",
        "event_name",
        "device_type",
        "browser",
        "os",
        "screen_resolution",
        "viewport_size",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "time_on_page",
        "user_agent",
    )
    rows = query(
        storage_url,
        f"SELECT {', '.join(columns)} FROM analytics_events WHERE client_event_id IS NOT NULL"
        " ORDER BY time_on_page",
    )
    assert [row[0] for row in rows] == [event["id"] for event in events]
    assert rows[0][1:] == (
        "Page View",
        "mobile",
        "Chrome",
        "Linux armv8l",
        "412x915",
        "412x839",
        "google",
        "cpc",
        "winter",
        1000.0,
        browser["User-Agent"],
    )
    (properties,) = query(
        storage_url, "SELECT properties FROM analytics_events WHERE event_type = 'quote_requested'"
    )[0]
    assert (json.loads(properties) if isinstance(properties, str) else properties) == {
        "device": "iPhone 15",
        "issue": "screen",
    }
    (total,) = query(
        storage_url,
        f"SELECT total_events FROM user_behavior_profiles WHERE user_fingerprint = '{DEVICE}'",
    )[0]
    assert total == 12  # ten tracked, one journey step, one recorded event

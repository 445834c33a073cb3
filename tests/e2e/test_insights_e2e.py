"""Visitor insights and journeys through the real ``revivatech-actors serve`` process, on SQLite
and on PostgreSQL: an event posted is in the visitor's insights as soon as it is acknowledged,
the scorer's predictions follow within a profile write interval, a visitor's sessions come back
as an ordered journey, and on SIGTERM the profile and the journeys are in the database.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ..helpers import query
from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENTS = "/api/analytics/events"
BATCH = "/api/analytics/events/batch"
STEP = "/api/analytics/track/journey"
MODEL_TYPES = {"engagement_scoring", "lead_scoring", "churn_prediction", "price_sensitivity"}
SCORE_KEYS = {"engagement", "lead", "churnRisk", "priceSensitivity", "conversionProbability"}
SITE = "https://revivatech.example"
REFERRER = "https://www.search-engine.example/search?q=iphone+screen+repair"
REFERRER_HOST = "www.search-engine.example"


def start(serve, storage_url: str, **settings: str):
    env = service_env(
        REVIVATECH_STORAGE_URL=storage_url,
        REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
        REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2",
        **settings,
    )
    return serve(env=env)


def new_fingerprint() -> str:
    return f"fp-{uuid.uuid4().hex[:16]}"


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stop(server) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output()


# ---------------------------------------------------------------------------------- insights


def test_insights_reflect_an_event_at_once_and_predictions_follow(serve, storage_url):
    server = start(serve, storage_url)
    fp = new_fingerprint()
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        posted = client.post(
            EVENTS,
            json={"user_fingerprint": fp, "session_id": "s-1", "event_type": "booking_started"},
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["success"] is True

        answer = client.get(f"/api/analytics/insights/{fp}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True
        data = body["data"]
        assert {"profile", "scores", "predictions"} <= data.keys()

        profile = data["profile"]
        assert profile["fingerprint"] == fp
        counts = {
            key: profile[key]
            for key in (
                "totalEvents",
                "totalSessions",
                "bookingsStarted",
                "totalPageViews",
                "totalBookings",
            )
        }
        assert counts == {
            "totalEvents": 1,
            "totalSessions": 1,
            "bookingsStarted": 1,
            "totalPageViews": 0,
            "totalBookings": 0,
        }
        for key, value in counts.items():
            assert type(value) is int, (key, value)
        assert profile["eventCounts"] == {"booking_started": 1}
        assert isinstance(profile["segment"], str) and profile["segment"]
        assert profile["firstSeen"].endswith("Z") and profile["lastSeen"].endswith("Z")

        scores = data["scores"]
        assert set(scores) == SCORE_KEYS
        for key, value in scores.items():
            assert is_number(value) and 0 <= value <= 100, (key, value)
        assert 0 <= scores["conversionProbability"] <= 1
        # the original's fields, from the live profile and its one session
        assert (profile["sessionId"], profile["customerId"]) == ("s-1", None)
        assert data["behavior"] == {
            "avgSessionDuration": 0.0,
            "pagesPerSession": 0.0,
            "bounceRate": None,
            "preferredDevice": None,
        }
        assert data["journey"]["currentStage"] == "decision"
        assert [s["journey_stage"] for s in data["journey"]["stages"]] == ["decision"]
        assert isinstance(data["predictions"], list)

        # The scorer records predictions once per profile write (every 0.2 s here).
        deadline = time.monotonic() + 3.0
        predictions = data["predictions"]
        while not predictions and time.monotonic() < deadline:
            time.sleep(0.1)
            again = client.get(f"/api/analytics/insights/{fp}", headers=AUTH)
            assert again.status_code == 200, again.text
            predictions = again.json()["data"]["predictions"]
    assert predictions, "no prediction was recorded within 3 s"

    # A first scoring records every model; ?history=1 (the default) lists one per model.
    assert sorted(p["model_type"] for p in predictions) == sorted(MODEL_TYPES)
    for p in predictions:
        assert p["model_type"] in MODEL_TYPES
        assert is_number(p["prediction_value"]) and 0 <= p["prediction_value"] <= 100, p
        assert is_number(p["confidence_score"]) and 0 <= p["confidence_score"] <= 1, p
        assert isinstance(p["factors"], list), p
        assert isinstance(p["created_at"], str) and p["created_at"].endswith("Z"), p
        datetime.fromisoformat(p["created_at"])  # a real time
    stop(server)


def test_insights_errors_unknown_visitor_no_token_bad_history(serve, storage_url):
    server = start(serve, storage_url)
    fp = new_fingerprint()
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert (
            client.post(
                EVENTS,
                json={"user_fingerprint": fp, "session_id": "s-1", "event_type": "page_view"},
            ).status_code
            == 200
        )

        unknown = client.get(f"/api/analytics/insights/{new_fingerprint()}", headers=AUTH)
        assert unknown.status_code == 404, unknown.text
        body = unknown.json()
        assert body["success"] is False
        assert body["error"] == "unknown_visitor"

        no_token = client.get(f"/api/analytics/insights/{fp}")
        assert no_token.status_code == 401, no_token.text
        assert no_token.json()["success"] is False and no_token.json()["error"] == "unauthorized"
        wrong_token = client.get(
            f"/api/analytics/insights/{fp}", headers={"Authorization": "Bearer not-the-token"}
        )
        assert wrong_token.status_code == 401

        for bad in ("0", "101", "abc", "-1"):
            answer = client.get(
                f"/api/analytics/insights/{fp}", params={"history": bad}, headers=AUTH
            )
            assert answer.status_code == 400, (bad, answer.text)
            body = answer.json()
            assert body["success"] is False and body["error"] == "invalid_parameter"
            assert [d["field"] for d in body["details"]] == ["history"]
            assert "history" in body["message"]

        good = client.get(f"/api/analytics/insights/{fp}", params={"history": "5"}, headers=AUTH)
        assert good.status_code == 200 and good.json()["data"]["profile"]["totalEvents"] == 1
    stop(server)


# ---------------------------------------------------------------------------------- journeys


class Visit:
    """One visitor over two sessions: session 1 arrives from a newsletter and completes a booking
    (with an explicit quote step in between); session 2, a day later, comes from a search engine."""

    def __init__(self) -> None:
        self.fp = new_fingerprint()
        self.s1 = f"s1-{uuid.uuid4().hex[:8]}"
        self.s2 = f"s2-{uuid.uuid4().hex[:8]}"
        t0 = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=123000)
        self.t = {
            "landing": rfc3339(t0),
            "service": rfc3339(t0 + timedelta(seconds=60)),
            "quote": rfc3339(t0 + timedelta(seconds=90)),
            "started": rfc3339(t0 + timedelta(seconds=120)),
            "completed": rfc3339(t0 + timedelta(seconds=300)),
            "return": rfc3339(t0 + timedelta(days=1)),
        }
        self.landing_page = f"{SITE}/?utm_source=newsletter&utm_medium=email"

    def batch(self) -> list[dict]:
        fp, s1, s2, t = self.fp, self.s1, self.s2, self.t

        def event(session: str, event_type: str, at: str, **more) -> dict:
            return {
                "event_id": str(uuid.uuid4()),
                "user_fingerprint": fp,
                "session_id": session,
                "event_type": event_type,
                "timestamp": at,
                **more,
            }

        # deliberately out of time order
        return [
            event(s2, "page_view", t["return"], page_url=f"{SITE}/", referrer=REFERRER),
            event(
                s1,
                "booking_completed",
                t["completed"],
                page_url=f"{SITE}/booking/done",
                value=149.0,
            ),
            event(s1, "page_view", t["landing"], page_url=self.landing_page),
            event(s1, "booking_started", t["started"], page_url=f"{SITE}/booking"),
            event(s1, "service_viewed", t["service"], page_url=f"{SITE}/services/screen-repair"),
        ]

    def step(self) -> dict:
        return {
            "user_fingerprint": self.fp,
            "session_id": self.s1,
            "step": "quote_form_opened",
            "stage": "decision",
            "timestamp": self.t["quote"],
            "page_url": f"{SITE}/quote",
        }

    def expected_session_1(self) -> list[tuple]:
        t = self.t
        return [
            ("page_view", self.landing_page, t["landing"]),
            ("service_viewed", f"{SITE}/services/screen-repair", t["service"]),
            ("quote_form_opened", f"{SITE}/quote", t["quote"]),
            ("booking_started", f"{SITE}/booking", t["started"]),
            ("booking_completed", f"{SITE}/booking/done", t["completed"]),
        ]

    def expected_session_2(self) -> list[tuple]:
        return [("page_view", f"{SITE}/", self.t["return"])]

    def post(self, client: httpx.Client) -> None:
        sent = self.batch()
        answer = client.post(BATCH, json={"events": sent})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (5, 0, 0), body
        assert [r["eventId"] for r in body["results"]] == [e["event_id"] for e in sent]


def post_step(client: httpx.Client, visit: Visit) -> None:
    answer = client.post(STEP, json=visit.step())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["duplicate"] is False
    uuid.UUID(body["eventId"])
    assert body["timestamp"] == visit.t["quote"]


def test_journey_orders_sessions_and_touchpoints_and_tracks_stage_and_sources(serve, storage_url):
    server = start(serve, storage_url)
    visit = Visit()
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        visit.post(client)
        post_step(client, visit)

        answer = client.get(f"/api/analytics/journey/{visit.fp}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True
        data = body["data"]
        assert data["fingerprint"] == visit.fp
        assert data["totalSessions"] == 2
        assert data["stage"] == "retention"
        assert data["firstTouch"] == "newsletter"
        assert data["lastTouch"] == REFERRER_HOST

        sessions = data["sessions"]
        assert [s["sessionId"] for s in sessions] == [visit.s1, visit.s2]  # in order of start
        assert [s["stage"] for s in sessions] == ["booking", "retention"]
        assert [s["startedAt"] for s in sessions] == [visit.t["landing"], visit.t["return"]]
        assert [s["lastActivityAt"] for s in sessions] == [visit.t["completed"], visit.t["return"]]
        assert [(s["firstTouch"], s["lastTouch"]) for s in sessions] == [
            ("newsletter", "newsletter"),
            (REFERRER_HOST, REFERRER_HOST),
        ]
        for session in sessions:
            ats = [p["at"] for p in session["touchpoints"]]
            assert all(isinstance(at, str) and at.endswith("Z") for at in ats), ats
            assert ats == sorted(ats)
        first, second = (
            [(p["type"], p["page"], p["at"]) for p in s["touchpoints"]] for s in sessions
        )
        assert first == visit.expected_session_1()
        assert second == visit.expected_session_2()
        steps = [p for p in sessions[0]["touchpoints"] if p.get("step")]
        seconds = (
            datetime.fromisoformat(visit.t["started"]) - datetime.fromisoformat(visit.t["quote"])
        ).total_seconds()
        assert steps == [
            {
                "type": "quote_form_opened",
                "page": f"{SITE}/quote",
                "at": visit.t["quote"],
                "step": True,
                "stage": "decision",
                "timeSpentSeconds": seconds,
            }
        ]  # until the next touchpoint
        assert all(
            "step" not in p
            for s in sessions
            for p in s["touchpoints"]
            if p["type"] != "quote_form_opened"
        )

        # The same answer once every profile write has run (the step merged into a stored row).
        time.sleep(0.5)
        later = client.get(f"/api/analytics/journey/{visit.fp}", headers=AUTH)
        assert later.status_code == 200 and later.json()["data"] == data

        insights = client.get(f"/api/analytics/insights/{visit.fp}", headers=AUTH).json()["data"][
            "profile"
        ]
        assert (
            insights["totalEvents"],
            insights["totalSessions"],
            insights["totalPageViews"],
            insights["bookingsStarted"],
            insights["totalBookings"],
        ) == (6, 2, 2, 1, 1)
        assert insights["totalValue"] == 149.0
        assert insights["eventCounts"]["journey_step"] == 1
    stop(server)


def test_journey_errors_unknown_visitor_and_bad_steps(serve, storage_url):
    server = start(serve, storage_url)
    visit = Visit()
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        unknown = client.get(f"/api/analytics/journey/{visit.fp}", headers=AUTH)
        assert unknown.status_code == 200, (
            unknown.text
        )  # an empty journey, as the original answered
        assert unknown.json()["data"]["journey"] == [] and unknown.json()["data"]["sessions"] == []
        assert client.get(f"/api/analytics/journey/{visit.fp}").status_code == 401

        missing = {key: value for key, value in visit.step().items() if key != "step"}
        blank = {**visit.step(), "step": "  "}
        bad_stage = {**visit.step(), "stage": 7}
        for payload, field in ((missing, "step"), (blank, "step"), (bad_stage, "stage")):
            answer = client.post(STEP, json=payload)
            assert answer.status_code == 400, (payload, answer.text)
            body = answer.json()
            assert body["success"] is False and body["error"] == "invalid_journey_step"
            assert [d["field"] for d in body["details"]] == [field], body
            assert field in body["message"]

        # nothing of the refused steps was stored
        still_unknown = client.get(f"/api/analytics/journey/{visit.fp}", headers=AUTH)
        assert still_unknown.json()["data"]["totalSessions"] == 0
    stop(server)


def test_profile_and_journeys_are_in_the_database_after_sigterm(serve, storage_url):
    server = start(serve, storage_url)
    visit = Visit()
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        visit.post(client)
        # Let a profile write store the two sessions first, so the step merges into a stored row.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            stats = client.get("/api/analytics/actors", headers=AUTH).json()["stats"]["profiles"]
            if stats["profilesWritten"] >= 1:
                break
            time.sleep(0.05)
        assert stats["profilesWritten"] >= 1, stats
        post_step(client, visit)  # its delta is written by the next write, or on the way out
    stop(server)
    output = server.output()
    assert "root/profiles stopped in" in output and "stopped cleanly" in output, output
    assert "were written" not in output, (
        output
    )  # no "stopped before N visitor profile(s) were written"

    profiles = query(
        storage_url,
        "SELECT total_events, total_sessions, total_page_views, bookings_started, total_bookings"
        " FROM user_behavior_profiles WHERE user_fingerprint = %s",
        (visit.fp,),
    )
    assert profiles == [(6, 2, 2, 1, 1)]

    rows = query(
        storage_url,
        "SELECT session_id, stage, first_touch_source, last_touch_source, touchpoints"
        " FROM customer_journeys WHERE user_fingerprint = %s ORDER BY started_at",
        (visit.fp,),
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (visit.s1, "booking", "newsletter", "newsletter"),
        (visit.s2, "retention", REFERRER_HOST, REFERRER_HOST),
    ]

    def points(stored) -> list[tuple]:
        items = json.loads(stored) if isinstance(stored, str) else stored
        found = []
        for p in items:
            at = rfc3339(datetime.fromisoformat(p["at"]))
            found.append((p["type"], p["page"], at))
        return sorted(found, key=lambda p: p[2])

    assert points(rows[0][4]) == visit.expected_session_1()
    assert points(rows[1][4]) == visit.expected_session_2()
    step_flags = [
        p.get("step")
        for p in (json.loads(rows[0][4]) if isinstance(rows[0][4], str) else rows[0][4])
        if p["type"] == "quote_form_opened"
    ]
    assert step_flags == [True]

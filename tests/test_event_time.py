"""Bounds on event times (ingest.max_future_seconds, ingest.max_age_days): the pure rule, then
over real HTTP on both engines, with what the database then holds and what the visitor's
profile says of it (``lastSeen``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from revivatech_actors.domain.event_time import SENT_TIMESTAMP, TimeBounds, bound_event_time
from revivatech_actors.domain.validation import FieldError, ValidEvent, validate_event

from .test_service import TOKEN, Running, make_service
from .test_web_ingest import BATCH, EVENTS, assert_error, db, event, is_postgres, stored_event

RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BOUNDS = TimeBounds(max_future_seconds=3600.0, max_age_days=30)


def valid(**fields) -> ValidEvent:
    result = validate_event(event(**fields))
    assert isinstance(result, ValidEvent), result
    return result


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the rule -------------------------------------------------------------------------------------


def test_a_time_within_max_future_seconds_is_kept():
    sent = valid(timestamp=iso(RECEIVED + timedelta(seconds=3600)))
    assert bound_event_time(sent, RECEIVED, BOUNDS) is sent


def test_a_time_further_ahead_is_replaced_keeping_the_sent_value_and_a_warning():
    sent = valid(timestamp="2099-01-01T00:00:00Z", properties={"plan": "a"})
    bounded = bound_event_time(sent, RECEIVED, BOUNDS)
    assert isinstance(bounded, ValidEvent)
    assert bounded.timestamp is None  # stored at its receive time
    assert bounded.properties == {"plan": "a", SENT_TIMESTAMP: "2099-01-01T00:00:00.000Z"}
    (warning,) = bounded.warnings
    assert warning.field == "timestamp" and "ingest.max_future_seconds = 3600" in warning.message
    assert sent.properties == {"plan": "a"}  # the original value is untouched


def test_the_skew_corrected_time_is_what_is_judged():
    # The client's clock is a day ahead: timestamp and sent_at both say so, and the corrected time
    # is now.
    day_ahead = RECEIVED + timedelta(days=1)
    sent = valid(timestamp=iso(day_ahead - timedelta(seconds=5)), sent_at=iso(day_ahead))
    assert bound_event_time(sent, RECEIVED, BOUNDS) is sent
    # Without sent_at the same timestamp is a day ahead.
    alone = valid(timestamp=iso(day_ahead - timedelta(seconds=5)))
    assert bound_event_time(alone, RECEIVED, BOUNDS).timestamp is None


def test_an_old_time_is_kept_down_to_max_age_days_and_refused_beyond():
    inside = valid(timestamp=iso(RECEIVED - timedelta(days=29)))
    assert bound_event_time(inside, RECEIVED, BOUNDS) is inside
    beyond = valid(timestamp=iso(RECEIVED - timedelta(days=31)))
    (error,) = bound_event_time(beyond, RECEIVED, BOUNDS)
    assert error.field == "timestamp" and "ingest.max_age_days = 30" in error.message
    # 0: no lower bound, for backfills
    assert bound_event_time(beyond, RECEIVED, attrs.evolve(BOUNDS, max_age_days=0)) is beyond


def test_a_conflicting_sent_timestamp_property_is_refused():
    sent = valid(timestamp="2099-01-01T00:00:00Z", properties={SENT_TIMESTAMP: "something else"})
    assert bound_event_time(sent, RECEIVED, BOUNDS) == [
        FieldError(
            f"properties.{SENT_TIMESTAMP}",
            "is where a timestamp too far ahead is kept, and it holds another value",
        )
    ]


def test_an_event_without_a_time_is_unchanged():
    sent = valid()
    assert bound_event_time(sent, RECEIVED, BOUNDS) is sent


# --- over HTTP ------------------------------------------------------------------------------------


async def stored_properties(url: str, event_id: str) -> dict:
    import json

    where = "event_id = %s::uuid" if is_postgres(url) else "event_id = %s"
    ((properties,),) = await db(
        url, f"SELECT properties FROM analytics_events WHERE {where}", (event_id,)
    )
    return json.loads(properties) if isinstance(properties, str) else properties


async def test_an_event_dated_2099_is_stored_at_its_receive_time(storage_url):
    async with Running(make_service(storage_url, **{"profiles.flush_interval": 0.1})) as client:
        before = datetime.now(UTC)
        answer = await client.post(
            EVENTS, json=event(user_fingerprint="from-2099", timestamp="2099-01-01T00:00:00Z")
        )
        after = datetime.now(UTC)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        (warning,) = body["warnings"]
        assert (
            warning["field"] == "timestamp"
            and "ingest.max_future_seconds = 3600" in warning["message"]
        )
        row = await stored_event(storage_url, body["eventId"])
        assert before <= row["event_timestamp"] <= after
        assert (await stored_properties(storage_url, body["eventId"]))[
            SENT_TIMESTAMP
        ] == "2099-01-01T00:00:00.000Z"

        # an hour ahead is still within the bound: kept as sent
        soon = (datetime.now(UTC) + timedelta(minutes=50)).replace(microsecond=0)
        kept = await client.post(
            EVENTS, json=event(user_fingerprint="from-2099", timestamp=iso(soon))
        )
        assert kept.status_code == 200 and "warnings" not in kept.json()
        assert (await stored_event(storage_url, kept.json()["eventId"]))["event_timestamp"] == soon

        insights = await client.get(
            "/api/analytics/insights/from-2099", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert insights.status_code == 200, insights.text
        last_seen = datetime.fromisoformat(insights.json()["data"]["profile"]["lastSeen"])
        assert last_seen == soon  # not 2099


async def test_max_age_days_refuses_older_events_in_a_batch_and_keeps_the_rest(sqlite_url):
    async with Running(make_service(sqlite_url, **{"ingest.max_age_days": 7})) as client:
        now = datetime.now(UTC)
        batch = {
            "events": [
                event(session_id="old", timestamp=iso(now - timedelta(days=8))),
                event(session_id="recent", timestamp=iso(now - timedelta(days=6))),
                event(session_id="future", timestamp="2099-01-01T00:00:00Z"),
            ]
        }
        answer = await client.post(BATCH, json=batch)
        assert answer.status_code == 200, answer.text
        old, recent, future = answer.json()["results"]
        assert old["status"] == "rejected"
        assert (
            old["errors"][0]["field"] == "timestamp"
            and "ingest.max_age_days = 7" in old["errors"][0]["message"]
        )
        assert recent["status"] == "stored" and "warnings" not in recent
        assert future["status"] == "stored" and future["warnings"][0]["field"] == "timestamp"

        single = await client.post(EVENTS, json=event(timestamp=iso(now - timedelta(days=8))))
        error = assert_error(single, 400, "invalid_event")
        assert "ingest.max_age_days = 7" in error["details"][0]["message"]

"""What the original RevivaTech clients send, over real HTTP, against both engines: the main
tracker's batches (epoch-millisecond times, its own ids, event_data, UTM and device fields), the
API client's ``metadata``, ``sendBeacon``'s text/plain, the journey calls under the original's
names; what is stored of the client (address, user agent); batches of which nothing is kept.
"""

from __future__ import annotations

import json
import uuid

import pytest
import trio

from revivatech_actors.domain.validation import client_event_uuid

from .test_service import TOKEN, Running, make_service
from .test_web_ingest import BATCH, EVENTS, db, is_postgres

JOURNEY = "/api/analytics/track/journey"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
#: The extra columns of migration 0005, as the tests read them back.
COLUMNS = (
    "client_event_id",
    "event_name",
    "user_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "device_type",
    "browser",
    "os",
    "screen_resolution",
    "viewport_size",
    "time_on_page",
    "time_since_last_event",
    "user_agent",
    "ip_address",
)


def tracker_event(
    n: int, *, fingerprint: str = "device-1a2b3c", now: int = 1_764_686_400_000
) -> dict:
    """Event ``n`` as behavioral-tracking.ts builds it (trackEvent), field for field."""
    return {
        "id": f"{now + n}_k3j5h6g7f{n}",
        "user_fingerprint": fingerprint,
        "session_id": "session_1764686400000_abc",
        "event_type": "page_view" if n == 0 else "click",
        "event_name": "Page View" if n == 0 else "Element Click",
        "event_data": {"page_title": "Repairs", "element_selector": f"#b{n}"},
        "page_url": "https://revivatech.co.uk/services?utm_source=google",
        "referrer_url": "" if n else "https://www.google.com/",
        "timestamp": now + n * 1000,
        "device_type": "desktop",
        "browser": "Chrome",
        "os": "Linux x86_64",
        "screen_resolution": "1920x1080",
        "viewport_size": "1280x720",
        "time_on_page": n * 1000,
        "time_since_last_event": 1000 if n else 0,
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "winter-repairs",
    }


async def extra_columns(url: str, event_id: str) -> dict:
    where = "event_id = %s::uuid" if is_postgres(url) else "event_id = %s"
    cast = ", ".join(f"host({c})" if c == "ip_address" and is_postgres(url) else c for c in COLUMNS)
    rows = await db(
        url,
        f"SELECT {cast}, properties, event_timestamp FROM analytics_events WHERE {where}",
        (event_id,),
    )
    assert len(rows) == 1, rows
    row = dict(zip((*COLUMNS, "properties", "event_timestamp"), rows[0], strict=True))
    if isinstance(row["properties"], str):
        row["properties"] = json.loads(row["properties"])
    return row


async def test_the_trackers_batch_is_stored_field_for_field(storage_url):
    events = [tracker_event(n) for n in range(10)]  # it flushes at 10 events
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(BATCH, json={"events": events}, headers={"User-Agent": AGENT})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True and body["accepted"] == 10
        assert (body["processed"], body["failed"]) == (10, 0)  # the original's names
        assert [r["status"] for r in body["results"]] == ["stored"] * 10
        assert [r["eventId"] for r in body["results"]] == [
            e["id"] for e in events
        ]  # the ids it sent
        assert all("warnings" not in r for r in body["results"])

        # the tracker re-queues its last 10 events when a flush fails: a replay is a duplicate
        again = await client.post(BATCH, json={"events": events})
        assert again.status_code == 200 and again.json()["duplicates"] == 10

    first = await extra_columns(storage_url, client_event_uuid("device-1a2b3c", events[0]["id"]))
    assert first == {
        "client_event_id": events[0]["id"],
        "event_name": "Page View",
        "user_id": None,
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "winter-repairs",
        "utm_term": None,
        "utm_content": None,
        "device_type": "desktop",
        "browser": "Chrome",
        "os": "Linux x86_64",
        "screen_resolution": "1920x1080",
        "viewport_size": "1280x720",
        "time_on_page": 0.0,
        "time_since_last_event": 0.0,
        "user_agent": AGENT,
        "ip_address": "127.0.0.0",  # anonymized by default
        "properties": {"page_title": "Repairs", "element_selector": "#b0"},
        "event_timestamp": first["event_timestamp"],
    }
    stamp = first["event_timestamp"]
    assert (stamp if isinstance(stamp, str) else stamp.isoformat()).startswith("2025-12-02")
    (count,) = await db(storage_url, "SELECT count(*) FROM analytics_events")
    assert count == (10,)


async def test_a_beacon_of_text_plain_json_is_taken(storage_url):
    text = json.dumps({"events": [tracker_event(0, fingerprint="beacon-visitor")]})
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(
            BATCH, content=text, headers={"Content-Type": "text/plain;charset=UTF-8"}
        )
        assert answer.status_code == 200, answer.text
    (count,) = await db(
        storage_url,
        "SELECT count(*) FROM analytics_events WHERE user_fingerprint = 'beacon-visitor'",
    )
    assert count == (1,)


async def test_unknown_fields_are_kept_and_named_in_the_answer(storage_url):
    body = {
        "user_fingerprint": "v",
        "session_id": "s",
        "event_type": "click",
        "element_id": "cta",
        "scroll_position": {"x": 0, "y": 420},
    }
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(EVENTS, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["warnings"] == [
            {"field": "element_id", "message": "is not a known field; kept in properties"},
            {"field": "scroll_position", "message": "is not a known field; kept in properties"},
        ]
        event_id = answer.json()["eventId"]
        batch = await client.post(BATCH, json={"events": [body]})
        assert [w["field"] for w in batch.json()["results"][0]["warnings"]] == [
            "element_id",
            "scroll_position",
        ]
    row = await extra_columns(storage_url, event_id)
    assert row["properties"] == {"element_id": "cta", "scroll_position": {"x": 0, "y": 420}}


async def test_the_api_clients_metadata_is_kept_as_custom_data(storage_url):
    body = {
        "user_fingerprint": "v",
        "session_id": "s",
        "event_type": "quote_requested",
        "page_url": "https://revivatech.co.uk/quote",
        "metadata": {"device": "iPhone 15", "issue": "screen"},
    }
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(EVENTS, json=body)
        assert answer.status_code == 200, answer.text
        assert "warnings" not in answer.json()
    row = await extra_columns(storage_url, answer.json()["eventId"])
    assert row["properties"] == {"device": "iPhone 15", "issue": "screen"}


async def test_a_batch_of_which_nothing_is_kept_is_400_and_its_repeats_are_kept_once(storage_url):
    refused = {
        "events": [{"user_fingerprint": "v", "event_type": "click", "timestamp": 1764686400}]
    }
    async with Running(make_service(storage_url)) as client:
        for _ in range(3):  # the original tracker resends a failed batch every 5 s
            answer = await client.post(BATCH, json=refused)
            assert answer.status_code == 400, answer.text
            body = answer.json()
            assert body["success"] is False and body["accepted"] == 0 and body["rejected"] == 1
            assert (body["processed"], body["failed"]) == (0, 1)
            assert body["error"] == "nothing_stored"
            assert [e["field"] for e in body["results"][0]["errors"]] == ["session_id", "timestamp"]
    assert await db(storage_url, "SELECT times_received FROM rejected_events") == [(3,)]


@pytest.mark.parametrize(
    ("mode", "proxies", "forwarded", "kept"),
    [
        (
            "anonymized",
            "",
            "203.0.113.77",
            "127.0.0.0",
        ),  # the header of an untrusted peer is ignored
        ("anonymized", "127.0.0.1", "203.0.113.77", "203.0.113.0"),
        (
            "full",
            "127.0.0.0/8",
            "198.51.100.2, 203.0.113.77",
            "203.0.113.77",
        ),  # the nearest untrusted hop
        ("full", "127.0.0.1, 203.0.113.0/24", "198.51.100.2, 203.0.113.77", "198.51.100.2"),
        ("anonymized", "127.0.0.1", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa::"),
        ("none", "127.0.0.1", "203.0.113.77", None),
    ],
)
async def test_the_client_address_is_kept_as_configured(sqlite_url, mode, proxies, forwarded, kept):
    service = make_service(sqlite_url, **{"ingest.client_ip": mode, "web.trusted_proxies": proxies})
    async with Running(service) as client:
        answer = await client.post(
            EVENTS,
            json={"user_fingerprint": "v", "session_id": "s", "event_type": "x"},
            headers={"X-Forwarded-For": forwarded},
        )
        assert answer.status_code == 200, answer.text
    assert (await extra_columns(sqlite_url, answer.json()["eventId"]))["ip_address"] == kept


async def test_the_journey_clients_steps_are_stored_numbered_and_shown(storage_url):
    # customer-intelligence.ts: no event_type, the original's names
    steps = [
        {
            "user_fingerprint": "journey-visitor",
            "session_id": "s-1",
            "journey_stage": "consideration",
            "touchpoint": "booking_form",
            "time_spent_seconds": 41.5,
        },
        {
            "user_fingerprint": "journey-visitor",
            "session_id": "s-1",
            "journey_stage": "conversion",
            "touchpoint": "booking_complete",
            "time_spent_seconds": 12.25,
            "user_id": "customer-9",
            "entry_method": "direct",
            "content_consumed": {"pages": 3},
        },
    ]
    async with Running(make_service(storage_url)) as client:
        answers = [await client.post(JOURNEY, json=step) for step in steps]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert [a.json()["sequenceNumber"] for a in answers] == [1, 2]
        assert all(uuid.UUID(a.json()["journeyId"]) for a in answers)
        assert all(a.json()["journeyId"] == a.json()["eventId"] for a in answers)

        shown = await client.get("/api/analytics/journey/journey-visitor", headers=ADMIN)
        assert shown.status_code == 200, shown.text
        data = shown.json()["data"]
        points = data["sessions"][0]["touchpoints"]
        assert [(p["type"], p.get("stage"), p["timeSpentSeconds"]) for p in points] == [
            ("booking_form", "consideration", 41.5),
            ("booking_complete", "conversion", 12.25),
        ]
        assert data["totalSteps"] == 2
        assert [
            (s["touchpoint"], s["journey_stage"], s["sequence_number"]) for s in data["journey"]
        ] == [("booking_complete", "conversion", 2), ("booking_form", "consideration", 1)]
        assert data["journey"][0]["entry_method"] == "direct"

        limited = await client.get("/api/analytics/journey/journey-visitor?limit=1", headers=ADMIN)
        assert [s["sequence_number"] for s in limited.json()["data"]["journey"]] == [2]
        bad = await client.get("/api/analytics/journey/journey-visitor?limit=0", headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "limit"

        unknown = await client.get("/api/analytics/journey/nobody-yet", headers=ADMIN)
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["data"]["journey"] == [] and unknown.json()["data"]["totalSteps"] == 0

    (user_id,) = await db(
        storage_url, "SELECT user_id FROM analytics_events WHERE user_id IS NOT NULL"
    )
    assert user_id == ("customer-9",)


async def test_several_forwarded_for_headers_are_one_list(sqlite_url):
    service = make_service(
        sqlite_url, **{"ingest.client_ip": "full", "web.trusted_proxies": "127.0.0.1"}
    )
    async with Running(service) as client:
        answer = await client.post(
            EVENTS,
            json={"user_fingerprint": "v", "session_id": "s", "event_type": "x"},
            headers=[
                ("X-Forwarded-For", "198.51.100.2"),
                ("X-Forwarded-For", "203.0.113.77"),
                ("User-Agent", AGENT),
            ],
        )
        assert answer.status_code == 200, answer.text
    row = await extra_columns(sqlite_url, answer.json()["eventId"])
    assert (row["ip_address"], row["user_agent"]) == ("203.0.113.77", AGENT)


async def test_a_resent_journey_step_is_a_duplicate_answered_at_once(sqlite_url):
    step = {
        "user_fingerprint": "resender",
        "session_id": "s",
        "touchpoint": "booking_form",
        "event_id": str(uuid.uuid4()),
    }
    async with Running(make_service(sqlite_url)) as client:
        first = await client.post(JOURNEY, json=step)
        assert first.status_code == 200 and first.json()["sequenceNumber"] == 1
        started = trio.current_time()
        again = await client.post(JOURNEY, json=step)
        assert again.status_code == 200, again.text
        assert again.json()["duplicate"] is True and again.json()["sequenceNumber"] == 1
        assert trio.current_time() - started < 0.5  # not the wait for a step that is never handled

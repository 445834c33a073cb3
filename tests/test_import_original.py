"""``import-original``: the mapping of the original's rows (pure), and the command itself run as a
real process against a database built from the original's own migration
(tests/data/original_001_add_analytics_tables.sql)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from revivatech_actors.domain.original import (
    EVENTS_TABLE,
    JOURNEYS_TABLE,
    TableCounts,
    event_body,
    import_row,
    progress_line,
    step_body,
)
from revivatech_actors.domain.validation import client_event_uuid, validate_event

from .helpers import query

SCHEMA = Path(__file__).parent / "data" / "original_001_add_analytics_tables.sql"
TRACKER_ID = "1764686400000_k3j5h6g7f8d9s"


def original_row(**values):
    """An analytics_events row as psycopg reads it (every column; NULLs as None)."""
    row = dict.fromkeys(
        (
            "id",
            "user_fingerprint",
            "session_id",
            "user_id",
            "event_type",
            "event_name",
            "event_data",
            "page_url",
            "referrer_url",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "device_type",
            "browser",
            "os",
            "screen_resolution",
            "ip_address",
            "geo_country",
            "geo_city",
            "created_at",
            "processed_at",
        )
    )
    row.update(
        id=TRACKER_ID,
        user_fingerprint="fp-1",
        session_id="s-1",
        event_type="page_view",
        event_name="page_view",
        event_data={},
        created_at=datetime(2025, 12, 2, 14, 40, 0, 123000),
    )
    row.update(values)
    return row


def journey_row(**values):
    row = dict.fromkeys(
        (
            "id",
            "user_fingerprint",
            "session_id",
            "user_id",
            "journey_stage",
            "touchpoint",
            "time_spent_seconds",
            "entry_method",
            "traffic_source",
            "content_consumed",
            "actions_taken",
            "stage_entered_at",
            "created_at",
        )
    )
    row.update(
        id="4f1d7d56-3f0a-4c63-9d5e-1f0b8c2b7a11",
        user_fingerprint="fp-1",
        session_id="s-1",
        journey_stage="conversion",
        touchpoint="booking_form",
        time_spent_seconds=Decimal("12.50"),
        content_consumed={},
        actions_taken={},
        stage_entered_at=datetime(2025, 12, 2, 14, 44),
        created_at=datetime(2025, 12, 2, 14, 44),
    )
    row.update(values)
    return row


# --- the mapping (pure) -------------------------------------------------------------------------


def test_event_body_uses_the_trackers_field_names_and_rfc3339_time():
    body = event_body(
        original_row(
            page_url="https://revivatech.co.uk/",
            referrer_url="https://google.com/",
            utm_source="google",
            device_type="mobile",
            geo_country="GB",
            geo_city="London",
            event_data={"title": "Home"},
            ip_address="203.0.113.77",
            processed_at=datetime(2025, 12, 2, 14, 41),
        ),
        UTC,
    )
    assert body == {
        "id": TRACKER_ID,
        "user_fingerprint": "fp-1",
        "session_id": "s-1",
        "event_type": "page_view",
        "event_name": "page_view",
        "event_data": {"title": "Home"},
        "page_url": "https://revivatech.co.uk/",
        "referrer_url": "https://google.com/",
        "utm_source": "google",
        "device_type": "mobile",
        "properties": {"geo_country": "GB", "geo_city": "London"},
        "timestamp": "2025-12-02T14:40:00.123000+00:00",
    }


def test_an_imported_event_is_the_live_trackers_event():
    """Same id, time and fields as the tracker's own request: history and live traffic dedupe."""
    imported = import_row(EVENTS_TABLE, original_row(browser="Chrome"), client_ip="none").valid
    live = validate_event(
        {
            "id": TRACKER_ID,
            "user_fingerprint": "fp-1",
            "session_id": "s-1",
            "event_type": "page_view",
            "event_name": "page_view",
            "event_data": {},
            "timestamp": 1764686400123,
            "browser": "Chrome",
        }
    )
    assert imported.event_id == live.event_id == client_event_uuid("fp-1", TRACKER_ID)
    assert imported.client_id == TRACKER_ID
    assert imported == live


def test_a_uuid_id_is_the_event_id():
    event_id = str(uuid.uuid4())
    valid = import_row(EVENTS_TABLE, original_row(id=event_id)).valid
    assert valid.event_id == event_id and valid.client_id is None


@pytest.mark.parametrize(
    ("mode", "kept"), [("anonymized", "203.0.113.0"), ("full", "203.0.113.77"), ("none", None)]
)
def test_the_address_is_kept_as_ingest_client_ip_says(mode, kept):
    assert (
        import_row(EVENTS_TABLE, original_row(ip_address="203.0.113.77"), client_ip=mode).ip_address
        == kept
    )


def test_times_are_read_in_the_source_zone():
    london = ZoneInfo("Europe/London")  # BST in July: one hour ahead of UTC
    body = event_body(original_row(created_at=datetime(2025, 7, 1, 12, 0)), london)
    assert body["timestamp"] == "2025-07-01T11:00:00+00:00"


def test_a_null_heavy_row_is_valid_and_a_row_without_time_is_not():
    sparse = original_row(event_data=None)
    assert import_row(EVENTS_TABLE, sparse).valid is not None
    late = import_row(
        EVENTS_TABLE, original_row(created_at=None, processed_at=datetime(2025, 12, 2, 15, 0))
    )
    assert late.valid.timestamp == datetime(2025, 12, 2, 15, 0, tzinfo=UTC)
    timeless = import_row(EVENTS_TABLE, original_row(created_at=None))
    assert timeless.valid is None
    assert [e.field for e in timeless.errors] == ["created_at"]


def test_an_invalid_row_names_every_broken_rule_and_keeps_its_body():
    row = import_row(EVENTS_TABLE, original_row(event_type="page view!", session_id=""))
    assert row.valid is None
    assert {e.field for e in row.errors} == {"event_type", "session_id"}
    assert json.loads(row.payload)["event_type"] == "page view!"


def test_a_journey_row_is_the_original_clients_step():
    body = step_body(journey_row(actions_taken={"clicked": 1}, user_id="u-1"), UTC)
    assert body == {
        "id": "customer_journeys:4f1d7d56-3f0a-4c63-9d5e-1f0b8c2b7a11",
        "user_fingerprint": "fp-1",
        "session_id": "s-1",
        "user_id": "u-1",
        "journey_stage": "conversion",
        "touchpoint": "booking_form",
        "time_spent_seconds": 12.5,
        "actions_taken": {"clicked": 1},
        "timestamp": "2025-12-02T14:44:00+00:00",
    }
    valid = import_row(JOURNEYS_TABLE, journey_row()).valid
    assert valid.event_type == "journey_step"
    assert valid.properties == {
        "step": "booking_form",
        "stage": "conversion",
        "time_spent_seconds": 12.5,
    }
    assert valid.event_id == client_event_uuid("fp-1", body["id"])  # a second import is a duplicate


def test_a_journey_step_falls_back_to_created_at():
    row = journey_row(stage_entered_at=None, created_at=datetime(2025, 12, 3))
    assert import_row(JOURNEYS_TABLE, row).valid.timestamp == datetime(2025, 12, 3, tzinfo=UTC)


def test_progress_line_and_counts():
    assert (
        progress_line(500, 1000, 2.0, width=10)
        == "[#####.....]  500/1,000 rows   50.0%  250 rows/s  ETA 0:02"
    )
    assert progress_line(0, 0, 0.0, width=4).startswith("[####]  0/0 rows  100.0%")
    counts = TableCounts(3, 1, 1, Counter({"event_type: bad": 1}))
    assert TableCounts.from_json(json.loads(json.dumps(counts.as_json()))) == counts


# --- the command, against a database of the original's schema -----------------------------------

BASE = datetime(2025, 12, 1, 9, 0)


def build_original(url: str) -> None:
    """The original's schema from its own migration file, run as is, after what it expects."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT)")
        conn.execute(
            "CREATE TABLE migrations (version TEXT PRIMARY KEY, description TEXT, "
            "applied_at TIMESTAMP(3) WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP)"
        )
        # The migration grants to its application role (cluster-wide: may exist already).
        conn.execute(
            "DO $$ BEGIN CREATE ROLE revivatech_user NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        conn.execute(SCHEMA.read_text())


def insert_history(url: str, bulk: int = 0) -> None:
    """A small realistic history (two visitors, tracker and uuid ids, journey calls, a row that
    fails validation, a NULL-heavy row, one without any time), plus ``bulk`` generated events."""
    import psycopg

    events = """INSERT INTO analytics_events (id, user_fingerprint, session_id, user_id, event_type,
        event_name, event_data, page_url, referrer_url, utm_source, utm_medium, utm_campaign,
        device_type, browser, os, screen_resolution, ip_address, geo_country, geo_city, created_at,
        processed_at)
        VALUES (COALESCE(%s, gen_random_uuid()::text), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
    site = "https://revivatech.co.uk"
    m = lambda minutes: BASE.replace(minute=minutes)  # noqa: E731
    rows = [
        (
            "1764579600000_a1b2c3d4e5f6g",
            "fp-alice",
            "s-a1",
            "u-1",
            "page_view",
            "page_view",
            '{"title": "Home"}',
            f"{site}/?utm_source=google",
            "https://www.google.com/",
            "google",
            "cpc",
            "winter",
            "mobile",
            "Safari",
            "iOS",
            "390x844",
            "203.0.113.77",
            "GB",
            "London",
            m(0),
            m(0),
        ),
        (
            "1764579660000_h7i8j9k0l1m2n",
            "fp-alice",
            "s-a1",
            "u-1",
            "service_view",
            "iphone_screen",
            '{"service": "screen"}',
            f"{site}/services/iphone",
            None,
            None,
            None,
            None,
            "mobile",
            "Safari",
            "iOS",
            "390x844",
            "203.0.113.77",
            "GB",
            "London",
            m(1),
            m(1),
        ),
        (
            None,
            "fp-alice",
            "s-a1",
            "u-1",
            "booking_started",
            "booking_started",
            "{}",
            f"{site}/book",
            None,
            None,
            None,
            None,
            "mobile",
            "Safari",
            "iOS",
            "390x844",
            "203.0.113.77",
            "GB",
            "London",
            m(3),
            m(3),
        ),
        (
            None,
            "fp-alice",
            "s-a1",
            "u-1",
            "booking_completed",
            "booking_completed",
            '{"amount": 149.99}',
            f"{site}/book/done",
            None,
            None,
            None,
            None,
            "mobile",
            "Safari",
            "iOS",
            "390x844",
            "203.0.113.77",
            "GB",
            "London",
            m(9),
            m(9),
        ),
        (
            "1764583200000_o3p4q5r6s7t8u",
            "fp-bob",
            "s-b1",
            None,
            "page_view",
            "page_view",
            "{}",
            f"{site}/",
            None,
            None,
            None,
            None,
            "desktop",
            "Firefox",
            "Linux",
            "1920x1080",
            "198.51.100.23",
            "US",
            None,
            m(5),
            None,
        ),
        # refused: an event type with a space (the tracker never sent one; a bad row of history)
        (
            "1764583260000_v9w0x1y2z3a4b",
            "fp-bob",
            "s-b1",
            None,
            "page view!",
            "x",
            "{}",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            m(6),
            None,
        ),
        # NULL-heavy: only what the schema requires
        (
            None,
            "fp-bob",
            "s-b1",
            None,
            "scroll",
            "scroll",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            m(7),
            None,
        ),
        # no time at all: skipped
        (
            "1764583300000_notime",
            "fp-bob",
            "s-b1",
            None,
            "click",
            "click",
            "{}",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ),
    ]
    steps = """INSERT INTO customer_journeys (user_fingerprint, session_id, user_id, journey_stage,
        touchpoint, sequence_number, time_spent_seconds, entry_method, traffic_source,
        content_consumed, actions_taken, stage_entered_at, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
    journey = [
        (
            "fp-alice",
            "s-a1",
            "u-1",
            "consideration",
            "service_detail",
            1,
            42.5,
            "paid",
            "google",
            "{}",
            "{}",
            m(2),
            m(2),
        ),
        (
            "fp-alice",
            "s-a1",
            "u-1",
            "conversion",
            "booking_form",
            2,
            120.25,
            None,
            None,
            '{"faq": true}',
            '{"form_fields": 6}',
            m(4),
            m(4),
        ),
        (
            "fp-alice",
            "s-a1",
            "u-1",
            "conversion",
            "booking_complete",
            3,
            3,
            None,
            None,
            "{}",
            "{}",
            m(10),
            m(10),
        ),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, email) VALUES ('u-1', 'alice@example.com')")
        with conn.cursor() as cursor:
            cursor.executemany(events, rows)
            cursor.executemany(steps, journey)
        if bulk:
            # Many visitors, tracker-style ids, a session each per 40 events, one step per 25
            # events.
            conn.execute(
                """INSERT INTO analytics_events (id, user_fingerprint, session_id, event_type,
                event_name, event_data, page_url, ip_address, created_at)
                SELECT (1764000000000 + g)::text || '_bulk', 'bulk-' || (g %% 400),
                       'bulk-s-' || (g / 40),
                       CASE WHEN g %% 9 = 0 THEN 'service_view' ELSE 'page_view' END, 'bulk', '{}',
                       'https://revivatech.co.uk/p/' || (g %% 30), ('192.0.2.' || (g %% 250))::inet,
                       %s + g * interval '1 s'
                FROM generate_series(1, %s) g""",
                [BASE.replace(day=2), bulk],
            )
            conn.execute(
                """INSERT INTO customer_journeys (user_fingerprint, session_id, journey_stage,
                touchpoint, sequence_number, stage_entered_at, created_at)
                SELECT 'bulk-' || (g %% 400), 'bulk-s-' || (g / 40), 'awareness', 'landing', g,
                       %s + g * interval '1 s', %s + g * interval '1 s'
                FROM generate_series(25, %s, 25) g""",
                [BASE.replace(day=2)] * 2 + [bulk],
            )


@pytest.fixture
def original(new_database):
    url = new_database()
    build_original(url)
    return url


def import_command(
    cwd: Path, destination: str, source: str, *args: str, **popen
) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REVIVATECH_")}
    env["REVIVATECH_STORAGE_URL"] = destination
    command = [
        sys.executable,
        "-m",
        "revivatech_actors",
        "import-original",
        "--from",
        source,
        *args,
    ]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run_import(cwd: Path, destination: str, source: str, *args: str) -> tuple[int, str, str]:
    process = import_command(cwd, destination, source, *args)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def summary_counts(out: str) -> dict[str, tuple[int, int, int, int]]:
    """table -> (read, stored, duplicates, skipped) from the summary."""
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in (EVENTS_TABLE, JOURNEYS_TABLE) and len(parts) >= 5:
            counts[parts[0]] = tuple(int(p.replace(",", "")) for p in parts[1:5])
    return counts


def _iso(value) -> str | None:
    """A time from either engine as comparable text (SQLite keeps RFC 3339 text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).isoformat()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """What an import decides, table by table, without the times of the run itself (received_at,
    updated_at, scores and predictions, which depend on when they were computed)."""

    def rows(sql: str, times: tuple[int, ...] = ()) -> list[tuple]:
        found = []
        for row in query(url, sql):
            row = list(row)
            for i in times:
                row[i] = _iso(row[i])
            for i, value in enumerate(row):
                if isinstance(value, str) and value[:1] in "[{":
                    row[i] = json.loads(value)
                if isinstance(value, (dict, list)) or i in times:
                    row[i] = json.dumps(row[i], sort_keys=True, default=str)
            found.append(tuple(row))
        return sorted(found, key=repr)

    return {
        "events": rows(
            "SELECT event_id, client_event_id, user_fingerprint, session_id, event_type,"
            " event_timestamp, page_url, referrer, properties, event_name, user_id, utm_source,"
            " device_type, ip_address FROM analytics_events",
            (5,),
        ),
        "profiles": rows(
            "SELECT user_fingerprint, total_events, total_sessions, total_page_views,"
            " bookings_started, total_bookings, first_seen, last_seen, days_active, event_counts"
            " FROM user_behavior_profiles",
            (6, 7),
        ),
        "sessions": rows(
            "SELECT session_id, user_fingerprint, started_at, last_activity_at, event_count,"
            " page_views, entry_page, exit_page FROM analytics_sessions",
            (2, 3),
        ),
        "journeys": rows(
            "SELECT user_fingerprint, session_id, touchpoints, stage FROM customer_journeys"
        ),
        "dead letters": rows(
            "SELECT letter_id, source, reasons, payload, times_received FROM rejected_events"
        ),
    }


def profile(url: str, fingerprint: str) -> dict:
    names = (
        "total_events",
        "total_sessions",
        "total_page_views",
        "bookings_started",
        "total_bookings",
    )
    found = query(
        url,
        f"SELECT {', '.join(names)} FROM user_behavior_profiles WHERE user_fingerprint = %s",
        (fingerprint,),
    )
    return dict(zip(names, found[0], strict=True)) if found else {}


@pytest.mark.postgres
def test_import_stores_history_as_live_events_and_twice_is_a_duplicate(
    tmp_path, original, storage_url
):
    insert_history(original)
    source = original.replace(
        "postgresql://postgres@", "postgresql://postgres:s3cret-pw@"
    )  # trust auth ignores it
    code, out, err = run_import(tmp_path, storage_url, source)
    assert code == 0, out + err
    assert "s3cret-pw" not in out + err
    assert "import-original complete" in out
    # 8 event rows: 6 stored, one refused by validation, one without a time; 3 journey steps
    assert summary_counts(out) == {EVENTS_TABLE: (8, 6, 0, 2), JOURNEYS_TABLE: (3, 3, 0, 0)}
    assert "event_type: must be 1 to 64 characters" in out and "created_at: is NULL" in out
    assert "rows/s" in err  # the progress bar

    events = {
        r[1] or r[0]: r
        for r in query(
            storage_url,
            "SELECT CAST(event_id AS TEXT), client_event_id, "
            "event_type, event_timestamp, event_name, utm_source, device_type, "
            "CAST(ip_address AS TEXT), "
            "properties, user_id FROM analytics_events",
        )
    }
    alice_first = events["1764579600000_a1b2c3d4e5f6g"]
    assert alice_first[0] == client_event_uuid("fp-alice", "1764579600000_a1b2c3d4e5f6g")
    assert _iso(alice_first[3]) == "2025-12-01T09:00:00+00:00"
    assert alice_first[4:8] == (
        "page_view",
        "google",
        "mobile",
        "203.0.113.0" + ("/32" if "postgres" in storage_url else ""),
    )
    properties = alice_first[8] if isinstance(alice_first[8], dict) else json.loads(alice_first[8])
    assert properties == {"title": "Home", "geo_country": "GB", "geo_city": "London"}
    assert alice_first[9] == "u-1"
    steps = [r for r in events.values() if r[2] == "journey_step"]
    assert len(steps) == 3 and all(r[1].startswith("customer_journeys:") for r in steps)

    assert profile(storage_url, "fp-alice") == {
        "total_events": 7,
        "total_sessions": 1,
        "total_page_views": 1,
        "bookings_started": 1,
        "total_bookings": 1,
    }
    assert profile(storage_url, "fp-bob")["total_events"] == 2
    touchpoints = query(
        storage_url, "SELECT touchpoints, stage FROM customer_journeys WHERE session_id = 's-a1'"
    )
    points = (
        touchpoints[0][0] if isinstance(touchpoints[0][0], list) else json.loads(touchpoints[0][0])
    )
    assert [p["type"] for p in points] == [
        "page_view",
        "service_view",
        "service_detail",
        "booking_started",
        "booking_form",
        "booking_completed",
        "booking_complete",
    ]
    assert points[4]["time_spent_seconds"] == 120.25 and points[4]["actions_taken"] == {
        "form_fields": 6
    }
    assert touchpoints[0][1] == "booking"
    assert query(
        storage_url, "SELECT event_count FROM analytics_sessions WHERE session_id = 's-a1'"
    ) == [(7,)]
    assert len(query(storage_url, "SELECT 1 FROM rejected_events")) == 2
    assert not list(tmp_path.glob("revivatech-import-*.json"))  # complete: no checkpoint left

    before = snapshot(storage_url)
    code, out, err = run_import(tmp_path, storage_url, source, "--no-progress")
    assert code == 0, out + err
    assert summary_counts(out) == {EVENTS_TABLE: (8, 0, 6, 2), JOURNEYS_TABLE: (3, 0, 3, 0)}
    assert err == ""
    after = snapshot(storage_url)
    for table in ("events", "profiles", "sessions", "journeys"):
        assert after[table] == before[table], table


@pytest.mark.postgres
def test_bad_arguments_exit_2_and_an_unreachable_source_1(tmp_path, sqlite_url, closed_port_url):
    assert run_import(tmp_path, sqlite_url, "mysql://nope")[0] == 2
    assert run_import(tmp_path, sqlite_url, closed_port_url, "--chunk-size", "0")[0] == 2
    assert (
        run_import(tmp_path, sqlite_url, closed_port_url, "--source-timezone", "Mars/Olympus")[0]
        == 2
    )
    code, out, err = run_import(
        tmp_path, sqlite_url, closed_port_url.replace("postgres@", "postgres:pw-x@")
    )
    assert code == 1
    assert "cannot read the source" in err and "pw-x" not in out + err


BULK = 5_000


def _interrupted(tmp_path: Path, destination: str, source: str, signum: int) -> None:
    """Start an import in chunks of 200 rows and send ``signum`` once its first chunk is
    checkpointed."""
    work = tmp_path / f"run-{signum}"
    work.mkdir()
    process = import_command(
        work, destination, source, "--chunk-size", "200", "--state", "state.json"
    )
    deadline = time.monotonic() + 60
    while not (work / "state.json").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode in (1, -signal.SIGKILL), out + err
    if signum != signal.SIGKILL:
        assert "interrupted: run the same command again to resume" in out, out + err
        read = sum(c[0] for c in summary_counts(out).values())
        assert 0 < read < BULK, out
    state = json.loads((work / "state.json").read_text())
    assert "s3cret" not in json.dumps(state)
    code, out, err = run_import(
        work, destination, source, "--chunk-size", "200", "--state", "state.json"
    )
    assert code == 0, out + err
    assert "resuming from state.json" in err
    assert ("warning: the last run was killed" in err) == (signum == signal.SIGKILL)
    assert "(2 runs)" in out
    counts = summary_counts(out)
    assert sum(c[0] for c in counts.values()) == 8 + 3 + BULK + BULK // 25
    assert not (work / "state.json").exists()


@pytest.mark.postgres
def test_an_interrupted_import_resumes_to_the_same_database(tmp_path, original, new_database):
    insert_history(original, bulk=BULK)
    source = original.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    whole, stopped, killed = new_database(), new_database(), new_database()
    started = time.monotonic()
    code, out, err = run_import(tmp_path, whole, source, "--chunk-size", "200")
    took = time.monotonic() - started
    assert code == 0, out + err
    rows = 8 + 3 + BULK + BULK // 25
    print(
        f"import of {rows:,} rows into PostgreSQL: {took:.1f} s, {rows / took:,.0f} rows/s"
        " (process included)"
    )
    expected = snapshot(whole)
    assert len(expected["events"]) == 6 + 3 + BULK + BULK // 25

    _interrupted(tmp_path, stopped, source, signal.SIGTERM)
    assert (
        snapshot(stopped) == expected
    )  # profiles, sessions and journeys too: nothing counted twice

    # Killed outright: the events are all there after the resume (profile deltas the dead
    # process had not written are lost, as for serve; see docs/operations.md).
    _interrupted(tmp_path, killed, source, signal.SIGKILL)
    assert snapshot(killed)["events"] == expected["events"]

"""Migration 0003 (journeys and scores) on a database that already holds 0002's data: each
``visitor_sessions`` row becomes a ``customer_journeys`` row, and the table goes. Both engines.

The database is first migrated to 0002 only, with the shipped 0001 and 0002 files copied into a
folder of their own (``open_storage(..., migrations_dir=...)``); the normal storage then applies
0003 on top (same files, same checksums).
"""

from __future__ import annotations

import importlib.resources
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.storage import open_storage
from revivatech_actors.storage.migrations import MIGRATIONS_PACKAGE

from .helpers import BASE_TIME, make_event, query

STARTED = BASE_TIME
LAST = BASE_TIME + timedelta(minutes=7)


def engine_folder(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def stamp(url: str, moment: datetime) -> object:
    """A timestamp as the engine stores it (SQLite: fixed-width UTC text)."""
    if url.startswith("sqlite"):
        from revivatech_actors.storage.sqlite import format_timestamp

        return format_timestamp(moment)
    return moment


def execute(url: str, statements: list[tuple[str, tuple]]) -> None:
    """Run write statements straight on the database, in one transaction."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                for sql, params in statements:
                    conn.execute(sql.replace("%s", "?"), params)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


@pytest.fixture
def up_to_0002(storage_url, tmp_path):
    """A folder with the shipped migrations 0001 and 0002 of the engine, nothing later."""
    shipped = importlib.resources.files(MIGRATIONS_PACKAGE).joinpath(engine_folder(storage_url))
    folder = tmp_path / "up-to-0002"
    folder.mkdir()
    names = sorted(entry.name for entry in shipped.iterdir() if entry.name.endswith(".sql"))
    assert names[:3] == [
        "0001_init.sql",
        "0002_visitor_rollups.sql",
        "0003_journeys_and_scores.sql",
    ]
    for name in names[:2]:
        (folder / name).write_bytes(shipped.joinpath(name).read_bytes())
    return folder


async def test_visitor_sessions_become_journeys(storage_url, up_to_0002):
    async with open_storage(storage_url, migrations_dir=up_to_0002) as old:
        assert [m.version for m in await old.migrate()] == [1, 2]
        assert "visitor_sessions" in await old.table_names()

    # what 0002's writers left: a profile counting 3 sessions, 2 of them with analytics_sessions
    # rows
    def s(moment):
        return stamp(storage_url, moment)

    insert_session = (
        "INSERT INTO analytics_sessions (session_id, user_fingerprint, started_at,"
        " last_activity_at, event_count, page_views) VALUES (%s, %s, %s, %s, %s, %s)"
    )
    insert_profile = (
        "INSERT INTO user_behavior_profiles (user_fingerprint, total_events, total_sessions,"
        " total_page_views, first_seen, last_seen, days_active, event_counts)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    execute(
        storage_url,
        [
            (insert_session, ("m-s1", "m", s(STARTED), s(LAST), 2, 2)),
            (
                insert_session,
                (
                    "m-s2",
                    "m",
                    s(STARTED + timedelta(days=1)),
                    s(STARTED + timedelta(days=1, seconds=30)),
                    1,
                    1,
                ),
            ),
            (
                insert_profile,
                (
                    "m",
                    4,
                    3,
                    4,
                    s(STARTED),
                    s(STARTED + timedelta(days=1, seconds=30)),
                    2,
                    '{"page_view": 4}',
                ),
            ),
            (
                "INSERT INTO visitor_active_days (user_fingerprint, day) VALUES (%s, %s)",
                ("m", "2026-11-01"),
            ),
            (
                "INSERT INTO visitor_active_days (user_fingerprint, day) VALUES (%s, %s)",
                ("m", "2026-11-02"),
            ),
            (
                "INSERT INTO visitor_sessions (user_fingerprint, session_id) VALUES (%s, %s)",
                ("m", "m-s1"),
            ),
            (
                "INSERT INTO visitor_sessions (user_fingerprint, session_id) VALUES (%s, %s)",
                ("m", "m-s2"),
            ),
            (
                "INSERT INTO visitor_sessions (user_fingerprint, session_id) VALUES (%s, %s)",
                ("m", "m-orphan"),
            ),
            (
                "INSERT INTO visitor_sessions (user_fingerprint, session_id) VALUES (%s, %s)",
                ("n", "n-s1"),
            ),
        ],
    )

    before = datetime.now(UTC) - timedelta(seconds=5)  # the database clock is not ours
    async with open_storage(storage_url) as storage:
        assert [m.version for m in await storage.migrate()][0] == 3  # and what came after it
        after = datetime.now(UTC) + timedelta(seconds=5)
        tables = await storage.table_names()
        assert "visitor_sessions" not in tables
        assert "customer_journeys" in tables
        assert [m.version for m in await storage.applied_migrations()][:3] == [1, 2, 3]

        journeys = {j.session_id: j for j in await storage.load_journeys("m")}
        assert set(journeys) == {"m-s1", "m-s2", "m-orphan"}
        assert (journeys["m-s1"].started_at, journeys["m-s1"].updated_at) == (STARTED, LAST)
        assert journeys["m-s2"].started_at == STARTED + timedelta(days=1)
        assert journeys["m-s2"].updated_at == STARTED + timedelta(days=1, seconds=30)
        orphan = journeys[
            "m-orphan"
        ]  # no analytics_sessions row: stamped with the migration's time
        assert before <= orphan.started_at <= after and before <= orphan.updated_at <= after
        for j in journeys.values():  # journeys without touchpoints, stage or sources
            assert (j.touchpoints, j.stage, j.first_touch_source, j.last_touch_source) == (
                [],
                None,
                None,
                None,
            )
        assert [j.session_id for j in await storage.load_journeys("n")] == ["n-s1"]
        keys = await storage.visitor_keys("m")
        assert keys.sessions == {"m-s1", "m-s2", "m-orphan"}
        assert len(keys.days) == 2

        profile = (await storage.load_profiles(["m"]))["m"]
        assert (profile.total_sessions, profile.days_active, profile.total_events) == (3, 2, 4)
        assert profile.total_session_seconds == pytest.approx(7 * 60 + 30)
        assert (profile.segment, profile.scores) == (None, {})

        # a migrated session is not counted again; a new one is
        more = make_event(
            0, user_fingerprint="m", session_id="m-s1", timestamp=LAST + timedelta(seconds=10)
        )
        await storage.write_batch([more])
        state = (await storage.apply_profile_deltas([delta_from_events("m", [more])]))["m"]
        assert (state.total_sessions, state.days_active, state.total_events) == (3, 2, 5)
        journey = {j.session_id: j for j in await storage.load_journeys("m")}["m-s1"]
        assert journey.stage == "awareness"
        assert len(journey.touchpoints) == 1
        assert (journey.started_at, journey.updated_at) == (STARTED, LAST + timedelta(seconds=10))
        fresh = make_event(
            0, user_fingerprint="m", session_id="m-s3", timestamp=STARTED + timedelta(days=2)
        )
        await storage.write_batch([fresh])
        state = (await storage.apply_profile_deltas([delta_from_events("m", [fresh])]))["m"]
        assert (state.total_sessions, state.days_active) == (4, 3)

        # the scorer's column exists and works on migrated profiles
        assert [p.user_fingerprint for p in await storage.profiles_to_rescore(BASE_TIME, 10)] == [
            "m"
        ]
    assert query(storage_url, "SELECT count(*) FROM customer_journeys") == [(5,)]


async def test_0003_on_an_empty_0002_database(storage_url, up_to_0002):
    async with open_storage(storage_url, migrations_dir=up_to_0002) as old:
        await old.migrate()
    async with open_storage(storage_url) as storage:
        assert [m.version for m in await storage.migrate()][0] == 3  # and what came after it
        assert "visitor_sessions" not in await storage.table_names()
        assert await storage.load_journeys("anyone") == []
        assert await storage.migrate() == []

"""The write path (``Storage.write_batch``): one contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, timedelta

import attrs
import pytest

from revivatech_actors.messages import DeadLetter, Status
from revivatech_actors.storage import StorageError, StorageUnavailable, open_storage

from .helpers import BASE_TIME, make_event, query


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def statuses(outcomes):
    return [outcome.status for outcome in outcomes]


async def test_events_are_stored_with_every_field(storage, storage_url):
    event = make_event(
        1,
        sent_at=BASE_TIME,
        referrer="https://search.example/?q=repair",
        value=149.5,
        properties={"device": "iPhone 15", "nested": {"a": [1, 2]}},
    )
    outcomes = await storage.write_batch([event])
    assert statuses(outcomes) == [Status.STORED]
    rows = query(
        storage_url,
        "SELECT event_id, user_fingerprint, session_id, event_type, page_url, referrer, value,"
        " properties FROM analytics_events",
    )
    assert len(rows) == 1
    event_id, fingerprint, session, event_type, page, referrer, value, properties = rows[0]
    assert (str(event_id), fingerprint, session, event_type) == (
        event.event_id,
        "user-1",
        "session-1",
        "page_view",
    )
    assert (page, referrer, value) == (event.page_url, event.referrer, 149.5)
    properties = properties if isinstance(properties, dict) else json.loads(properties)
    assert properties == {"device": "iPhone 15", "nested": {"a": [1, 2]}}


def a_letter(n: int = 0) -> DeadLetter:
    return DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "", "message": "x"},),
        payload=f'{{"n": {n}}}',
    )


# PostgreSQL writes events alone in one statement, and events with dead letters in a
# transaction (COPY, then the insert): every store test runs both ways.
WAYS = pytest.mark.parametrize(
    "with_letters", [False, True], ids=["events alone", "with dead letters"]
)


@WAYS
@pytest.mark.parametrize("size", [5, 150])
async def test_replayed_ids_are_duplicates_and_stored_once(
    storage, storage_url, size, with_letters
):
    letters = iter(range(100))

    def write(events):
        return storage.write_batch(events, [a_letter(next(letters))] if with_letters else [])

    events = [make_event(n) for n in range(size)]
    assert statuses(await write(events)) == [Status.STORED] * size
    fresh = make_event(10_000)
    assert statuses(await write([events[2], fresh, events[4]])) == [
        Status.DUPLICATE,
        Status.STORED,
        Status.DUPLICATE,
    ]
    assert statuses(await write([fresh, events[4], fresh, make_event(10_001)])) == [
        Status.DUPLICATE,
        Status.DUPLICATE,
        Status.DUPLICATE,
        Status.STORED,
    ]
    assert statuses(await write(events)) == [Status.DUPLICATE] * size
    assert query(storage_url, "SELECT count(*) FROM analytics_events") == [(size + 2,)]


@WAYS
async def test_a_repeat_inside_one_batch_is_stored_once(storage, storage_url, with_letters):
    event = make_event(1)
    outcomes = await storage.write_batch(
        [event, make_event(2), event], [a_letter()] if with_letters else []
    )
    assert statuses(outcomes) == [Status.STORED, Status.STORED, Status.DUPLICATE]
    assert query(storage_url, "SELECT count(*) FROM analytics_events") == [(2,)]


@WAYS
async def test_the_events_commit_writes_no_session_rows(storage, storage_url, with_letters):
    """Session rows are the profile writer's (test_storage_profiles.py): the events' own commit
    stays one insert."""
    size = 150
    await storage.write_batch(
        [make_event(n) for n in range(size)], [a_letter()] if with_letters else []
    )
    assert query(storage_url, "SELECT count(*) FROM analytics_events") == [(size,)]
    assert query(storage_url, "SELECT count(*) FROM analytics_sessions") == [(0,)]


async def test_dead_letters_are_committed_with_the_batch(storage, storage_url):
    letter = DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "event_type", "message": "is required"},),
        payload='{"user_fingerprint": "u"}',
    )
    outcomes = await storage.write_batch([make_event(1)], [letter])
    assert statuses(outcomes) == [Status.STORED]
    rows = query(storage_url, "SELECT source, reasons, payload FROM rejected_events")
    assert len(rows) == 1
    source, reasons, payload = rows[0]
    reasons = reasons if isinstance(reasons, list) else json.loads(reasons)
    assert (source, reasons, payload) == (
        "validation",
        [{"field": "event_type", "message": "is required"}],
        letter.payload,
    )
    # writing the same letter again (a retry after a lost commit reply) keeps it once;
    # dead letters alone are a valid batch too
    assert await storage.write_batch([], [letter]) == []
    assert query(storage_url, "SELECT count(*) FROM rejected_events") == [(1,)]
    await storage.write_batch([], [attrs.evolve(letter, letter_id=str(uuid.uuid4()))])
    assert query(storage_url, "SELECT count(*) FROM rejected_events") == [(2,)]


def unstorable(storage) -> str:
    """A string this engine's database refuses: PostgreSQL text cannot hold NUL; SQLite (through
    Python) cannot encode a lone surrogate."""
    return "bad\x00fingerprint" if storage.engine == "postgresql" else "bad\ud800fingerprint"


@WAYS
@pytest.mark.parametrize("size", [40, 200])
async def test_refused_rows_are_isolated_and_the_rest_is_committed(
    storage, storage_url, size, with_letters
):
    bad = unstorable(storage)
    events = [make_event(n) for n in range(size)]
    bad_positions = [3, 17, 18, size - 1]
    for n in bad_positions:
        events[n] = make_event(n, user_fingerprint=bad)
    outcomes = await storage.write_batch(events, [a_letter()] if with_letters else [])
    rejected = [n for n, outcome in enumerate(outcomes) if outcome.status is Status.REJECTED]
    assert rejected == bad_positions
    assert all(outcomes[n].reason.startswith("refused by the database") for n in rejected)
    assert statuses(outcomes).count(Status.STORED) == size - 4
    assert query(storage_url, "SELECT count(*) FROM analytics_events") == [(size - 4,)]
    letters = query(
        storage_url,
        "SELECT source, payload FROM rejected_events WHERE source = 'database' ORDER BY id",
    )
    assert len(letters) == 4
    assert query(
        storage_url, "SELECT count(*) FROM rejected_events WHERE source = 'validation'"
    ) == [(int(with_letters),)]
    assert {json.loads(payload)["event_id"] for _, payload in letters} == {
        events[n].event_id for n in rejected
    }


async def test_a_refused_row_next_to_dead_letters_still_commits_them(storage, storage_url):
    letter = DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "", "message": "x"},),
        payload="{}",
    )
    outcomes = await storage.write_batch(
        [make_event(1, session_id=unstorable(storage)), make_event(2)], [letter]
    )
    assert statuses(outcomes) == [Status.REJECTED, Status.STORED]
    assert sorted(query(storage_url, "SELECT source FROM rejected_events")) == [
        ("database",),
        ("validation",),
    ]


async def test_timestamps_round_trip_in_utc(storage, storage_url):
    event = make_event(1, timestamp=BASE_TIME + timedelta(microseconds=123456))
    await storage.write_batch([event])
    (stored,) = query(storage_url, "SELECT event_timestamp FROM analytics_events")[0]
    text = stored if isinstance(stored, str) else stored.astimezone(UTC).isoformat()
    assert text.startswith("2026-11-01T12:00:00.123456")


async def test_writing_to_a_closed_storage_is_unavailable(storage_url):
    storage = open_storage(storage_url)
    with pytest.raises(StorageUnavailable):
        await storage.write_batch([make_event(1)])


# --- PostgreSQL: events alone are written from the event loop (non-blocking libpq) -----------


async def test_a_batch_larger_than_the_socket_buffers_is_stored_whole(postgres_url):
    # ~2.5 MB of JSON: sending it waits for the socket to drain many times over.
    events = [make_event(n, properties={"blob": "x" * 1200}) for n in range(2000)]
    async with open_storage(postgres_url) as storage:
        await storage.migrate()
        assert statuses(await storage.write_batch(events)) == [Status.STORED] * 2000
    assert query(
        postgres_url, "SELECT count(*), min(length(properties->>'blob')) FROM analytics_events"
    ) == [(2000, 1200)]


async def test_a_write_cancelled_mid_statement_leaves_storage_usable_and_stores_once(postgres_url):
    import psycopg
    import trio

    first, second = make_event(1), make_event(2)
    async with open_storage(postgres_url) as storage:
        await storage.migrate()
        await storage.write_batch([make_event(0)])  # connected
        blocker = psycopg.connect(postgres_url)
        blocker.execute("LOCK TABLE analytics_events IN SHARE MODE")  # inserts wait for it

        async def release_later() -> None:
            await trio.sleep(3)
            await trio.to_thread.run_sync(blocker.rollback)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(release_later)
                began = trio.current_time()
                with trio.move_on_after(0.5) as scope:
                    await storage.write_batch([first])
                waited = trio.current_time() - began
        finally:
            blocker.close()
        assert (
            scope.cancelled_caught and waited < 2
        )  # returned at its deadline, not when the lock went
        # The cancelled statement's connection was closed: the next write reconnects, and the
        # cancelled event, written again, is in the table once however its statement ended.
        assert statuses(await storage.write_batch([second])) == [Status.STORED]
        assert statuses(await storage.write_batch([first]))[0] in (Status.STORED, Status.DUPLICATE)
    assert query(
        postgres_url, "SELECT count(*), count(DISTINCT event_id) FROM analytics_events"
    ) == [(3, 3)]


def alter(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


async def test_a_statement_error_that_is_not_about_rows_is_a_storage_error(postgres_url):
    async with open_storage(postgres_url) as storage:
        await storage.migrate()
        await storage.write_batch([make_event(0)])
        alter(postgres_url, "ALTER TABLE analytics_events RENAME TO analytics_events_gone")
        with pytest.raises(StorageError, match="analytics_events") as caught:
            await storage.write_batch([make_event(1)])
        assert not isinstance(caught.value, StorageUnavailable)
        alter(postgres_url, "ALTER TABLE analytics_events_gone RENAME TO analytics_events")
        assert statuses(await storage.write_batch([make_event(1)])) == [
            Status.STORED
        ]  # the connection was kept


async def test_events_carry_only_the_indexes_queries_use(storage, storage_url):
    # Each index of analytics_events is paid for by every stored event (0004 dropped the one by
    # visitor); the log's (0007) is where the profiles read what they have not applied.
    if storage_url.startswith("sqlite"):
        sql = (
            "SELECT name FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'analytics_events' AND sql IS NOT NULL"
        )
    else:
        sql = (
            "SELECT indexname FROM pg_indexes"
            " WHERE tablename = 'analytics_events' AND indexname <> 'analytics_events_pkey'"
        )
    assert sorted(name for (name,) in query(storage_url, sql)) == [
        "analytics_events_event_timestamp_idx",
        "analytics_events_log_idx",
        "analytics_events_type_time_idx",
    ]

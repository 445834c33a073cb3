"""The data lifecycle in storage (``purge_step``, ``erase_visitor``, ``rejected_page``): one
contract, both engines, checked by reading the database directly."""

from __future__ import annotations

from datetime import timedelta

import orjson
import psycopg
import pytest
import trio

from revivatech_actors.domain.partitions import partition_of
from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.domain.retention import ERASED_TABLES
from revivatech_actors.domain.scoring import LEAD, Score, ScoreRecord
from revivatech_actors.messages import DeadLetter
from revivatech_actors.storage import LeaseLost, open_storage
from revivatech_actors.storage._records import PartitionPosition

from .helpers import BASE_TIME, make_event, query

CUTOFF = BASE_TIME - timedelta(days=30)
OLD = CUTOFF - timedelta(days=5)
LEAD_SCORE = Score(LEAD, 10.0, 0.5, ())


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def count(url: str, table: str, where: str = "TRUE", params: tuple = ()) -> int:
    return query(
        url, f"SELECT count(*) FROM {table} WHERE {where}".replace("TRUE", "1 = 1"), params
    )[0][0]


async def own_all(storage, partitions: int = 2) -> dict[int, PartitionPosition]:
    await storage.ensure_partitions(partitions)
    return {
        c.partition: c
        for c in (await storage.lease_round("a", partitions=partitions, ttl=30)).claimed
    }


async def write(storage, claims, fp, events, txn, *, horizon=None):
    """Apply ``fp``'s ``events`` (stored by ``txn``) as the owner of its partition, moving that
    partition's horizon past ``txn`` (or to ``horizon``); returns the partition's new position."""
    claim = claims[partition_of(fp, len(claims))]
    moved = PartitionPosition(
        claim.partition,
        claim.epoch,
        claim.writes,
        txn + 1 if horizon is None else horizon,
        frozenset(),
    )
    await storage.apply_profile_deltas(
        [delta_from_events(fp, events)], positions=[moved], owner="a", return_rows=False
    )
    claims[claim.partition] = PartitionPosition(
        claim.partition, claim.epoch, claim.writes + 1, moved.horizon, frozenset()
    )


async def purge_all(storage, table, *, limit):
    """Every batch of ``table``'s purge; the rows each deleted."""
    steps, resume = [], None
    while True:
        step = await storage.purge_step(table, CUTOFF, limit=limit, resume=resume)
        steps.append(step.deleted)
        if step.resume is None:
            return steps
        resume = step.resume


async def test_old_events_are_deleted_in_batches_only_below_their_partitions_horizon(
    storage, storage_url
):
    claims = await own_all(
        storage, 4
    )  # partitions without events stay at horizon 0: they hold nothing back
    fps = ["left", "right-1", "right-2"]
    assert partition_of("left", 4) not in {partition_of(fp, 4) for fp in fps[1:]}
    old = {
        fp: [
            make_event(
                i, user_fingerprint=fp, session_id=f"{fp}-s", timestamp=OLD + timedelta(minutes=i)
            )
            for i in range(3)
        ]
        for fp in fps
    }
    txn = (await storage.commit_batch([e for events in old.values() for e in events])).log_txn
    recent = [make_event(0, user_fingerprint="left", session_id="left-new", timestamp=BASE_TIME)]
    await storage.commit_batch(recent)
    # Nothing applied yet: a replay needs every event, however old.
    assert await purge_all(storage, "analytics_events", limit=2) == [0]
    # left's partition is past them, the others' not: only left's go.
    await write(storage, claims, "left", old["left"], txn)
    assert await purge_all(storage, "analytics_events", limit=2) == [2, 1]
    assert count(storage_url, "analytics_events", "user_fingerprint <> %s", ("left",)) == 6
    for fp in fps[1:]:
        await write(storage, claims, fp, old[fp], txn)
    assert await purge_all(storage, "analytics_events", limit=4) == [4, 2]
    assert count(storage_url, "analytics_events") == 1  # the recent event stays
    assert query(
        storage_url,
        "SELECT total_events FROM user_behavior_profiles WHERE user_fingerprint = %s",
        ("left",),
    ) == [(3,)]  # profiles keep their totals


async def test_old_sessions_and_journeys_go_and_profiles_keep_their_session_time(
    storage, storage_url
):
    claims = await own_all(storage, 1)
    events = [
        make_event(
            0,
            user_fingerprint="v",
            session_id=f"v-s{k}",
            timestamp=OLD + timedelta(days=k, minutes=m),
        )
        for k in range(3)
        for m in (0, 10)
    ]
    events += [
        make_event(
            0, user_fingerprint="v", session_id="v-new", timestamp=BASE_TIME + timedelta(minutes=m)
        )
        for m in (0, 5)
    ]
    txn = (await storage.commit_batch(events)).log_txn
    await write(storage, claims, "v", events, txn)
    before = (await storage.load_profiles(["v"]))["v"]
    assert before.total_session_seconds == pytest.approx(3 * 600 + 300)
    # by key: [v-new, v-s0], [v-s1, v-s2], then nothing more
    assert await purge_all(storage, "analytics_sessions", limit=2) == [1, 2, 0]
    journeys = await purge_all(storage, "customer_journeys", limit=3)
    assert sum(journeys) == 3 and len(journeys) == 2
    assert query(storage_url, "SELECT session_id FROM analytics_sessions") == [("v-new",)]
    assert query(storage_url, "SELECT session_id FROM customer_journeys") == [("v-new",)]
    after = (await storage.load_profiles(["v"]))["v"]
    assert after.total_session_seconds == pytest.approx(before.total_session_seconds)
    assert (after.total_sessions, after.total_events, after.days_active) == (
        4,
        8,
        before.days_active,
    )


async def test_old_predictions_and_dead_letters_are_deleted_and_recent_ones_kept(
    storage, storage_url
):
    claims = await own_all(storage, 1)
    events = [make_event(0, user_fingerprint="p", timestamp=BASE_TIME)]
    txn = (await storage.commit_batch(events)).log_txn
    await write(storage, claims, "p", events, txn)
    for at in (OLD, OLD + timedelta(hours=1), OLD + timedelta(hours=2), BASE_TIME):
        await storage.record_scores([ScoreRecord("p", at, "new", (LEAD_SCORE,), 1)])
    letters = [
        DeadLetter(
            received_at=at,
            source="validation",
            reasons=({"field": "x", "message": "bad"},),
            payload=f'{{"n": {i}}}',
        )
        for i, at in enumerate((OLD, OLD, BASE_TIME))
    ]
    await storage.commit_batch([], letters)
    assert count(storage_url, "ml_predictions") == 4
    assert await purge_all(storage, "ml_predictions", limit=2) == [2, 1]
    assert await purge_all(storage, "rejected_events", limit=5) == [2]
    assert count(storage_url, "ml_predictions") == 1 and count(storage_url, "rejected_events") == 1
    with pytest.raises(ValueError, match="not a purged table"):
        await storage.purge_step("user_behavior_profiles", CUTOFF, limit=10)


async def test_erasing_a_visitor_removes_every_row_of_it_and_fences_its_partition(
    storage, storage_url
):
    claims = await own_all(storage, 2)
    gone = [make_event(i, user_fingerprint="gone", session_id=f"gone-s{i % 2}") for i in range(4)]
    kept = [make_event(i, user_fingerprint="kept", session_id="kept-s") for i in range(2)]
    txn = (await storage.commit_batch(gone + kept)).log_txn
    await write(storage, claims, "gone", gone, txn)
    if partition_of("kept", 2) != partition_of("gone", 2):
        await write(storage, claims, "kept", kept, txn)
    else:
        await write(storage, claims, "kept", kept, txn, horizon=txn + 1)
    await storage.record_scores([ScoreRecord("gone", BASE_TIME, "new", (LEAD_SCORE,), 1)])
    letter = DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "event_type", "message": "x"},),
        payload='{"user_fingerprint":"gone","event_type":""}',
    )
    other = DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "event_type", "message": "x"},),
        payload='{"user_fingerprint":"gone-too","event_type":""}',
    )
    await storage.commit_batch([], [letter, other])
    # The owner of gone's partition has applied more of gone's events, not written yet.
    late = [make_event(9, user_fingerprint="gone", session_id="gone-s9")]
    late_txn = (await storage.commit_batch(late)).log_txn
    mine = claims[partition_of("gone", 2)]

    removed = await storage.erase_visitor("gone", partition_of("gone", 2))
    assert list(removed) == list(ERASED_TABLES)
    assert removed == {
        "analytics_events": 5,
        "analytics_sessions": 2,
        "customer_journeys": 2,
        "visitor_active_days": 1,
        "ml_predictions": 1,
        "user_behavior_profiles": 1,
        "rejected_events": 1,
    }
    for table in ERASED_TABLES[:-1]:
        assert count(storage_url, table, "user_fingerprint = %s", ("gone",)) == 0, table
    assert count(storage_url, "rejected_events") == 1  # "gone-too" is another visitor
    assert count(storage_url, "user_behavior_profiles", "user_fingerprint = %s", ("kept",)) == 1
    assert count(storage_url, "analytics_events", "user_fingerprint = %s", ("kept",)) == 2
    # The owner's stale deltas can no longer be written: the partition is fenced.
    stale = PartitionPosition(mine.partition, mine.epoch, mine.writes, late_txn + 1, frozenset())
    with pytest.raises(LeaseLost):
        await storage.apply_profile_deltas(
            [delta_from_events("gone", late)], positions=[stale], owner="a"
        )
    assert count(storage_url, "user_behavior_profiles", "user_fingerprint = %s", ("gone",)) == 0
    # An unknown visitor: zero counts.
    assert await storage.erase_visitor("nobody", partition_of("nobody", 2)) == dict.fromkeys(
        ERASED_TABLES, 0
    )


async def test_erasing_a_fingerprint_with_a_nul_character_removes_its_dead_letters(
    storage, storage_url
):
    # PostgreSQL cannot hold NUL in text, so no event of such a visitor was stored there; its dead
    # letters were (JSON escapes the character). The erasure was a 503 "storage unavailable".
    fp = "nul\x00visitor"
    letter = DeadLetter(
        received_at=BASE_TIME,
        source="validation",
        reasons=({"field": "event_type", "message": "x"},),
        payload=orjson.dumps({"user_fingerprint": fp, "event_type": ""}).decode(),
    )
    await storage.commit_batch([], [letter])
    removed = await storage.erase_visitor(fp, partition_of(fp, 2))
    assert removed == {**dict.fromkeys(ERASED_TABLES, 0), "rejected_events": 1}
    assert count(storage_url, "rejected_events") == 0


async def test_dead_letters_page_newest_first_with_a_cursor(storage):
    letters = [
        DeadLetter(
            received_at=BASE_TIME + timedelta(seconds=i),
            source="validation",
            reasons=({"field": "event_type", "message": f"bad {i}"},),
            payload=f'{{"n": {i}}}',
        )
        for i in range(5)
    ]
    for letter in letters:
        await storage.commit_batch([], [letter])
    first = await storage.rejected_page(2)
    assert [r.payload for r in first] == ['{"n": 4}', '{"n": 3}']
    assert first[0].reasons == [{"field": "event_type", "message": "bad 4"}]
    assert first[0].received_at == BASE_TIME + timedelta(seconds=4) and first[0].times_received == 1
    rest = await storage.rejected_page(10, first[-1].id)
    assert [r.payload for r in rest] == ['{"n": 2}', '{"n": 1}', '{"n": 0}']
    assert await storage.rejected_page(10, rest[-1].id) == []


async def test_an_erasure_waits_for_a_score_record_in_flight_and_deletes_it(postgres_url):
    async with open_storage(postgres_url) as storage:
        await storage.migrate()
        claims = await own_all(storage, 1)
        events = [make_event(0, user_fingerprint="scored")]
        txn = (await storage.commit_batch(events)).log_txn
        await write(storage, claims, "scored", events, txn)
        with psycopg.connect(
            postgres_url
        ) as scorer:  # a record in flight: its prediction not committed yet
            scorer.execute(
                "INSERT INTO ml_predictions (user_fingerprint, model_type, prediction_value)"
                " VALUES ('scored', 'lead_scoring', 10)"
            )
            removed = {}

            async def erase():
                removed.update(await storage.erase_visitor("scored", 0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(erase)
                await trio.sleep(0.5)
                assert not removed  # waiting for the record
                await trio.to_thread.run_sync(scorer.commit)
        assert removed["ml_predictions"] == 1 and removed["user_behavior_profiles"] == 1
        assert count(postgres_url, "ml_predictions") == 0

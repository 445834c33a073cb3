"""The event log as storage keeps it: positions safe against transactions that commit out of
order, partitions and their leases, writes of derived state fenced by ownership, on both engines."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
import trio

from revivatech_actors.domain.partitions import Cursor, partition_of, slot_of, target_share
from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.storage import StorageError, open_storage
from revivatech_actors.storage._errors import LeaseLost, PartitionsMismatch
from revivatech_actors.storage._records import PartitionPosition

from .helpers import make_event, query


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def execute(url: str, sql: str, params: tuple = ()) -> None:
    if url.startswith("sqlite:///"):
        query(url, sql, params)
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql, params)


def position(claim, *, horizon=None, applied=frozenset(), writes=None) -> PartitionPosition:
    return PartitionPosition(
        claim.partition,
        claim.epoch,
        claim.writes if writes is None else writes,
        claim.horizon if horizon is None else horizon,
        applied,
    )


def test_the_slot_is_md5_based_and_the_same_everywhere():
    digest = hashlib.md5(b"visitor-42").digest()
    assert slot_of("visitor-42") == int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    assert (
        slot_of("visitor-42") == 1531752443
    )  # `echo -n visitor-42 | md5sum`: db4caffb..., top bit cleared
    # growing to a multiple splits a partition without moving a visitor between the old ones
    for fp in (f"v{n}" for n in range(200)):
        assert partition_of(fp, 64) % 16 == partition_of(fp, 16)


def test_a_cursor_covers_what_it_applied_and_moves_past_it():
    cursor = Cursor(0, horizon=100)
    assert cursor.covers(99) and not cursor.covers(100)
    cursor.mark(105)
    assert cursor.covers(105) and not cursor.covers(104) and cursor.moved
    cursor.moved = False
    cursor.advance(103, noted=False)  # 105 still applied above the horizon: nothing forgotten
    assert (cursor.horizon, cursor.applied, cursor.moved) == (103, {105}, False)
    cursor.advance(110, noted=False)
    assert (cursor.horizon, cursor.applied, cursor.moved) == (110, set(), True)
    assert target_share(64, 3) == 22 and target_share(64, 0) == 64


async def test_a_transaction_that_commits_late_is_not_skipped(postgres_url):
    """Transaction ids are not handed out in commit order: a reader that moved past a later one
    that committed first would never see the earlier one. The log reads only below the oldest
    transaction in flight, so concurrent writers lose nothing and nothing is read twice."""
    async with open_storage(postgres_url) as storage:
        await storage.migrate()
        await storage.ensure_partitions(1)
        (claim,) = (await storage.lease_round("reader", partitions=1, ttl=30)).claimed
        cursor = Cursor(0, claim.horizon, epoch=claim.epoch)

        reading = trio.Lock()  # one reader per partition, as its owner is

        async def read() -> list[str]:
            async with reading:
                page = await storage.read_log(
                    [position(claim, horizon=cursor.horizon, applied=frozenset(cursor.applied))],
                    1,
                )
                for entry in page.entries:
                    cursor.mark(entry.txn)
                cursor.advance(page.horizon)
                return [entry.event_id for entry in page.entries]

        late = make_event(0, user_fingerprint="late")
        with psycopg.connect(postgres_url) as slow:  # takes its transaction id first, commits last
            slow.execute("BEGIN")
            slow.execute(
                "INSERT INTO analytics_events (event_id, user_fingerprint, session_id, event_type,"
                " event_timestamp, received_at, log_slot, log_seq)"
                " VALUES (%s, 'late', 's', 'page_view', now(), now(), %s, 0)",
                (late.event_id, slot_of("late")),
            )
            seen: list[str] = []
            written: list[str] = []

            async def writer(n: int) -> None:
                async with open_storage(postgres_url) as own:
                    for k in range(10):
                        events = [make_event(k, user_fingerprint=f"w{n}-{k}") for _ in range(3)]
                        await own.write_batch(events)
                        written.extend(e.event_id for e in events)
                        seen.extend(await read())

            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(writer, n)
            seen.extend(await read())
            assert late.event_id not in seen  # still in flight: nothing at or above it was passed
            slow.execute("COMMIT")
        # Any transaction in flight on the server (another test's) holds the horizon back too:
        # read until everything came, then check nothing came twice.
        with trio.fail_after(10):
            while len(set(seen)) < len(written) + 1:
                seen.extend(await read())
                await trio.sleep(0.01)
    assert sorted(seen) == sorted([*written, late.event_id])  # every event once


async def test_events_come_back_in_log_order_whole_transactions_by_page(storage):
    await storage.ensure_partitions(2)
    claims = (await storage.lease_round("me", partitions=2, ttl=30)).claimed
    batches = [
        [make_event(10 * b + i, user_fingerprint=f"v{i}") for i in range(5)] for b in range(4)
    ]
    txns = [(await storage.commit_batch(batch)).log_txn for batch in batches]
    assert txns == sorted(txns) and len(set(txns)) == 4
    positions = [position(c) for c in claims]
    with trio.fail_after(10):  # a transaction in flight anywhere on the server holds the log back
        while (await storage.read_log(positions, 2)).horizon <= txns[-1]:
            await trio.sleep(0.05)
    page = await storage.read_log(positions, 2, limit=12)  # 12 events: two whole transactions
    assert page.more and [e.event_id for e in page.entries] == [
        e.event_id for b in batches[:2] for e in b
    ]
    assert page.horizon == txns[2]
    rest = await storage.read_log([position(c, horizon=page.horizon) for c in claims], 2)
    assert not rest.more and [e.event_id for e in rest.entries] == [
        e.event_id for b in batches[2:] for e in b
    ]
    skip = await storage.read_log([position(c, applied=frozenset(txns[:3])) for c in claims], 2)
    assert [e.event_id for e in skip.entries] == [e.event_id for e in batches[3]]
    skipped = await storage.read_log(
        positions, 2, skip=[txns[1], txns[2]]
    )  # brought by the fast path
    assert [e.event_id for e in skipped.entries] == [
        e.event_id for b in (batches[0], batches[3]) for e in b
    ]
    only = await storage.read_log(
        [position(c) for c in claims if c.partition == partition_of("v1", 2)], 2
    )
    assert {e.user_fingerprint for e in only.entries} == {
        f"v{i}" for i in range(5) if partition_of(f"v{i}", 2) == partition_of("v1", 2)
    }


async def test_a_write_of_derived_state_is_fenced_and_a_retry_is_recognised(storage, storage_url):
    await storage.ensure_partitions(2)
    claims = {
        c.partition: c for c in (await storage.lease_round("a", partitions=2, ttl=30)).claimed
    }
    events = [make_event(n, user_fingerprint="fenced") for n in range(3)]
    txn = (await storage.commit_batch(events)).log_txn
    mine = claims[partition_of("fenced", 2)]
    positions = [position(mine, applied=frozenset({txn}))]
    delta = delta_from_events("fenced", events)
    await storage.apply_profile_deltas([delta], positions=positions, owner="a", return_rows=False)
    # the reply was lost, say: the same call again applies nothing twice
    assert await storage.apply_profile_deltas([delta], positions=positions, owner="a") == {}
    assert query(storage_url, "SELECT total_events FROM user_behavior_profiles") == [(3,)]
    # another owner took the partition over (its lease expired): a's late write is refused whole
    execute(storage_url, "UPDATE profile_leases SET lease_until = NULL, owner = NULL")
    execute(storage_url, "DELETE FROM profile_owners WHERE owner = 'a'")
    taken = (await storage.lease_round("b", partitions=2, ttl=30)).claimed
    assert {c.partition: c.epoch for c in taken} == {0: 2, 1: 2}
    with pytest.raises(LeaseLost) as lost:
        await storage.apply_profile_deltas([delta], positions=[position(mine, writes=1)], owner="a")
    assert lost.value.partitions == {mine.partition}
    assert query(storage_url, "SELECT total_events FROM user_behavior_profiles") == [(3,)]


async def test_leases_are_shared_renewed_taken_over_and_given_up(storage, storage_url):
    await storage.ensure_partitions(8)
    first = await storage.lease_round("a", partitions=8, ttl=30)
    assert sorted(first.owned) == list(range(8)) and first.owners == 1
    second = await storage.lease_round("b", partitions=8, ttl=30)
    assert second.owned == {} and second.owners == 2  # all taken; a gives up half at its next round
    again = await storage.lease_round("a", partitions=8, ttl=30, release=[4, 5, 6, 7])
    assert sorted(again.owned) == [0, 1, 2, 3] and again.claimed == []
    second = await storage.lease_round("b", partitions=8, ttl=30)
    assert sorted(second.owned) == [4, 5, 6, 7] and {c.epoch for c in second.claimed} == {2}
    # a stops renewing: once its leases expire, b takes them at its next round
    execute(storage_url, "UPDATE profile_leases SET lease_until = NULL WHERE owner = 'a'")
    execute(storage_url, "DELETE FROM profile_owners WHERE owner = 'a'")
    second = await storage.lease_round("b", partitions=8, ttl=30)
    assert sorted(second.owned) == list(range(8)) and second.owners == 1
    await storage.leave("b")
    assert query(storage_url, "SELECT count(*) FROM profile_leases WHERE owner IS NOT NULL") == [
        (0,)
    ]
    assert query(storage_url, "SELECT count(*) FROM profile_owners") == [(0,)]


async def test_partitions_only_grow_to_a_multiple_with_every_instance_stopped(storage, storage_url):
    await storage.ensure_partitions(4)
    await storage.ensure_partitions(4)  # the same count: nothing to do
    execute(
        storage_url,
        "UPDATE profile_partitions SET horizon = %s WHERE partition = 1",
        ("7" if storage_url.startswith("postgres") else 7,),
    )
    for count in (2, 6):
        with pytest.raises(PartitionsMismatch, match="can only grow, to a multiple of 4"):
            await storage.ensure_partitions(count)
    await storage.lease_round("a", partitions=4, ttl=30)
    with pytest.raises(PartitionsMismatch, match="every instance stopped"):
        await storage.ensure_partitions(8)
    await storage.leave("a")
    await storage.ensure_partitions(8)
    rows = query(
        storage_url,
        "SELECT partition, horizon FROM profile_partitions WHERE partition IN (1, 5) ORDER BY 1",
    )
    assert [(p, str(h)) for p, h in rows] == [
        (1, "7"),
        (5, "7"),
    ]  # each new partition at its parent's position
    assert isinstance(PartitionsMismatch("x"), StorageError)


async def test_a_visitor_view_is_the_stored_rows_and_the_log_they_do_not_reflect(storage):
    await storage.ensure_partitions(2)
    claims = {
        c.partition: c for c in (await storage.lease_round("a", partitions=2, ttl=30)).claimed
    }
    first = [make_event(n, user_fingerprint="seen") for n in range(2)]
    txn = (await storage.commit_batch(first)).log_txn
    mine = claims[partition_of("seen", 2)]
    await storage.apply_profile_deltas(
        [delta_from_events("seen", first)],
        owner="a",
        positions=[position(mine, applied=frozenset({txn}))],
    )
    later = [make_event(5, user_fingerprint="seen", session_id="later")]
    await storage.write_batch(later)
    view = await storage.visitor_view("seen", mine.partition)
    assert view.profile.total_events == 2 and [t.session_id for t in view.tail] == ["later"]
    assert view.keys.sessions == {e.session_id for e in first}
    nobody = await storage.visitor_view("nobody", partition_of("nobody", 2))
    assert (nobody.profile, nobody.tail, nobody.journeys) == (None, [], [])

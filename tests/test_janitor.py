"""The data lifecycle's rules (``domain.retention``) and the janitor actor on a real SQLite
database: nothing deleted with ``days = 0``, old rows deleted batch by batch with rests between
them, a storage error counted and the next pass starting over."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
import trio

from revivatech_actors.actors.janitor import JanitorActor
from revivatech_actors.domain.retention import (
    PURGED_TABLES,
    RejectedQuery,
    cutoff_of,
    pause_after,
    rejected_query,
)
from revivatech_actors.storage import open_storage
from revivatech_actors.storage._records import PartitionPosition

from .helpers import BASE_TIME, make_event, query

NOW = BASE_TIME + timedelta(days=100)


def test_no_cutoff_with_zero_days_and_days_back_otherwise():
    assert cutoff_of(NOW, 0) is None
    assert cutoff_of(NOW, 30) == NOW - timedelta(days=30)
    with pytest.raises(ValueError, match="days must be >= 0"):
        cutoff_of(NOW, -1)


def test_the_pause_keeps_the_busy_share():
    assert pause_after(0.02, 0.1) == pytest.approx(0.18)  # busy 0.02 of every 0.2 s
    assert pause_after(0.02, 1.0) == 0.0
    with pytest.raises(ValueError, match="max_share"):
        pause_after(0.02, 0.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, RejectedQuery(50, None)),
        ({"limit": "500", "cursor": "17"}, RejectedQuery(500, 17)),
        ({"limit": "1"}, RejectedQuery(1, None)),
    ],
)
def test_good_dead_letter_pages(args, expected):
    assert rejected_query(args) == expected


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ({"limit": "0"}, ["limit"]),
        ({"limit": "501"}, ["limit"]),
        ({"limit": "-1"}, ["limit"]),
        ({"limit": "²"}, ["limit"]),
        ({"cursor": "0"}, ["cursor"]),
        ({"cursor": "x"}, ["cursor"]),
        ({"cursor": "9" * 20}, ["cursor"]),
        ({"limit": "", "cursor": ""}, ["limit", "cursor"]),
    ],
)
def test_bad_dead_letter_pages_name_the_parameter(args, fields):
    problems = rejected_query(args)
    assert [p["field"] for p in problems] == fields
    assert all(repr(args[f]) in p["message"] for f, p in zip(fields, problems, strict=True))


@pytest.fixture
async def storage(sqlite_url):
    async with open_storage(sqlite_url) as storage:
        await storage.migrate()
        yield storage


async def old_events(storage, n: int) -> None:
    """``n`` events 60 days before NOW, applied by the owner of their one partition."""
    await storage.ensure_partitions(1)
    (claim,) = (await storage.lease_round("a", partitions=1, ttl=30)).claimed
    txn = (
        await storage.commit_batch(
            [
                make_event(i, user_fingerprint="v", timestamp=NOW - timedelta(days=60))
                for i in range(n)
            ]
        )
    ).log_txn
    await storage.apply_profile_deltas(
        [],
        positions=[PartitionPosition(0, claim.epoch, claim.writes, txn + 1, frozenset())],
        owner="a",
    )


async def test_zero_days_deletes_nothing(storage, sqlite_url):
    await old_events(storage, 3)
    janitor = JanitorActor(storage, days=0, now=lambda: NOW)
    assert await janitor.purge_pass() == dict.fromkeys(PURGED_TABLES, 0)
    assert query(sqlite_url, "SELECT count(*) FROM analytics_events") == [(3,)]
    assert janitor.stats_json()["enabled"] is False and janitor.stats.passes == 0


class Timed:
    """The real storage, noting when each purge batch began and ended (trio clock)."""

    def __init__(self, storage):
        self.storage, self.batches = storage, []

    async def purge_step(self, table, cutoff, *, limit, resume=None):
        began = trio.current_time()
        step = await self.storage.purge_step(table, cutoff, limit=limit, resume=resume)
        self.batches.append((table, began, trio.current_time(), step))
        return step


async def test_a_pass_deletes_in_batches_and_rests_between_them(storage, sqlite_url):
    await old_events(storage, 5)
    timed = Timed(storage)
    janitor = JanitorActor(timed, days=30, batch_size=2, max_share=0.2, now=lambda: NOW)
    deleted = await janitor.purge_pass()
    assert deleted["analytics_events"] == 5
    events = [b for b in timed.batches if b[0] == "analytics_events"]
    assert [b[3].deleted for b in events] == [2, 2, 1]
    assert len(timed.batches) == janitor.stats.batches == 3 + len(PURGED_TABLES) - 1
    # after a full batch, a rest of (1 / 0.2 - 1) = 4 times what it took before the next begins
    for (_, began, ended, _), (_, next_began, _, _) in pairwise(events):
        assert next_began - ended >= 4 * (ended - began) * 0.9
    assert query(sqlite_url, "SELECT count(*) FROM analytics_events") == [(0,)]
    stats = janitor.stats_json()
    assert (
        stats["deleted"]["analytics_events"] == 5
        and stats["lastPassDeleted"]["analytics_events"] == 5
    )
    assert stats["lastCutoff"] == (NOW - timedelta(days=30)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    assert stats["passes"] == 1 and stats["purging"] is False


async def test_a_storage_error_ends_the_pass_and_is_counted(storage, sqlite_url):
    await old_events(storage, 2)
    janitor = JanitorActor(storage, days=30, now=lambda: NOW)
    await storage.close()
    assert await janitor.purge_pass() == dict.fromkeys(PURGED_TABLES, 0)
    assert janitor.stats.failures == 1 and "closed" in janitor.stats.last_error
    await storage.open()
    assert (await janitor.purge_pass())["analytics_events"] == 2


async def test_the_actor_passes_every_interval_and_stops_when_asked(storage, sqlite_url):
    await old_events(storage, 1)
    janitor = JanitorActor(storage, days=30, interval=0.05, now=lambda: NOW)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(janitor.run)
            while janitor.stats.passes < 2:
                await trio.sleep(0.01)
            janitor.request_stop()  # run returns: the nursery closes
    assert query(sqlite_url, "SELECT count(*) FROM analytics_events") == [(0,)]
    assert janitor.stats.deleted["analytics_events"] == 1


async def test_a_stop_cuts_a_rest_short(storage):
    await old_events(storage, 4)
    janitor = JanitorActor(
        storage, days=30, batch_size=1, max_share=0.000_001, now=lambda: NOW
    )  # rests ~forever
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(janitor.purge_pass)
            while janitor.stats.batches < 1:
                await trio.sleep(0.01)
            janitor.request_stop()
    assert janitor.stats.batches == 1 and janitor.stats.deleted["analytics_events"] == 1

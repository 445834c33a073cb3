"""The scorer actor: records the scores that moved, within its time budget; rescores idle
visitors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from revivatech_actors.actors.scorer import ScorerActor
from revivatech_actors.config import load_settings
from revivatech_actors.domain.partitions import partition_of
from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.domain.scoring import CHURN, MODEL_TYPES
from revivatech_actors.messages import PartitionsTaken
from revivatech_actors.storage import open_storage
from revivatech_actors.storage.sqlite import format_timestamp

from .helpers import make_event, query

SETTINGS = load_settings(None, {}, {}).scoring


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


async def written(storage, visitor: str, *, days_ago: float = 0, events: int = 1):
    """Store ``events`` page views of ``visitor`` and return its profile as a write returns it."""
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    batch = [
        make_event(n, user_fingerprint=visitor, session_id=f"{visitor}-s", timestamp=moment)
        for n in range(events)
    ]
    return (await storage.apply_profile_deltas([delta_from_events(visitor, batch)]))[visitor]


def scorer(storage, **options) -> tuple[ScorerActor, trio.MemorySendChannel]:
    send, receive = trio.open_memory_channel(16)
    return ScorerActor(storage, receive, SETTINGS, **options), send


async def test_a_first_score_records_every_model_then_only_moves(storage, storage_url):
    actor, _ = scorer(storage)
    state = await written(storage, "v1")
    actor._waiting["v1"] = state
    assert await actor.score_waiting(budget=1.0) == 1
    rows = query(storage_url, "SELECT model_type FROM ml_predictions WHERE user_fingerprint = 'v1'")
    assert sorted(model for (model,) in rows) == sorted(MODEL_TYPES)
    stored = (await storage.load_profiles(["v1"]))["v1"]
    assert set(stored.scores) == set(MODEL_TYPES) and stored.segment == "new"
    actor._waiting["v1"] = stored  # nothing changed since: nothing new is recorded
    await actor.score_waiting(budget=1.0)
    assert (
        len(query(storage_url, "SELECT 1 FROM ml_predictions WHERE user_fingerprint = 'v1'")) == 4
    )
    assert actor.stats.scored == 2 and actor.stats.predictions == 4


async def test_the_budget_bounds_one_cycle_and_the_rest_waits_in_order(storage):
    actor, _ = scorer(storage)
    for n in range(50):
        actor._waiting[f"w{n}"] = await written(storage, f"w{n}")
    assert (
        await actor.score_waiting(budget=0.0) == 1
    )  # at least one per cycle, however small the budget
    assert actor.backlog == 49 and next(iter(actor._waiting)) == "w1"  # oldest first
    assert await actor.score_waiting(budget=5.0) == 49 and actor.backlog == 0


async def test_written_profiles_reach_the_scorer_and_are_recorded(storage, storage_url):
    actor, send = scorer(storage, interval=0.05)
    recorded = []
    actor.on_recorded = recorded.append
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await send.send([await written(storage, "live")])
        with trio.fail_after(3):
            while not recorded:
                await trio.sleep(0.02)
        actor.request_stop()
    assert recorded[0].user_fingerprint == "live" and len(recorded[0].recorded) == 4
    assert query(
        storage_url, "SELECT count(*) FROM ml_predictions WHERE user_fingerprint = 'live'"
    ) == [(4,)]


async def test_profiles_written_but_not_scored_before_a_crash_are_scored_when_taken(
    storage, storage_url
):
    """A process died between profile writes and the scorer's record: the instance that takes
    those partitions scores them first, and only those of the partitions it took."""
    visitors = [f"crash-{n}" for n in range(10)]
    first, _ = scorer(storage)
    for fp in visitors:
        first._waiting[fp] = await written(storage, fp)
    await first.score_waiting(budget=5.0)
    for fp in visitors:  # written again; the scorer that would have heard of it is gone
        await written(storage, fp, events=2)
    due = "SELECT user_fingerprint FROM user_behavior_profiles WHERE version > scored_version"
    assert sorted(fp for (fp,) in query(storage_url, due)) == visitors

    taken = {partition_of(visitors[0], 2)}
    mine = sorted(fp for fp in visitors if partition_of(fp, 2) in taken)
    actor, send = scorer(storage, interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await send.send(PartitionsTaken(frozenset(taken), 2))
        with trio.fail_after(5):
            while actor.stats.scored < len(mine):
                await trio.sleep(0.02)
        actor.request_stop()
    assert actor.stats.unscored_taken == len(mine)
    assert sorted(fp for (fp,) in query(storage_url, due)) == sorted(set(visitors) - set(mine))
    counts = dict(
        query(storage_url, "SELECT user_fingerprint, count(*) FROM ml_predictions GROUP BY 1")
    )
    assert all(counts[fp] > 4 for fp in mine)  # three events instead of one: engagement moved


async def test_churn_risk_of_an_idle_visitor_is_recomputed_without_new_events(storage, storage_url):
    actor, _ = scorer(storage, rescore_interval=0.001)
    state = await written(storage, "away", days_ago=1, events=3)
    actor._waiting["away"] = state
    await actor.score_waiting(budget=1.0)
    first = (await storage.load_profiles(["away"]))["away"].scores[CHURN]
    # months later, as storage sees it: move the visit back in time instead of waiting
    old = datetime.now(UTC) - timedelta(days=90)
    value = format_timestamp(old) if storage_url.startswith("sqlite") else old
    query(
        storage_url,
        "UPDATE user_behavior_profiles SET last_seen = %s, first_seen = %s RETURNING 1",
        (value, value),
    )
    await trio.sleep(0.01)
    await actor.score_waiting(budget=1.0)  # nothing waits: it asks storage for idle profiles
    assert actor.stats.rescored_idle >= 1
    later = (await storage.load_profiles(["away"]))["away"]
    assert later.scores[CHURN] > first + 10
    assert later.segment == "churned"


async def test_written_fingerprints_are_read_when_their_turn_comes(storage, storage_url):
    actor, send = scorer(storage, interval=0.05)
    for n in range(250):  # more than one read chunk
        await written(storage, f"fp{n}")
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await send.send([f"fp{n}" for n in range(250)] + ["fp0"])  # fp0 twice: scored once
        with trio.fail_after(5):
            while actor.stats.scored < 250:
                await trio.sleep(0.02)
        actor.request_stop()
    assert actor.stats.scored == 250
    assert query(storage_url, "SELECT count(DISTINCT user_fingerprint) FROM ml_predictions") == [
        (250,)
    ]

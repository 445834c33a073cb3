"""The ingest actor (``revivatech_actors.actors.ingest``): the admission budget, the memory of
recent client ids, event id generation, and the actor that converts and forwards submissions."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from revivatech_actors.actors.ingest import EventBudget, IngestActor, Overloaded, RecentIds
from revivatech_actors.domain.validation import ValidEvent, validate_event
from revivatech_actors.ids import new_event_ids
from revivatech_actors.messages import DeadLetter, Submission

RECEIVED_AT = datetime(2026, 11, 1, 12, 0, 0, 500000, tzinfo=UTC)
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def valid(**fields) -> ValidEvent:
    data = {"user_fingerprint": "fp-1", "session_id": "s-1", "event_type": "page_view", **fields}
    result = validate_event(data)
    assert isinstance(result, ValidEvent), result
    return result


def letter() -> DeadLetter:
    return DeadLetter(
        RECEIVED_AT, "validation", ({"field": "event_type", "message": "is required"},), "{}"
    )


# ------------------------------------------------------------------------------- EventBudget


async def test_budget_accounts_for_acquire_and_release():
    budget = EventBudget(10)
    await budget.acquire(3)
    await budget.acquire(7)
    assert budget.used == 10
    budget.release(3)
    assert budget.used == 7
    budget.release(7)
    assert budget.used == 0


async def test_budget_waiter_gets_room_when_released():
    budget = EventBudget(10)
    await budget.acquire(8)
    got = trio.Event()

    async def waiter():
        await budget.acquire(5)
        got.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not got.is_set()
        assert budget.used == 8
        budget.release(2)  # 6 used: still no room for 5
        await trio.testing.wait_all_tasks_blocked()
        assert not got.is_set()
        budget.release(3)  # 3 used: room
        await got.wait()
    assert budget.used == 3 + 5


async def test_budget_serves_waiters_in_arrival_order():
    """A large request queued first is not starved by small ones that arrive after it."""
    budget = EventBudget(10)
    await budget.acquire(6)
    order: list[str] = []

    async def acquire(name: str, amount: int) -> None:
        await budget.acquire(amount)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(acquire, "large", 10)
        await trio.testing.wait_all_tasks_blocked()
        # 4 units are free, enough for either small one, but the large one is first in line
        nursery.start_soon(acquire, "small-1", 4)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(acquire, "small-2", 4)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        assert budget.used == 6
        budget.release(6)
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["large"]
        assert budget.used == 10
        budget.release(10)  # room for both small ones: granted together, in line order
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == ["large", "small-1", "small-2"]
        assert budget.used == 8
        budget.release(8)
        # with only one fitting at a time, the first in line goes first
        await budget.acquire(6)
        nursery.start_soon(acquire, "medium-1", 6)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(acquire, "medium-2", 6)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(acquire, "tiny", 1)
        await trio.testing.wait_all_tasks_blocked()
        assert order[3:] == []
        budget.release(6)
        await trio.testing.wait_all_tasks_blocked()
        assert order[3:] == ["medium-1"]  # not tiny, although it would fit next to it
        assert budget.used == 6
        budget.release(6)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order[4:]) == ["medium-2", "tiny"]
    assert budget.used == 7


async def test_cancelled_acquire_reserves_nothing_and_wakes_the_next_waiter():
    budget = EventBudget(10)
    await budget.acquire(5)
    got_small = trio.Event()

    async def small():
        await budget.acquire(3)
        got_small.set()

    async with trio.open_nursery() as nursery:
        large_scope = trio.CancelScope()

        async def large():
            with large_scope:
                await budget.acquire(8)
            assert large_scope.cancelled_caught

        nursery.start_soon(large)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(small)  # waits behind the large one although 3 would fit
        await trio.testing.wait_all_tasks_blocked()
        assert not got_small.is_set()
        large_scope.cancel()
        with trio.fail_after(1):
            await got_small.wait()
    assert budget.used == 5 + 3
    budget.release(3)
    budget.release(5)
    assert budget.used == 0


async def test_acquire_cancelled_by_a_timeout_leaves_the_budget_untouched(autojump_clock):
    budget = EventBudget(4)
    await budget.acquire(4)
    with trio.move_on_after(1) as scope:
        await budget.acquire(1)
    assert scope.cancelled_caught
    assert budget.used == 4
    budget.release(4)
    await budget.acquire(4)  # the abandoned request left no queue entry behind
    assert budget.used == 4


async def test_an_amount_larger_than_capacity_is_clamped():
    budget = EventBudget(10)
    await budget.acquire(25)  # would wait forever without clamping
    assert budget.used == 10
    budget.release(25)
    assert budget.used == 0
    await budget.acquire(1)
    got = trio.Event()

    async def huge():
        await budget.acquire(1000)
        got.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(huge)
        await trio.testing.wait_all_tasks_blocked()
        assert not got.is_set()  # it needs the whole budget
        budget.release(1)
        await got.wait()
    assert budget.used == 10


# -------------------------------------------------------------------------------- RecentIds


def test_recent_ids_remembers_what_it_saw():
    ids = RecentIds(capacity=3)
    assert ids.seen("a") is False
    assert ids.seen("b") is False
    assert ids.seen("a") is True
    assert ids.seen("b") is True
    assert ids.seen("c") is False


def test_recent_ids_forgets_the_oldest_at_capacity():
    ids = RecentIds(capacity=3)
    for name in "abcd":  # d evicts a
        assert ids.seen(name) is False
    assert ids.seen("a") is False  # forgotten; now remembered again, evicting b
    assert ids.seen("c") is True
    assert ids.seen("d") is True
    assert ids.seen("b") is False


def test_recent_ids_moves_a_repeat_to_the_newest_end():
    ids = RecentIds(capacity=3)
    for name in "abc":
        ids.seen(name)
    assert ids.seen("a") is True  # a is now the newest; b is the oldest
    assert ids.seen("d") is False  # evicts b, not a
    assert ids.seen("a") is True
    assert ids.seen("c") is True
    assert ids.seen("b") is False


# ---------------------------------------------------------------------------- new_event_ids


def test_new_event_ids_are_canonical_uuid7():
    ids = new_event_ids(500)
    assert len(ids) == 500
    for text in ids:
        assert CANONICAL_UUID.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_new_event_ids_are_unique_and_sorted():
    ids = new_event_ids(2000)
    assert len(set(ids)) == 2000
    assert ids == sorted(ids)
    assert new_event_ids(0) == []
    assert len(new_event_ids(1)) == 1


def test_new_event_ids_carry_the_current_time():
    before = time.time_ns() // 1_000_000
    ids = new_event_ids(10)
    after = time.time_ns() // 1_000_000
    for text in ids:
        millis = int(text.replace("-", "")[:12], 16)  # the first 48 bits
        assert before <= millis <= after


def test_new_event_ids_of_separate_calls_differ():
    first, second = new_event_ids(100), new_event_ids(100)
    assert not set(first) & set(second)


# ------------------------------------------------------------------------------ IngestActor


@pytest.fixture
async def pipe(nursery):
    """A running ingest actor and the receiving end of its downstream channel."""
    send, receive = trio.open_memory_channel(100)
    budget = EventBudget(20)
    actor = IngestActor(send, budget, enqueue_timeout=0.5)
    await nursery.start(actor.run)
    return actor, receive, budget


async def test_submission_is_forwarded_converted(pipe):
    actor, downstream, budget = pipe
    client_id = str(uuid.uuid4())
    # the client's clock is one hour behind
    client_sent = RECEIVED_AT - timedelta(hours=1, seconds=0.25)
    client_time = client_sent - timedelta(seconds=10)
    server_time = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    submission = Submission(
        RECEIVED_AT,
        [
            valid(
                event_id=client_id.upper(),
                timestamp=client_time.isoformat(),
                sent_at=client_sent.isoformat(),
                page_url="https://x.example/a",
                value=12.5,
                properties={"k": "v"},
            ),
            valid(),  # no id, no timestamp
            valid(timestamp=server_time.isoformat()),  # timestamp without sent_at: taken as is
        ],
    )
    await actor.submit(submission)
    assert budget.used == 3
    with trio.fail_after(1):
        forwarded = await downstream.receive()
    assert forwarded is submission
    with trio.fail_after(1):
        await submission.queued.wait()
    assert not submission.done.is_set()  # that is the batcher's business
    first, second, third = submission.events

    assert first.event_id == client_id  # kept (in canonical lower case)
    assert first.timestamp == client_time + (RECEIVED_AT - client_sent)
    assert first.timestamp == RECEIVED_AT - timedelta(seconds=10)
    assert first.received_at == RECEIVED_AT
    assert first.sent_at == client_sent
    assert (first.user_fingerprint, first.session_id, first.event_type) == (
        "fp-1",
        "s-1",
        "page_view",
    )
    assert (first.page_url, first.value, first.properties) == (
        "https://x.example/a",
        12.5,
        {"k": "v"},
    )

    assigned = uuid.UUID(second.event_id)
    assert assigned.version == 7
    assert str(assigned) == second.event_id
    assert second.timestamp == RECEIVED_AT
    assert second.sent_at is None

    assert third.timestamp == server_time
    assert submission.seen_before == set()


async def test_assigned_ids_are_fresh_for_each_event(pipe):
    actor, downstream, _ = pipe
    submission = Submission(RECEIVED_AT, [valid() for _ in range(10)])
    await actor.submit(submission)
    with trio.fail_after(1):
        await downstream.receive()
    ids = [event.event_id for event in submission.events]
    assert len(set(ids)) == 10
    assert all(uuid.UUID(event_id).version == 7 for event_id in ids)


async def test_a_repeated_client_id_is_marked_seen_before(pipe):
    actor, downstream, _ = pipe
    repeated, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = Submission(RECEIVED_AT, [valid(event_id=repeated)])
    second = Submission(RECEIVED_AT, [valid(event_id=other), valid(), valid(event_id=repeated)])
    await actor.submit(first)
    await actor.submit(second)
    with trio.fail_after(1):
        assert await downstream.receive() is first
        assert await downstream.receive() is second
    assert first.seen_before == set()
    assert second.seen_before == {2}
    assert second.events[2].event_id == repeated  # still forwarded: the database decides


async def test_submit_is_refused_after_the_enqueue_timeout_when_full(autojump_clock):
    send, receive = trio.open_memory_channel(100)
    budget = EventBudget(5)
    actor = IngestActor(send, budget, enqueue_timeout=0.75)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.submit(Submission(RECEIVED_AT, [valid() for _ in range(4)]))
        assert budget.used == 4
        start = trio.current_time()
        with pytest.raises(Overloaded, match="full"):
            await actor.submit(Submission(RECEIVED_AT, [valid(), valid()]))
        assert trio.current_time() - start == pytest.approx(0.75)
        assert budget.used == 4  # nothing kept for the refused one
        # room given back by the batcher: the next one goes through at once
        budget.release(4)
        start = trio.current_time()
        small = Submission(RECEIVED_AT, [valid(), valid()])
        await actor.submit(small)
        assert trio.current_time() == start
        assert budget.used == 2
        assert (await receive.receive()).size == 4
        assert await receive.receive() is small
        nursery.cancel_scope.cancel()


async def test_submit_waits_for_room_within_the_timeout(autojump_clock):
    send, receive = trio.open_memory_channel(100)
    budget = EventBudget(5)
    actor = IngestActor(send, budget, enqueue_timeout=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.submit(Submission(RECEIVED_AT, [valid() for _ in range(5)]))

        async def release_later():
            await trio.sleep(0.4)
            budget.release(5)

        nursery.start_soon(release_later)
        start = trio.current_time()
        late = Submission(RECEIVED_AT, [valid()])
        await actor.submit(late)
        assert trio.current_time() - start == pytest.approx(0.4)
        assert budget.used == 1
        await receive.receive()
        assert await receive.receive() is late
        nursery.cancel_scope.cancel()


async def test_dead_letters_weigh_on_the_budget_and_pass_through(pipe):
    actor, downstream, budget = pipe
    submission = Submission(RECEIVED_AT, [valid()], [letter(), letter()])
    await actor.submit(submission)
    assert budget.used == 3
    with trio.fail_after(1):
        assert await downstream.receive() is submission
    assert len(submission.events) == 1
    assert len(submission.dead_letters) == 2


async def test_stop_forwards_what_is_queued_then_closes_downstream():
    send, receive = trio.open_memory_channel(100)
    budget = EventBudget(50)
    actor = IngestActor(send, budget)
    queued = [Submission(RECEIVED_AT, [valid(), valid()]) for _ in range(3)]
    # queued before the actor runs, so they are still in its inbox when it is told to stop
    for submission in queued:
        await actor.submit(submission)
    actor.request_stop()
    with pytest.raises(Overloaded, match="shutting down"):
        await actor.submit(Submission(RECEIVED_AT, [valid()]))
    assert budget.used == 6  # the refused one gave its room back
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            received = [await receive.receive() for _ in queued]
            with pytest.raises(trio.EndOfChannel):
                await receive.receive()
    # run returned by itself (the nursery closed without cancelling it)
    assert received == queued
    assert all(submission.queued.is_set() and len(submission.events) == 2 for submission in queued)
    with pytest.raises(Overloaded, match="shutting down"):
        await actor.submit(Submission(RECEIVED_AT, [valid()]))
    assert budget.used == 6


async def test_stop_while_idle_ends_run(pipe):
    actor, downstream, _ = pipe
    submission = Submission(RECEIVED_AT, [valid()])
    await actor.submit(submission)
    actor.request_stop()
    with trio.fail_after(1):
        assert await downstream.receive() is submission
        with pytest.raises(trio.EndOfChannel):
            await downstream.receive()


async def test_a_full_downstream_makes_submit_wait_and_a_closed_one_refuse():
    # In the service the batcher's inbox is as large as the budget, so this never happens there;
    # with a smaller channel, submit waits for room instead of dropping anything.
    send, receive = trio.open_memory_channel(1)
    budget = EventBudget(50)
    actor = IngestActor(send, budget)
    first, second = Submission(RECEIVED_AT, [valid()]), Submission(RECEIVED_AT, [valid(), valid()])
    await actor.submit(first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.submit, second)
        await trio.testing.wait_all_tasks_blocked()
        assert not second.queued.is_set() and budget.used == 3  # admitted, waiting for the channel
        assert await receive.receive() is first
        assert await receive.receive() is second
    assert second.queued.is_set()
    third = Submission(RECEIVED_AT, [valid()])
    await actor.submit(third)  # fills the channel again
    blocked = Submission(RECEIVED_AT, [valid()])
    async with trio.open_nursery() as nursery:

        async def refused() -> None:
            with pytest.raises(Overloaded, match="shutting down"):
                await actor.submit(blocked)

        nursery.start_soon(refused)
        await trio.testing.wait_all_tasks_blocked()
        await receive.aclose()  # the batcher is gone
    assert (
        budget.used == 4
    )  # first, second and third are held until committed; the refused one gave its room back


def test_offer_to_a_closed_downstream_is_refused_and_gives_its_room_back_once():
    send, receive = trio.open_memory_channel(10)
    receive.close()  # the batcher is gone
    budget = EventBudget(50)
    actor = IngestActor(send, budget)
    assert actor.offer(Submission(RECEIVED_AT, [valid(), valid()])) is False
    assert budget.used == 0
    assert budget.try_acquire(50)  # all of it is there, no more
    assert not budget.try_acquire(1)

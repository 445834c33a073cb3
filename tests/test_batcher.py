"""The batcher actor (``revivatech_actors.actors.batcher``) on real storage: group commit,
idempotency, dead letters, subscribers, retries while the database is away, and stopping.

An unreachable PostgreSQL is staged two ways: by closing the storage while the batcher holds
events (every engine), and with a small TCP proxy in front of the real server that can refuse
connections, or drop them just as the server acknowledges a COMMIT (the commit happened, the
client never hears of it).
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from datetime import timedelta

import attrs
import pytest
import trio
import trio.testing

from revivatech_actors.actors.batcher import BatcherActor
from revivatech_actors.actors.ingest import EventBudget, IngestActor, Overloaded
from revivatech_actors.domain.validation import ValidEvent, validate_event
from revivatech_actors.messages import DeadLetter, Event, Status, Submission
from revivatech_actors.storage import open_storage

from .helpers import BASE_TIME, make_event, query
from .tcp_proxy import PG_COMMIT_COMPLETE, PG_SELECT_1_COMPLETE, TcpProxy

STORED, DUPLICATE = Status.STORED, Status.DUPLICATE


# ------------------------------------------------------------------------------------- helpers


def as_valid(event: Event) -> ValidEvent:
    return ValidEvent(
        event.user_fingerprint,
        event.session_id,
        event.event_type,
        event.event_id,
        event.timestamp,
        event.sent_at,
        event.page_url,
        event.referrer,
        event.value,
        event.properties,
    )


def submission_of(events: list[Event], letters: list[DeadLetter] = ()) -> Submission:
    """A submission as ingest hands it on: ``incoming`` and the converted ``events``."""
    submission = Submission(BASE_TIME, [as_valid(event) for event in events], list(letters))
    submission.events = list(events)
    return submission


def events(count: int, start: int = 0) -> list[Event]:
    return [make_event(n) for n in range(start, start + count)]


def letter(n: int = 0) -> DeadLetter:
    return DeadLetter(
        BASE_TIME,
        "validation",
        ({"field": "event_type", "message": "is required"},),
        f'{{"n": {n}}}',
    )


def statuses(submission: Submission) -> list[Status]:
    return [outcome.status for outcome in submission.outcomes]


def count(url: str, table: str = "analytics_events") -> int:
    return query(url, f"SELECT count(*) FROM {table}")[0][0]


def stored_ids(url: str) -> list[str]:
    return sorted(str(row[0]) for row in query(url, "SELECT event_id FROM analytics_events"))


async def wait_until(predicate, timeout: float = 2.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


class Rig:
    """A batcher on a storage, with its inbox and budget, fed the way ingest feeds it."""

    def __init__(self, storage, *, capacity: int = 1000, channel: int = 1000, **options) -> None:
        self.storage = storage
        self.budget = EventBudget(capacity)
        self.send, inbox = trio.open_memory_channel(channel)
        self.batcher = BatcherActor(storage, inbox, self.budget, **options)

    async def submit(self, submission: Submission) -> Submission:
        await self.budget.acquire(submission.size)  # as IngestActor.submit does
        await self.send.send(submission)
        return submission

    def submit_nowait(self, submission: Submission) -> Submission:
        self.budget.used += min(
            submission.size, self.budget.capacity
        )  # nobody waits in these tests
        self.send.send_nowait(submission)
        return submission

    @contextlib.asynccontextmanager
    async def running(self, stop_within: float = 5.0):
        """Run the batcher for the block; then stop it and check that ``run`` returns in time."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.batcher.run)
            yield self.batcher
            self.batcher.request_stop()
            with trio.fail_after(stop_within):
                await self.send.aclose()
                # the nursery waits for run to return on its own (fail_after bounds it)
                while nursery.child_tasks:
                    await trio.sleep(0.005)


async def wait_done(*submissions: Submission, timeout: float = 2.0) -> None:
    with trio.fail_after(timeout):
        for submission in submissions:
            await submission.done.wait()


@pytest.fixture
async def storage(storage_url):
    storage = open_storage(storage_url)
    await storage.open()
    await storage.migrate()
    yield storage
    await storage.close()


@pytest.fixture
async def proxied_postgres(postgres_url, nursery):
    """A PostgreSQL storage (migrated) whose connections pass through a ``TcpProxy``."""
    proxy = TcpProxy("127.0.0.1", urllib.parse.urlsplit(postgres_url).port)
    await nursery.start(proxy.run)
    parts = urllib.parse.urlsplit(postgres_url)
    url = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    storage = open_storage(url, connect_timeout=2.0)
    await storage.open()
    await storage.migrate()
    yield proxy, storage
    await storage.close()


# ---------------------------------------------------------------------------- the basic path


async def test_one_submission_is_stored(storage, storage_url):
    rig = Rig(storage)
    async with rig.running() as batcher:
        submission = await rig.submit(submission_of(events(3)))
        await wait_done(submission)
        assert statuses(submission) == [STORED] * 3
        assert submission.failure is None
        assert rig.budget.used == 0
        assert batcher.held_events == 0
        assert batcher.stats.batches == 1
        assert (batcher.stats.events, batcher.stats.stored, batcher.stats.duplicates) == (3, 3, 0)
        assert batcher.stats.last_batch_size == 3
        assert batcher.activity.handled == 3
    assert stored_ids(storage_url) == sorted(event.event_id for event in submission.events)


async def test_batches_grow_with_load(storage, storage_url):
    """Submissions that arrive while a flush is in flight are written together by the next one."""
    rig = Rig(storage, max_events=2000)
    async with rig.running() as batcher:
        first = await rig.submit(submission_of(events(10)))
        await (
            trio.testing.wait_all_tasks_blocked()
        )  # the batcher took the first (usually still writing it)
        rest = [rig.submit_nowait(submission_of(events(10, start=10 * n))) for n in range(1, 50)]
        await wait_done(first, *rest)
        assert all(statuses(submission) == [STORED] * 10 for submission in [first, *rest])
        stats = batcher.stats
        assert stats.events == 500
        assert stats.batches < 50
        assert stats.largest_batch > 10
        assert rig.budget.used == 0
    assert count(storage_url) == 500


async def test_what_waits_before_the_start_is_one_batch(storage, storage_url):
    rig = Rig(storage, max_events=2000)
    waiting = [rig.submit_nowait(submission_of(events(10, start=10 * n))) for n in range(50)]
    async with rig.running() as batcher:
        await wait_done(*waiting)
        assert (batcher.stats.batches, batcher.stats.largest_batch) == (1, 500)
    assert count(storage_url) == 500


async def test_batch_size_is_capped(storage, storage_url):
    rig = Rig(storage, max_events=25)
    waiting = [rig.submit_nowait(submission_of(events(10, start=10 * n))) for n in range(50)]
    async with rig.running() as batcher:
        await wait_done(*waiting)
        assert all(statuses(submission) == [STORED] * 10 for submission in waiting)
        assert batcher.stats.largest_batch == 25
        assert batcher.stats.batches == 20  # 500 events, 25 at a time
        assert rig.budget.used == 0
    assert count(storage_url) == 500


async def test_a_large_submission_is_split_across_batches_in_order(storage, storage_url):
    rig = Rig(storage, max_events=25)
    feed = rig.batcher.subscribe()
    big = submission_of(events(60))
    async with rig.running() as batcher:
        await rig.submit(big)
        await wait_done(big)
        assert statuses(big) == [STORED] * 60
        assert batcher.stats.batches == 3
        assert batcher.stats.largest_batch == 25
        assert batcher.stats.last_batch_size == 10
        assert rig.budget.used == 0
        written: list[Event] = []
        while len(written) < 60:
            batch = feed.receive_nowait().events
            assert len(batch) <= 25
            written.extend(batch)
        assert written == big.events  # in the submission's order
    assert count(storage_url) == 60


async def test_a_submission_larger_than_the_budget_still_goes_through(storage, storage_url):
    rig = Rig(storage, capacity=20, max_events=25)
    big = submission_of(events(60))
    async with rig.running():
        await rig.submit(big)  # takes the whole budget (clamped)
        assert rig.budget.used == 20
        await wait_done(big)
        assert rig.budget.used == 0
    assert count(storage_url) == 60


# ------------------------------------------------------------------------------- idempotency


async def test_the_same_ids_again_are_duplicates(storage, storage_url):
    rig = Rig(storage)
    first_events = events(4)
    async with rig.running() as batcher:
        first = await rig.submit(submission_of(first_events))
        await wait_done(first)
        again = await rig.submit(submission_of([first_events[1], make_event(50), first_events[3]]))
        await wait_done(again)
        assert statuses(first) == [STORED] * 4
        assert statuses(again) == [DUPLICATE, STORED, DUPLICATE]
        assert (batcher.stats.stored, batcher.stats.duplicates) == (5, 2)
    assert count(storage_url) == 5


async def test_a_repeat_inside_one_batch_is_stored_then_duplicate(storage, storage_url):
    rig = Rig(storage)
    event, other = make_event(1), make_event(2)
    inside = rig.submit_nowait(submission_of([event, other, event]))
    # the same id in another submission that lands in the same batch
    later = rig.submit_nowait(submission_of([event]))
    async with rig.running() as batcher:
        await wait_done(inside, later)
        assert batcher.stats.batches == 1
        assert statuses(inside) == [STORED, STORED, DUPLICATE]
        assert statuses(later) == [DUPLICATE]
    assert count(storage_url) == 2


# ------------------------------------------------------------------------------ dead letters


async def test_dead_letters_alone_resolve_and_are_stored(storage, storage_url):
    rig = Rig(storage)
    async with rig.running():
        only_letters = await rig.submit(submission_of([], [letter(1), letter(2)]))
        assert rig.budget.used == 2
        await wait_done(only_letters)
        assert only_letters.failure is None
        assert rig.budget.used == 0
    assert sorted(query(storage_url, "SELECT source, payload FROM rejected_events")) == [
        ("validation", '{"n": 1}'),
        ("validation", '{"n": 2}'),
    ]
    assert count(storage_url) == 0


async def test_dead_letters_of_a_split_submission_are_written_once(storage, storage_url):
    rig = Rig(storage, max_events=5)
    mixed = submission_of(events(12), [letter(1), letter(2)])
    async with rig.running() as batcher:
        await rig.submit(mixed)
        await wait_done(mixed)
        assert statuses(mixed) == [STORED] * 12
        assert batcher.stats.batches == 3
        assert rig.budget.used == 0
    assert count(storage_url) == 12
    assert count(storage_url, "rejected_events") == 2


# ------------------------------------------------------------------------------- subscribers


async def test_subscribers_receive_the_stored_events_after_commit(storage, storage_url):
    rig = Rig(storage)
    feed = rig.batcher.subscribe()
    known, fresh = make_event(1), [make_event(2), make_event(3)]
    async with rig.running():
        first = await rig.submit(submission_of([known]))
        with trio.fail_after(2):
            assert (await feed.receive()).events == [known]
        assert count(storage_url) == 1  # committed before it was announced
        second = await rig.submit(submission_of([known, *fresh, fresh[0]]))
        with trio.fail_after(2):
            assert (await feed.receive()).events == fresh  # neither the old id nor the repeat
        assert count(storage_url) == 3
        await wait_done(first, second)
        letters_only = await rig.submit(submission_of([], [letter()]))
        await wait_done(letters_only)
        with pytest.raises(trio.WouldBlock):
            feed.receive_nowait()  # nothing stored, nothing announced
    with trio.fail_after(1):
        with pytest.raises(trio.EndOfChannel):
            await feed.receive()  # closed when the batcher ends


# ------------------------------------------------------------------------ database away


async def test_events_are_held_and_retried_while_the_storage_is_closed(storage, storage_url):
    rig = Rig(storage)
    warm = submission_of(events(2))
    async with rig.running() as batcher:
        await rig.submit(warm)
        await wait_done(warm)
        await storage.close()
        held = [
            await rig.submit(submission_of(events(5, start=10))),
            await rig.submit(submission_of(events(3, start=20), [letter()])),
        ]
        with trio.fail_after(3):
            await wait_until(lambda: batcher.stats.failed_flushes >= 3)
            assert not any(submission.done.is_set() for submission in held)
            # the batch being retried is held; the other may still wait in the inbox
            assert batcher.held_events in (5, 8)
            assert batcher.oldest_held() == held[0].received_at  # what the ingest lag gauge reads
            assert rig.budget.used == 9  # nothing given back before commit
            assert count(storage_url) == 2
            await storage.open()
            await wait_done(*held)
        failures = batcher.stats.failed_flushes
        assert all(
            outcome.status is STORED for submission in held for outcome in submission.outcomes
        )
        assert batcher.held_events == 0 and batcher.oldest_held() is None
        assert rig.budget.used == 0
        assert batcher.stats.duplicates == 0
        await trio.sleep(0.1)
        assert batcher.stats.failed_flushes == failures  # no more retries once through
    assert count(storage_url) == 10
    assert count(storage_url, "rejected_events") == 1


async def test_events_are_held_while_postgres_is_unreachable(proxied_postgres, postgres_url):
    proxy, storage = proxied_postgres
    rig = Rig(storage)
    feed = rig.batcher.subscribe()
    async with rig.running() as batcher:
        warm = await rig.submit(submission_of(events(1)))
        await wait_done(warm)
        assert len((await feed.receive()).events) == 1
        proxy.refuse()
        held = [await rig.submit(submission_of(events(4, start=10 * n))) for n in range(1, 4)]
        with trio.fail_after(5):
            await wait_until(lambda: batcher.stats.failed_flushes >= 3, timeout=4)
            assert proxy.refused >= 2  # reconnects were tried, and refused
            assert not any(submission.done.is_set() for submission in held)
            # the batch being retried is held; what came after it may still wait in the inbox
            assert 4 <= batcher.held_events <= 12
            assert rig.budget.used == 12
            assert count(postgres_url) == 1
            await proxy.switch_on()
            await wait_done(*held, timeout=4)
        assert [statuses(submission) for submission in held] == [[STORED] * 4] * 3
        assert batcher.held_events == 0
        assert rig.budget.used == 0
        announced = []
        while len(announced) < 12:
            announced.extend(feed.receive_nowait().events)
        assert sorted(event.event_id for event in announced) == sorted(
            event.event_id for submission in held for event in submission.events
        )
    assert count(postgres_url) == 13


@pytest.mark.parametrize("path", ["one statement", "transaction"])
async def test_a_commit_whose_acknowledgement_was_lost_counts_as_stored(
    proxied_postgres, postgres_url, path
):
    """The flush committed but the connection broke before the client heard it: the retry finds
    the ids stored, and the batcher reports them stored (its own attempt), once each. Events
    alone are one autocommitted statement; with a dead letter the write is a transaction (COPY,
    then an explicit COMMIT to lose)."""
    proxy, storage = proxied_postgres
    rig = Rig(storage)
    feed = rig.batcher.subscribe()
    size = 70
    with_letter = path == "transaction"
    submission = submission_of(events(size), [letter(1)] if with_letter else [])
    async with rig.running() as batcher:
        proxy.lose_next_answer(PG_COMMIT_COMPLETE if with_letter else PG_SELECT_1_COMPLETE)
        await rig.submit(submission)
        await wait_done(submission, timeout=4)
        assert proxy.answers_lost == 1
        assert batcher.stats.failed_flushes == 1
        assert statuses(submission) == [STORED] * size
        assert (batcher.stats.stored, batcher.stats.duplicates) == (size, 0)
        assert rig.budget.used == 0
        with trio.fail_after(1):
            assert (await feed.receive()).events == submission.events
        # the next flush has no memory of that attempt: a replay is a duplicate again
        again = await rig.submit(submission_of(submission.events[:2]))
        await wait_done(again)
        assert statuses(again) == [DUPLICATE, DUPLICATE]
    assert count(postgres_url) == size


async def test_a_repeat_inside_one_batch_stays_a_duplicate_after_a_retry(storage, storage_url):
    """After a failed flush, only the first copy of an id in the batch can be the batcher's own
    earlier write: the second copy of a repeated id stays DUPLICATE and is announced once."""
    rig = Rig(storage)
    feed = rig.batcher.subscribe()
    event, other = make_event(1), make_event(2)
    async with rig.running() as batcher:
        await storage.close()
        submission = await rig.submit(submission_of([event, other, event]))
        await wait_until(lambda: batcher.stats.failed_flushes >= 1)
        await storage.open()
        await wait_done(submission, timeout=3)
        assert count(storage_url) == 2
        assert statuses(submission) == [STORED, STORED, DUPLICATE]
        assert (batcher.stats.stored, batcher.stats.duplicates) == (2, 1)
        assert feed.receive_nowait().events == [event, other]


async def test_a_replay_of_an_old_event_stays_a_duplicate_after_a_retry(storage, storage_url):
    """An event stored by an earlier, confirmed flush and sent again (a client retry, so a new
    request with a later ``received_at``) while the database is away stays DUPLICATE after the
    retry: only a row received at the very same instant is the batcher's own unconfirmed write."""
    rig = Rig(storage)
    feed = rig.batcher.subscribe()
    old = make_event(1)
    async with rig.running() as batcher:
        first = await rig.submit(submission_of([old]))
        await wait_done(first)
        assert feed.receive_nowait().events == [old]
        await storage.close()
        resent = attrs.evolve(old, received_at=old.received_at + timedelta(seconds=30))
        replay = await rig.submit(submission_of([resent, make_event(2)]))
        await wait_until(lambda: batcher.stats.failed_flushes >= 1)
        await storage.open()
        await wait_done(replay, timeout=3)
        assert count(storage_url) == 2
        assert statuses(replay) == [DUPLICATE, STORED]
        assert [event.event_id for event in feed.receive_nowait().events] == [
            replay.events[1].event_id
        ]


# ---------------------------------------------------------------------------------- stopping


async def test_stop_while_idle_ends_run_promptly(storage):
    rig = Rig(storage)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(rig.batcher.run)
            await trio.testing.wait_all_tasks_blocked()
            rig.batcher.request_stop()
    assert rig.batcher.stats.batches == 0


async def test_stop_writes_the_pending_events_first(storage, storage_url):
    rig = Rig(storage, max_events=10)
    waiting = [rig.submit_nowait(submission_of(events(7, start=10 * n))) for n in range(4)]
    rig.batcher.request_stop()  # before it even runs: what is in the inbox is still written
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(rig.batcher.run)
    assert all(
        submission.done.is_set() and statuses(submission) == [STORED] * 7 for submission in waiting
    )
    assert rig.batcher.stats.largest_batch <= 10
    assert rig.budget.used == 0
    assert count(storage_url) == 28


async def test_stop_while_the_database_is_away_waits_until_everything_is_written(
    storage, storage_url
):
    rig = Rig(storage)
    returned = trio.Event()

    async def run():
        await rig.batcher.run()
        returned.set()

    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await storage.close()
            held = await rig.submit(submission_of(events(5)))
            await wait_until(lambda: rig.batcher.stats.failed_flushes >= 2)
            rig.batcher.request_stop()
            await trio.sleep(0.1)
            assert not returned.is_set()  # events are never dropped, not even to stop
            assert not held.done.is_set()
            await storage.open()
    assert returned.is_set()
    assert statuses(held) == [STORED] * 5
    assert count(storage_url) == 5


async def test_closing_the_inbox_ends_run_after_writing_everything(storage, storage_url):
    rig = Rig(storage, max_events=8)
    feed = rig.batcher.subscribe()
    waiting = [
        rig.submit_nowait(submission_of(events(5, start=10 * n), [letter(n)])) for n in range(5)
    ]
    rig.send.close()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(rig.batcher.run)
    assert all(submission.done.is_set() for submission in waiting)
    assert [statuses(submission) for submission in waiting] == [[STORED] * 5] * 5
    assert rig.budget.used == 0
    assert count(storage_url) == 25
    assert count(storage_url, "rejected_events") == 5
    announced = []
    while True:
        try:
            announced.extend(feed.receive_nowait().events)
        except trio.EndOfChannel:
            break
    assert len(announced) == 25


# ---------------------------------------------------------------------------------- max_wait


def jump_when_idle(mock_clock) -> None:
    """Make trio's MockClock jump to the next deadline as soon as every task is blocked.

    Switched on in the test body, after the storage fixture opened the storage (its open() is
    bounded by a deadline that a jumping clock would reach at once). The batcher's storage calls
    run in threads with no deadline of their own, so while one runs the clock has nothing to jump
    to: the only deadline in these tests is max_wait's, and time moves only by it.
    """
    mock_clock.autojump_threshold = 0


async def test_a_lone_event_waits_max_wait_and_a_full_batch_does_not(
    mock_clock, storage, storage_url
):
    jump_when_idle(mock_clock)
    rig = Rig(storage, max_events=10, max_wait=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.batcher.run)

        start = trio.current_time()
        lone = await rig.submit(submission_of(events(1)))
        await lone.done.wait()
        assert trio.current_time() - start == pytest.approx(0.05)

        start = trio.current_time()
        full = await rig.submit(submission_of(events(10, start=100)))
        await full.done.wait()
        assert trio.current_time() - start == 0

        # a second event within max_wait joins the first one's batch
        start = trio.current_time()
        early = await rig.submit(submission_of(events(1, start=200)))
        await trio.sleep(0.03)
        late = await rig.submit(submission_of(events(1, start=300)))
        await early.done.wait()
        await late.done.wait()
        assert trio.current_time() - start == pytest.approx(0.05)
        assert rig.batcher.stats.batches == 3
        assert rig.batcher.stats.last_batch_size == 2

        rig.batcher.request_stop()
    assert count(storage_url) == 13


async def test_without_max_wait_a_lone_event_is_written_at_once(mock_clock, storage):
    jump_when_idle(mock_clock)
    rig = Rig(storage, max_events=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.batcher.run)
        start = trio.current_time()
        lone = await rig.submit(submission_of(events(1)))
        await lone.done.wait()
        assert trio.current_time() == start
        rig.batcher.request_stop()


# ------------------------------------------------------------------------ ingest in front


async def test_ingest_and_batcher_together(storage, storage_url):
    budget = EventBudget(100)
    to_batcher, batcher_inbox = trio.open_memory_channel(100)
    ingest = IngestActor(to_batcher, budget, enqueue_timeout=0.5)
    batcher = BatcherActor(storage, batcher_inbox, budget)
    client_id = str(uuid.uuid4())
    sent_at = BASE_TIME - timedelta(hours=1)  # the client's clock is an hour behind
    incoming = [
        validate_event(
            {
                "user_fingerprint": "fp",
                "session_id": "s",
                "event_type": "page_view",
                "event_id": client_id,
                "timestamp": (sent_at - timedelta(seconds=5)).isoformat(),
                "sent_at": sent_at.isoformat(),
            }
        ),
        validate_event(
            {"user_fingerprint": "fp", "session_id": "s", "event_type": "booking_started"}
        ),
    ]
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            await nursery.start(ingest.run)
            submission = Submission(BASE_TIME, incoming)
            await ingest.submit(submission)
            await wait_done(submission)
            assert statuses(submission) == [STORED, STORED]
            assert budget.used == 0
            replay = Submission(BASE_TIME + timedelta(seconds=1), incoming[:1])
            await ingest.submit(replay)
            await wait_done(replay)
            assert replay.seen_before == {0}
            assert statuses(replay) == [DUPLICATE]
            ingest.request_stop()  # ingest closes the batcher's inbox: both end
    rows = query(
        storage_url,
        "SELECT event_id, event_type, event_timestamp FROM analytics_events ORDER BY event_type",
    )
    assert len(rows) == 2
    (assigned_id, _, _), (kept_id, _, corrected) = rows
    assert str(kept_id) == client_id
    assert uuid.UUID(str(assigned_id)).version == 7
    corrected_text = corrected if isinstance(corrected, str) else corrected.isoformat()
    assert corrected_text.startswith(
        "2026-11-01T11:59:55"
    )  # BASE_TIME - 5 s, by the server's clock


async def test_a_full_budget_turns_submissions_away_while_the_database_is_away(
    storage, storage_url
):
    budget = EventBudget(10)
    to_batcher, batcher_inbox = trio.open_memory_channel(10)
    ingest = IngestActor(to_batcher, budget, enqueue_timeout=0.1)
    batcher = BatcherActor(storage, batcher_inbox, budget)

    def of(count_: int, start: int) -> Submission:
        return Submission(BASE_TIME, [as_valid(event) for event in events(count_, start)])

    with trio.fail_after(4):
        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            await nursery.start(ingest.run)
            await storage.close()
            held = [of(6, 0), of(4, 10)]
            for submission in held:
                await ingest.submit(submission)
            await wait_until(lambda: batcher.stats.failed_flushes >= 1)
            assert batcher.held_events > 0
            with pytest.raises(Overloaded):
                await ingest.submit(of(1, 20))
            assert budget.used == 10
            await storage.open()
            await wait_done(*held, timeout=3)
            assert budget.used == 0
            after = of(1, 30)
            await ingest.submit(after)
            await wait_done(after)
            ingest.request_stop()
    assert count(storage_url) == 11

"""The broadcaster: owns the live feed's subscriptions and fills each client's outbox.

Every WebSocket client has a :class:`ClientFeed`: a small bounded outbox that its connection's
writer task empties. The outbox keeps only the *latest* realtime snapshot and the latest
insights of each visitor the client follows (an older one not yet sent is replaced), plus a few
replies (``pong``, ``error``); so a slow client gets the newest state when it catches up, and
never makes the broadcaster, or any other client, wait. A client whose replies overflow, or
whose connection stays stuck on one send, is closed with 1013 by its writer.

``realtime_metrics`` goes to realtime subscribers every ``interval`` seconds, and when the
metrics change: at once when the feed is quiet, coalesced when it is busy (:func:`snapshot_due`).
A snapshot is *in flight* from the start of its build until every subscriber has sent it
(:meth:`Delivery.settle`; stragglers are waited for only a little: they get the newest snapshot
when they catch up, and ``stuck_timeout`` closes one that never does). The event loop thread's
CPU time over that span, up to the last send, is the snapshot's *cost* (time spent waiting for a
core behind other processes does not count), and it paces the next: never two in flight, and
the next starts ``max(min_interval, cost / max_share, clients / max_sends_per_second)`` after it
at the soonest. So a lone event reaches every dashboard at once, a burst within ``min_interval``
makes one snapshot, and with many clients under heavy ingest snapshots space out by what their
fan-out costs, in the event loop's time and in messages to send (the clients' and the network's
share), instead of falling behind. Each snapshot is encoded once for all, and written at once
to each client whose writer is idle when the web layer can (``ClientFeed.write_now``): no task
switch per client.
``user_insights`` goes to a visitor's subscribers when its scores are recorded (the scorer's
hook), read once per visitor for all of them. Without subscribers nothing is built.

A *public* client (a tokenless WebSocket under ``broadcast.public_realtime``) may follow the
realtime aggregates (top pages without query strings: :func:`public_realtime_document`) and never
a visitor; public clients have their own cap
(``max_public_clients``), so visitors' tabs never take the admins' places (``max_clients``).

With Redis (``shared``), changes cross instances on pub/sub: the metrics actor's additions to
the shared window announce themselves, and a recorded score is published instead of handled
here, so that every instance — this one included — hears of it the same way. While Redis
cannot be reached, recorded scores are handled here only.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson
import redis
import trio

from ..domain.realtime import public_realtime_document
from ..ids import new_id
from ..shared_state.realtime import RedisRealtime
from ..storage import StorageError
from ..supervisor import Activity

__all__ = [
    "FLUSH",
    "BroadcasterActor",
    "ClientFeed",
    "ClientRefused",
    "Delivery",
    "snapshot_due",
]

logger = logging.getLogger(__name__)

#: Replies (pong, error) a client may have waiting; one more and it is closed as stuck.
MAX_REPLIES = 32


class Flush(enum.Enum):
    """What :meth:`ClientFeed.next_message` returns when bytes written at once are left to send."""

    FLUSH = "flush"


FLUSH = Flush.FLUSH
#: Seconds the insights of one visitor may take to read before they are skipped.
INSIGHTS_READ_TIMEOUT = 5.0
#: WebSocket close codes.
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
#: Seconds without a send of a snapshot ending after which its unsent ones are stragglers (see
#: :meth:`Delivery.settle`), and the longest wait for the first send (every client stopped
#: reading).
STRAGGLER_WAIT = 0.1
FIRST_SEND_WAIT = 1.0


def snapshot_due(
    last_start: float,
    last_cost: float,
    last_sent: int = 0,
    *,
    min_interval: float,
    max_share: float,
    max_sends_per_second: float = 0.0,
) -> float:
    """When the next change-driven snapshot may start, the last having started at
    ``last_start``, cost ``last_cost`` seconds and gone to ``last_sent`` clients:
    ``min_interval`` after it (a burst of changes makes one snapshot), ``last_cost / max_share``
    after it (so snapshots take at most ``max_share`` of the event loop's time, whatever the
    number of clients), and ``last_sent / max_sends_per_second`` after it (so all clients
    together get at most that many snapshots per second; 0: no such bound)."""
    by_sends = last_sent / max_sends_per_second if max_sends_per_second > 0 else 0.0
    return last_start + max(min_interval, last_cost / max_share, by_sends)


class ClientRefused(Exception):
    """A new client is refused: ``error`` is ``too_many_clients`` (``max_clients`` admin clients,
    or ``max_public_clients`` public ones, are connected) or ``not_running`` (the service is
    starting or stopping)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


@attrs.define(eq=False)
class Delivery:
    """One snapshot's sends, one per subscriber it was put to, as its broadcaster awaits them."""

    cpu_clock: Callable[[], float] = time.thread_time
    expected: int = 0
    first_sent_at: float | None = None  # trio clock
    last_sent_at: float | None = None
    last_sent_cpu: float | None = None  # cpu_clock
    _first_sent: trio.Event = attrs.Factory(trio.Event)  # (or nothing left to wait for)
    _all_done: trio.Event = attrs.Factory(trio.Event)

    def expect(self) -> None:
        self.expected += 1

    def written_at_once(self) -> None:
        """Sends made without the writers (not expected) ended now."""
        self.last_sent_at, self.last_sent_cpu = trio.current_time(), self.cpu_clock()
        if self.first_sent_at is None:
            self.first_sent_at = self.last_sent_at
            self._first_sent.set()

    def finished(self, *, sent: bool) -> None:
        """One expected send ended: ``sent``, or given up (the client left, or a newer snapshot
        replaced this one before it was sent)."""
        self.expected -= 1
        if sent:
            self.last_sent_at, self.last_sent_cpu = trio.current_time(), self.cpu_clock()
            if self.first_sent_at is None:
                self.first_sent_at = self.last_sent_at
                self._first_sent.set()
        if self.expected == 0:
            self._first_sent.set()
            self._all_done.set()

    async def settle(self, put_at: float, *, straggler_wait: float, first_wait: float) -> None:
        """Return once every expected send ended, or the rest are stragglers: once as long again
        as the first send took has passed since it ended, and no send ended in the last
        ``straggler_wait`` seconds; or ``first_wait`` after ``put_at`` if no send ended at all.
        (The writers of one event loop take turns, so a large fan-out's sends may all end late
        and close together; one still going well after the others is a client that does not
        read, or reads slowly.) Wakes about once per ``straggler_wait``, not once per send."""
        while self.expected > 0:
            first, last = self.first_sent_at, self.last_sent_at
            if first is None or last is None:
                deadline, event = put_at + first_wait, self._first_sent
            else:
                deadline = max(first + (first - put_at), last + straggler_wait)
                event = self._all_done
            if trio.current_time() >= deadline:
                return
            with trio.move_on_at(deadline):
                await event.wait()


@attrs.define(eq=False)
class ClientFeed:
    """One WebSocket client's subscriptions and outbox (see the module docstring).
    ``write_now(text)``, when the web layer sets it, writes a message to the connection without
    waiting: None if it cannot now, else how many bytes are left for the writer to send (after
    :data:`FLUSH`)."""

    client_id: str
    public: bool = False  # tokenless: realtime aggregates only, never a visitor
    realtime: bool = False
    write_now: Callable[[str], int | None] | None = None
    fingerprints: set[str] = attrs.Factory(set)
    _replies: collections.deque[str] = attrs.field(init=False, factory=collections.deque)
    _snapshot: str | None = attrs.field(
        init=False, default=None
    )  # latest realtime_metrics not yet sent
    _insights: dict[str, str] = attrs.field(
        init=False, factory=dict
    )  # fingerprint -> latest user_insights
    _wake: trio.Event = attrs.field(init=False, factory=trio.Event)
    close_code: int | None = attrs.field(init=False, default=None)  # set: the writer closes with it
    close_reason: str = attrs.field(init=False, default="")
    replaced: int = attrs.field(
        init=False, default=0
    )  # messages replaced by newer ones before being sent
    _delivery: Delivery | None = attrs.field(init=False, default=None)  # of ``_snapshot``
    _handed: Delivery | None = attrs.field(
        init=False, default=None
    )  # of the snapshot the writer is sending
    _idle: bool = attrs.field(init=False, default=False)  # the writer waits for a message
    _flush: bool = attrs.field(init=False, default=False)  # bytes written at once are left

    def reply(self, message: dict[str, Any]) -> None:
        if len(self._replies) >= MAX_REPLIES:
            self.close(TRY_AGAIN_LATER, "too many replies waiting: the client does not read")
            return
        self._replies.append(encode(message))
        self._wake.set()

    def put_snapshot(self, encoded: str, delivery: Delivery | None = None) -> bool:
        """Put the latest snapshot; ``delivery`` hears when it has been sent. True if it was
        written whole at once (``delivery`` does not wait for it then)."""
        if self._idle and not self._wake.is_set() and self.write_now is not None:
            left = self.write_now(encoded)
            if left == 0:
                return True
            if left is not None:  # the rest is the writer's
                self._flush = True
                if delivery is not None:
                    delivery.expect()
                    self._handed = delivery
                self._wake.set()
                return False
        if self._snapshot is not None:
            self.replaced += 1
        if self._delivery is not None:
            self._delivery.finished(sent=False)
            self._delivery = None
        self._snapshot = encoded
        if delivery is not None:
            delivery.expect()
            self._delivery = delivery
        self._wake.set()
        return False

    def put_insights(self, fingerprint: str, encoded: str) -> None:
        if self._insights.pop(fingerprint, None) is not None:
            self.replaced += 1
        self._insights[fingerprint] = encoded
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._wake.set()

    def drop_insights(self, fingerprint: str) -> None:
        self._insights.pop(fingerprint, None)

    def release(self) -> None:
        """The writer is gone: nobody waits for its sends any more."""
        for delivery in (self._delivery, self._handed):
            if delivery is not None:
                delivery.finished(sent=False)
        self._delivery = self._handed = None

    async def next_message(self) -> str | Flush | None:
        """The next message to send (replies first, then the snapshot, then insights), waiting
        for one; None once the feed is to be closed (``close_code``); :data:`FLUSH` when the
        writer is to send what a write at once left. The writer calls it again only once it has
        sent the previous message: that is when a snapshot counts as sent."""
        if self._handed is not None:
            self._handed.finished(sent=True)
            self._handed = None
        while True:
            if self.close_code is not None:
                return None
            if self._flush:
                self._flush = False
                return FLUSH
            if self._replies:
                return self._replies.popleft()
            if self._snapshot is not None:
                snapshot, self._snapshot = self._snapshot, None
                self._handed, self._delivery = self._delivery, None
                return snapshot
            if self._insights:
                fingerprint = next(iter(self._insights))
                return self._insights.pop(fingerprint)
            self._wake = trio.Event()
            self._idle = True
            try:
                await self._wake.wait()
            finally:
                self._idle = False


@attrs.define(eq=False)
class BroadcasterActor:
    """See the module docstring. ``realtime_data`` builds a realtime snapshot's ``data``;
    ``wait_for_change(version)`` returns once the metrics moved past ``version``;
    ``insights_data(fingerprint)`` reads a visitor's insights (None: unknown visitor);
    ``cpu_clock`` measures snapshots' costs (tests give it trio's clock)."""

    realtime_data: Callable[[], Awaitable[dict[str, Any]]]
    wait_for_change: Callable[[int], Awaitable[int]]
    insights_data: Callable[[str], Awaitable[dict[str, Any] | None]]
    interval: float = 30.0
    min_interval: float = 0.05
    max_share: float = 0.5
    max_sends_per_second: float = 7500.0
    max_clients: int = 10_000
    max_public_clients: int = 1_000
    shared: RedisRealtime | None = None
    cpu_clock: Callable[[], float] = time.thread_time
    activity: Activity = attrs.Factory(Activity)
    clients: dict[str, ClientFeed] = attrs.field(init=False, factory=dict)
    public_clients: int = attrs.field(init=False, default=0)  # how many of ``clients`` are public
    _followers: dict[str, set[ClientFeed]] = attrs.field(
        init=False, factory=dict
    )  # fingerprint -> feeds
    _changed_visitors: set[str] = attrs.field(init=False, factory=set)
    _visitors_changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    _realtime_requested: trio.Event = attrs.field(init=False, factory=trio.Event)
    _remote_change: trio.Event = attrs.field(
        init=False, factory=trio.Event
    )  # another instance counted events
    _to_publish: set[str] = attrs.field(init=False, factory=set)
    _publish_wanted: trio.Event = attrs.field(init=False, factory=trio.Event)
    _last_snapshot: str | None = attrs.field(init=False, default=None)
    _last_public_snapshot: str | None = attrs.field(init=False, default=None)  # of the same data
    _last_start: float = attrs.field(init=False, default=float("-inf"))  # of the last snapshot
    _last_cost: float = attrs.field(init=False, default=0.0)  # its cost (cpu_clock seconds)
    _last_sent: int = attrs.field(init=False, default=0)  # how many clients it went to
    _building: bool = attrs.field(init=False, default=False)  # a snapshot's data is being read
    snapshots_sent: int = attrs.field(init=False, default=0)
    snapshots_written_at_once: int = attrs.field(init=False, default=0)  # of ``snapshots_sent``
    _running: bool = attrs.field(init=False, default=False)

    # ------------------------------------------------------------------ clients (web layer)

    def connect(self, *, public: bool = False) -> ClientFeed:
        """A feed for a new admin client (``public``: a tokenless one); raises ClientRefused past
        its cap (``max_clients`` or ``max_public_clients``) or while not running."""
        if not self._running:
            raise ClientRefused(
                "not_running", "the live feed is not running (the service is starting or stopping)"
            )
        if public and self.public_clients >= self.max_public_clients:
            raise ClientRefused(
                "too_many_clients",
                f"{self.public_clients} clients without a token are connected, "
                "the most broadcast.max_public_clients allows",
            )
        if not public and len(self.clients) - self.public_clients >= self.max_clients:
            raise ClientRefused(
                "too_many_clients",
                f"{len(self.clients) - self.public_clients} admin clients are "
                "connected, the most broadcast.max_clients allows",
            )
        feed = ClientFeed(new_id(), public=public)
        self.clients[feed.client_id] = feed
        self.public_clients += public
        return feed

    def disconnect(self, feed: ClientFeed) -> None:
        if self.clients.pop(feed.client_id, None) is not None:
            self.public_clients -= feed.public
        feed.release()
        for fingerprint in list(feed.fingerprints):
            self.unfollow(feed, fingerprint)

    def subscribe_realtime(self, feed: ClientFeed) -> None:
        """Subscribe ``feed`` to realtime_metrics; it gets the current snapshot at once."""
        feed.realtime = True
        if self._building:
            return  # the snapshot being built reaches it
        last = self._last_public_snapshot if feed.public else self._last_snapshot
        if last is not None and trio.current_time() < self._next_due():
            feed.put_snapshot(last)  # as fresh as the next one could be now: none built for it
        else:
            self._realtime_requested.set()  # the next snapshot, built now, reaches it too

    def unsubscribe_realtime(self, feed: ClientFeed) -> None:
        feed.realtime = False

    def follow(self, feed: ClientFeed, fingerprint: str) -> None:
        """``feed`` gets ``fingerprint``'s insights; raises PermissionError for a public feed."""
        if feed.public:
            msg = "a client without an admin credential may not follow a visitor"
            raise PermissionError(msg)
        feed.fingerprints.add(fingerprint)
        self._followers.setdefault(fingerprint, set()).add(feed)

    def unfollow(self, feed: ClientFeed, fingerprint: str) -> None:
        feed.fingerprints.discard(fingerprint)
        feed.drop_insights(fingerprint)
        followers = self._followers.get(fingerprint)
        if followers is not None:
            followers.discard(feed)
            if not followers:
                del self._followers[fingerprint]

    # ------------------------------------------------------------------ changes (other actors)

    def scores_recorded(self, fingerprint: str) -> None:
        """The scorer recorded new scores of ``fingerprint``: its followers, on every instance,
        get its insights."""
        if self.shared is not None and self._running:
            self._to_publish.add(fingerprint)
            self._publish_wanted.set()
        else:
            self._insights_changed(fingerprint)

    def _insights_changed(self, fingerprint: str) -> None:
        if fingerprint in self._followers:
            self._changed_visitors.add(fingerprint)
            self._visitors_changed.set()

    def _window_changed_elsewhere(self) -> None:
        self._remote_change.set()

    # ------------------------------------------------------------------ the actor

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._broadcast_realtime)
                nursery.start_soon(self._send_insights)
                if self.shared is not None:
                    nursery.start_soon(
                        self.shared.listen, self._window_changed_elsewhere, self._insights_changed
                    )
                    nursery.start_soon(self._publish_insights)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._running = False
            for feed in list(self.clients.values()):
                feed.close(GOING_AWAY, "the service is stopping")

    async def _broadcast_realtime(self) -> None:
        version = -1  # of the metrics, as last seen
        while True:
            cycle_began = trio.current_time()
            # until the metrics change, a client subscribes, or the periodic interval is up
            with trio.move_on_after(self.interval):
                async with trio.open_nursery() as waiters:

                    async def change() -> None:
                        nonlocal version
                        version = await self.wait_for_change(version)
                        waiters.cancel_scope.cancel()

                    async def subscription() -> None:
                        await self._realtime_requested.wait()
                        waiters.cancel_scope.cancel()

                    async def elsewhere() -> None:
                        await self._remote_change.wait()
                        waiters.cancel_scope.cancel()

                    waiters.start_soon(change)
                    waiters.start_soon(subscription)
                    waiters.start_soon(elsewhere)
            # (1 ms at least: no busy loop, whatever the settings)
            await trio.sleep_until(max(self._next_due(), cycle_began + 0.001))
            with trio.move_on_after(0):  # the changes made meanwhile go into this snapshot
                version = await self.wait_for_change(version)
            self._realtime_requested = trio.Event()
            self._remote_change = trio.Event()
            await self._snapshot_to_all()

    def _next_due(self) -> float:
        return snapshot_due(
            self._last_start,
            self._last_cost,
            self._last_sent,
            min_interval=self.min_interval,
            max_share=self.max_share,
            max_sends_per_second=self.max_sends_per_second,
        )

    async def _snapshot_to_all(self) -> None:
        """Build a snapshot, put it in every subscriber's outbox, and wait for its delivery
        (see the module docstring); record what it cost."""
        if not any(feed.realtime for feed in self.clients.values()):
            return  # nobody to tell: build nothing
        self._last_start = trio.current_time()
        cpu_started = self.cpu_clock()
        self._building = True
        try:
            data = await self.realtime_data()
        finally:
            self._building = False
        encoded = encode({"type": "realtime_metrics", "data": data})
        public_encoded = None  # built once, and only when a public client subscribed
        delivery = Delivery(self.cpu_clock)
        sent = at_once = 0
        for feed in self.clients.values():  # who subscribed while the data was built counts too
            if not feed.realtime:
                continue
            if feed.public:
                if public_encoded is None:
                    public_encoded = encode(
                        {"type": "realtime_metrics", "data": public_realtime_document(data)}
                    )
                at_once += feed.put_snapshot(public_encoded, delivery)
            else:
                at_once += feed.put_snapshot(encoded, delivery)
            sent += 1
        if at_once:
            delivery.written_at_once()
        put_at, put_cpu = trio.current_time(), self.cpu_clock()
        self._last_sent = sent
        self._last_snapshot, self._last_public_snapshot = encoded, public_encoded
        self.snapshots_sent += sent
        self.snapshots_written_at_once += at_once
        self.activity.record(sent)
        await delivery.settle(put_at, straggler_wait=STRAGGLER_WAIT, first_wait=FIRST_SEND_WAIT)
        last = put_cpu if delivery.last_sent_cpu is None else delivery.last_sent_cpu
        self._last_cost = last - cpu_started  # up to the last send: stragglers not counted

    async def _send_insights(self) -> None:
        while True:
            await self._visitors_changed.wait()
            self._visitors_changed = trio.Event()
            changed, self._changed_visitors = self._changed_visitors, set()
            for fingerprint in changed:
                if fingerprint not in self._followers:
                    continue
                data = None  # unknown visitor, or a read that took too long: nothing to send
                try:
                    with trio.move_on_after(INSIGHTS_READ_TIMEOUT):
                        data = await self.insights_data(fingerprint)
                except StorageError as exc:  # its followers get the next change; the others go on
                    logger.warning(
                        "insights of %s not sent: storage unavailable: %s", fingerprint, exc
                    )
                    continue
                if data is None:
                    continue
                encoded = encode(
                    {"type": "user_insights", "fingerprint": fingerprint, "data": data}
                )
                for feed in list(self._followers.get(fingerprint, ())):
                    feed.put_insights(fingerprint, encoded)
                self.activity.record()

    async def _publish_insights(self) -> None:
        assert self.shared is not None
        while True:
            await self._publish_wanted.wait()
            self._publish_wanted = trio.Event()
            fingerprints, self._to_publish = self._to_publish, set()
            try:
                await self.shared.publish_insights(fingerprints)
            except (redis.RedisError, OSError) as exc:
                # Debug: the Redis connection logs the outage once.
                logger.debug(
                    "Redis unreachable: recorded insights of %d visitor(s) go to this instance's "
                    "clients only: %s",
                    len(fingerprints),
                    exc,
                )
                for fingerprint in fingerprints:
                    self._insights_changed(fingerprint)

    def stats_json(self) -> dict[str, int | float]:
        return {
            "clients": len(self.clients),
            "maxClients": self.max_clients,
            "publicClients": self.public_clients,
            "maxPublicClients": self.max_public_clients,
            "realtimeSubscribers": sum(1 for feed in self.clients.values() if feed.realtime),
            "followedVisitors": len(self._followers),
            "snapshotsSent": self.snapshots_sent,
            "snapshotsWrittenAtOnce": self.snapshots_written_at_once,
            "lastSnapshotSeconds": round(self._last_cost, 6),
        }

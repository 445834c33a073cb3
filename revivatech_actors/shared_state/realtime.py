"""The realtime window in Redis, shared by every instance, and the pub/sub that tells them of
changes.

Same buckets as ``domain.realtime`` (``BUCKET_SECONDS`` wide; the window is the filling bucket
and the ones before it). Per bucket ``b``, under the configured key prefix:

- ``rt:u:{b}`` and ``rt:s:{b}``: HyperLogLogs of the visitors and sessions with an event. The
  window's distinct counts are one PFCOUNT over its buckets (a union; HyperLogLog's standard
  error is 0.81 %, so figures this large are estimates, the same on every instance);
- ``rt:c:{b}``: a hash of counters — events, page_views, conversions, requests, request_us
  (microseconds spent answering), errors (5xx);
- ``rt:p:{b}``: a sorted set of page URL -> page views.

Every key expires by itself a little after it leaves the window. Each call is one pipeline in a
worker thread (one thread hop, whatever the number of commands).

Pub/sub channel ``events`` says "the window changed" (an instance counted a batch; the message
is that instance's id, so it does not hear its own changes twice); channel ``insights`` carries a
fingerprint whose scores were recorded. A dedicated thread listens and hands each message to trio
as soon as it arrives (:meth:`RedisRealtime.listen`).
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from collections.abc import Callable, Iterable

import redis
import trio

from ..domain.realtime import (
    BUCKET_SECONDS,
    RealtimeFigures,
    WindowEvent,
    bucket_of,
    window_buckets,
)
from ..storage import RealtimeSeed
from .redis import RedisConnection

__all__ = ["CHANGES", "INSIGHTS", "RedisRealtime"]

logger = logging.getLogger(__name__)

#: Pub/sub channels (after the key prefix).
CHANGES = "events"
INSIGHTS = "insights"
#: Seconds a listener waits for a message before it looks whether it should stop.
LISTEN_POLL = 0.5
#: Seconds the seeding lock is held (one instance rebuilds an empty shared window from storage).
SEED_LOCK_SECONDS = 60


class RedisRealtime:
    """The shared window (see the module docstring). ``window`` is in seconds; ``top_pages``
    as in ``RealtimeWindow``."""

    def __init__(
        self,
        connection: RedisConnection,
        url: str,
        prefix: str,
        *,
        window: int,
        page_types: frozenset[str],
        conversion_types: frozenset[str],
        top_pages: int = 10,
    ) -> None:
        self._connection = connection
        self._url = url
        self._prefix = prefix
        self.window = window
        self.page_types = page_types
        self.conversion_types = conversion_types
        self.top_pages = top_pages
        self.bucket_count = window_buckets(window)
        self._ttl = (self.bucket_count + 2) * BUCKET_SECONDS
        self._instance = uuid.uuid4().hex.encode()  # what this instance's changes announce

    def _key(self, kind: str, bucket: int) -> str:
        return f"{self._prefix}rt:{kind}:{bucket}"

    def _buckets(self, now: float) -> list[int]:
        newest = bucket_of(now)
        return list(range(newest - self.bucket_count + 1, newest + 1))

    # ------------------------------------------------------------------ writes

    async def add_events(self, events: Iterable[WindowEvent], now: float) -> None:
        """Count stored events in one pipeline."""
        newest = bucket_of(now)
        oldest = newest - self.bucket_count + 1
        users: dict[int, set[str]] = collections.defaultdict(set)
        sessions: dict[int, set[str]] = collections.defaultdict(set)
        counts: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        pages: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for event in events:
            bucket = min(bucket_of(event.timestamp.timestamp()), newest)
            if bucket < oldest:
                continue
            users[bucket].add(event.user_fingerprint)
            sessions[bucket].add(event.session_id)
            count = counts[bucket]
            count["events"] += 1
            event_type = event.event_type
            if event_type in self.page_types:
                count["page_views"] += 1
                if event.page_url:
                    pages[bucket][event.page_url] += 1
            if event_type in self.conversion_types:
                count["conversions"] += 1
        if not counts:
            return

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for bucket, count in counts.items():
                for kind, members in (("u", users[bucket]), ("s", sessions[bucket])):
                    pipe.pfadd(self._key(kind, bucket), *members)
                    pipe.expire(self._key(kind, bucket), self._ttl)
                for field, n in count.items():
                    pipe.hincrby(self._key("c", bucket), field, n)
                pipe.expire(self._key("c", bucket), self._ttl)
                if pages[bucket]:
                    for page, n in pages[bucket].items():
                        pipe.zincrby(self._key("p", bucket), n, page)
                    pipe.expire(self._key("p", bucket), self._ttl)
            pipe.publish(self._prefix + CHANGES, self._instance)
            pipe.execute()

        await self._connection.call(write)

    async def add_requests(self, per_bucket: dict[int, tuple[int, float, int]]) -> None:
        """Add answered requests: bucket -> (requests, seconds spent, server errors)."""
        if not per_bucket:
            return

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for bucket, (requests, seconds, errors) in per_bucket.items():
                key = self._key("c", bucket)
                pipe.hincrby(key, "requests", requests)
                pipe.hincrby(key, "request_us", round(seconds * 1e6))
                if errors:
                    pipe.hincrby(key, "errors", errors)
                pipe.expire(key, self._ttl)
            pipe.execute()

        await self._connection.call(write)

    async def publish_insights(self, fingerprints: Iterable[str]) -> None:
        """Announce the visitors whose scores were recorded (one pipeline)."""
        channel = self._prefix + INSIGHTS

        def publish(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for fingerprint in fingerprints:
                pipe.publish(channel, fingerprint.encode())
            pipe.execute()

        await self._connection.call(publish)

    # ------------------------------------------------------------------ reads

    async def figures(self, now: float) -> RealtimeFigures:
        buckets = self._buckets(now)

        def read(client: redis.Redis) -> list:
            scratch = (
                f"{self._prefix}rt:scratch:{uuid.uuid4().hex}"  # instances read at the same time
            )
            pipe = client.pipeline(transaction=False)
            pipe.pfcount(*[self._key("u", b) for b in buckets])
            pipe.pfcount(*[self._key("s", b) for b in buckets])
            for b in buckets:
                pipe.hgetall(self._key("c", b))
            pipe.zunionstore(scratch, [self._key("p", b) for b in buckets])
            pipe.expire(scratch, 60)  # gone even if the delete below never runs
            pipe.zrange(scratch, 0, self.top_pages - 1, desc=True, withscores=True)
            pipe.delete(scratch)
            return pipe.execute()

        results = await self._connection.call(read)
        users, sessions = results[0], results[1]
        totals: collections.Counter[str] = collections.Counter()
        per_bucket = []
        for counters in results[2 : 2 + len(buckets)]:
            for field, value in counters.items():
                totals[field.decode()] += int(value)
            per_bucket.append(int(counters.get(b"events", 0)))
        top = sorted(
            ((page.decode(), int(views)) for page, views in results[-2]),
            key=lambda item: (-item[1], item[0]),
        )
        requests = totals["requests"]
        return RealtimeFigures(
            window_seconds=self.window,
            active_users=users,
            active_sessions=sessions,
            events=totals["events"],
            page_views=totals["page_views"],
            conversions=totals["conversions"],
            top_pages=tuple(top),
            requests=requests,
            avg_response_ms=totals["request_us"] / 1000 / requests if requests else None,
            error_rate=totals["errors"] / requests if requests else None,
            events_per_bucket=tuple(per_bucket),
        )

    # ------------------------------------------------------------------ seeding at start

    async def claim_seed(self, now: float) -> bool:
        """True if the shared window is empty and this instance won the right to rebuild it
        from storage (a lock, so two instances starting together do not both add the events)."""
        buckets = self._buckets(now)

        def claim(client: redis.Redis) -> bool:
            if client.exists(*[self._key("c", b) for b in buckets]):
                return False
            return bool(
                client.set(f"{self._prefix}rt:seed-lock", b"1", nx=True, ex=SEED_LOCK_SECONDS)
            )

        return await self._connection.call(claim)

    async def restore(self, seed: RealtimeSeed, now: float) -> None:
        """Write a rebuild from storage into the shared window."""
        oldest = bucket_of(now) - self.bucket_count + 1
        newest = bucket_of(now)

        def clamp(bucket: int) -> int | None:
            return None if bucket < oldest else min(bucket, newest)

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for bucket, events, views, conversions in seed.bucket_counts:
                b = clamp(bucket)
                if b is not None:
                    key = self._key("c", b)
                    pipe.hincrby(key, "events", events)
                    pipe.hincrby(key, "page_views", views)
                    pipe.hincrby(key, "conversions", conversions)
                    pipe.expire(key, self._ttl)
            for bucket, page, views in seed.page_views:
                b = clamp(bucket)
                if b is not None:
                    pipe.zincrby(self._key("p", b), views, page)
                    pipe.expire(self._key("p", b), self._ttl)
            for kind, members in (("u", seed.users), ("s", seed.sessions)):
                by_bucket: dict[int, list[str]] = collections.defaultdict(list)
                for member, bucket in members.items():
                    b = clamp(bucket)
                    if b is not None:
                        by_bucket[b].append(member)
                for b, chunk in by_bucket.items():
                    for start in range(0, len(chunk), 1000):
                        pipe.pfadd(self._key(kind, b), *chunk[start : start + 1000])
                    pipe.expire(self._key(kind, b), self._ttl)
            pipe.publish(self._prefix + CHANGES, self._instance)
            pipe.execute()

        await self._connection.call(write)

    # ------------------------------------------------------------------ pub/sub

    async def listen(
        self, on_change: Callable[[], None], on_insights: Callable[[str], None]
    ) -> None:
        """Until cancelled: hand each ``events`` message of another instance to ``on_change``
        and each ``insights`` fingerprint to ``on_insights``, in trio. A dedicated thread (its own
        connection) listens; a lost connection is retried by it every second. Raises nothing on
        Redis errors."""
        stop = threading.Event()
        token = trio.lowlevel.current_trio_token()
        changes, insights = self._prefix + CHANGES, self._prefix + INSIGHTS

        def deliver(channel: bytes, data: bytes) -> None:
            if channel.decode() == changes:
                if data != self._instance:  # its own changes reach it through its metrics actor
                    on_change()
            else:
                on_insights(data.decode())

        def listen_blocking() -> None:
            client = redis.Redis.from_url(self._url, socket_connect_timeout=2, socket_timeout=5)
            try:
                while not stop.is_set():
                    try:
                        pubsub = client.pubsub(ignore_subscribe_messages=True)
                        pubsub.subscribe(changes, insights)
                        self._connection.outage.worked()
                        while not stop.is_set():
                            message = pubsub.get_message(timeout=LISTEN_POLL)
                            if stop.is_set():
                                return
                            if message is not None and message["type"] == "message":
                                trio.from_thread.run_sync(
                                    deliver, message["channel"], message["data"], trio_token=token
                                )
                    except (redis.RedisError, OSError) as exc:
                        self._connection.outage.failed(exc)  # logged once per outage, there
                        logger.debug("Redis pub/sub lost (%s); retrying in 1 s", exc)
                        stop.wait(1.0)
                    except trio.RunFinishedError:
                        return
            finally:
                client.close()

        async with trio.open_nursery() as nursery:

            async def stop_when_cancelled() -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    stop.set()

            nursery.start_soon(stop_when_cancelled)
            # Abandoned when cancelled: the thread sees ``stop`` within LISTEN_POLL and ends by
            # itself, closing its client; a stop need not wait for its poll.
            await trio.to_thread.run_sync(listen_blocking, abandon_on_cancel=True)

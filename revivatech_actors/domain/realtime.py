"""The realtime window (pure: no I/O, no event loop; every method takes the time it is asked at).

What ``GET /api/analytics/realtime`` reports: over the last ``window`` seconds, the distinct
visitors and sessions with an event, the events, page views and conversions, the most viewed
pages, and the service's own HTTP performance. Time is cut into buckets of
``BUCKET_SECONDS``; the window is the bucket ``now`` falls in and the ones before it, so
``window`` seconds and up to one bucket more. An event counts in the bucket of its
(clock-corrected) timestamp; one older than the window is not realtime activity and is left out,
one from the future counts as now.

Distinct counts are exact and cost O(1) per event: each visitor (session) is remembered with the
newest bucket it was seen in, and each bucket lists who had it as newest; when a bucket leaves
the window, those of its list still newest there are forgotten. Memory: one entry per visitor
and session in the window, plus one list slot per visitor and bucket it was active in.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import attrs

from .timefmt import iso_datetime

__all__ = [
    "BUCKET_SECONDS",
    "Bucket",
    "RealtimeFigures",
    "RealtimeWindow",
    "ServiceUptime",
    "WindowEvent",
    "bucket_of",
    "public_realtime_document",
    "realtime_document",
    "window_buckets",
]

#: Width of a bucket of the window, in seconds.
BUCKET_SECONDS = 10


def bucket_of(epoch_seconds: float) -> int:
    """The number of the bucket that holds this time (seconds since the epoch)."""
    return math.floor(epoch_seconds / BUCKET_SECONDS)


def window_buckets(window: int) -> int:
    """Buckets in a window of ``window`` seconds: enough that it always spans at least that long
    back (the newest bucket is still filling)."""
    return math.ceil(window / BUCKET_SECONDS) + 1


class WindowEvent(Protocol):
    """What the window reads of a stored event (a :class:`~..messages.Event`)."""

    @property
    def user_fingerprint(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def page_url(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime: ...


class _StoredEvent(NamedTuple):
    """The fields of an event the window reads, for :meth:`RealtimeWindow.add_event`."""

    user_fingerprint: str
    session_id: str
    event_type: str
    page_url: str | None
    timestamp: datetime


@attrs.define(eq=False, slots=True)
class Bucket:
    """The counts of one bucket."""

    number: int
    events: int = 0
    page_views: int = 0
    conversions: int = 0
    pages: collections.Counter[str] = attrs.Factory(collections.Counter)  # page URL -> page views
    requests: int = 0
    request_seconds: float = 0.0
    server_errors: int = 0
    # who had this as their newest bucket when it was set (some may have moved on since)
    users: list[str] = attrs.Factory(list)
    sessions: list[str] = attrs.Factory(list)


@attrs.frozen
class RealtimeFigures:
    """The window's figures at one moment. ``avg_response_ms`` and ``error_rate`` are None
    when no request was answered in the window."""

    window_seconds: int
    active_users: int
    active_sessions: int
    events: int
    page_views: int
    conversions: int
    top_pages: tuple[tuple[str, int], ...]  # (page URL, views), most viewed first
    requests: int
    avg_response_ms: float | None
    error_rate: float | None
    # events per bucket of the window, oldest first (the newest bucket is still filling)
    events_per_bucket: tuple[int, ...] = ()


@attrs.define(eq=False)
class RealtimeWindow:
    """Counts of the last ``window`` seconds; see the module docstring."""

    window: int
    page_types: frozenset[str]
    conversion_types: frozenset[str]
    top_pages: int = 10
    _buckets: collections.deque[Bucket] = attrs.field(
        init=False, factory=collections.deque
    )  # oldest first
    _user_bucket: dict[str, int] = attrs.field(init=False, factory=dict)
    _session_bucket: dict[str, int] = attrs.field(init=False, factory=dict)

    @property
    def bucket_count(self) -> int:
        return window_buckets(self.window)

    def start(self, now: float) -> float:
        """When the window's oldest bucket begins (seconds since the epoch): what to read from
        storage to rebuild the window at ``now``."""
        return float((bucket_of(now) - self.bucket_count + 1) * BUCKET_SECONDS)

    def _bucket(self, number: int, now_bucket: int) -> Bucket | None:
        """The bucket ``number`` (made if new); None if it is outside the window."""
        self._expire(now_bucket)
        number = min(number, now_bucket)
        if number <= now_bucket - self.bucket_count:
            return None
        buckets = self._buckets
        if not buckets or number > buckets[-1].number:
            bucket = Bucket(number)
            buckets.append(bucket)
            return bucket
        for bucket in reversed(buckets):  # a late event: its bucket is near the end
            if bucket.number == number:
                return bucket
            if bucket.number < number:
                break
        bucket = Bucket(number)  # a gap in the middle (no event in it yet): keep the order
        index = next(i for i, b in enumerate(buckets) if b.number > number)
        buckets.insert(index, bucket)
        return bucket

    def _expire(self, now_bucket: int) -> None:
        oldest = now_bucket - self.bucket_count + 1
        buckets = self._buckets
        while buckets and buckets[0].number < oldest:
            gone = buckets.popleft()
            for seen, members in (
                (self._user_bucket, gone.users),
                (self._session_bucket, gone.sessions),
            ):
                for key in members:
                    if seen.get(key) == gone.number:
                        del seen[key]

    def add_event(
        self,
        user: str,
        session: str,
        event_type: str,
        page_url: str | None,
        event_time: float,
        now: float,
    ) -> None:
        """Count one stored event (``event_time`` and ``now`` in seconds since the epoch)."""
        stamp = datetime.fromtimestamp(event_time, UTC)
        self.add_events([_StoredEvent(user, session, event_type, page_url, stamp)], now)

    def add_events(self, events: Iterable[WindowEvent], now: float) -> None:
        """Count stored events (the metrics actor's hot path: the bucket of now is found once,
        and most events fall in it). An event older than the window is left out; one from the
        future counts as now."""
        now_bucket = bucket_of(now)
        current = self._bucket(now_bucket, now_bucket)
        assert current is not None
        oldest = now_bucket - self.bucket_count + 1
        page_types, conversion_types = self.page_types, self.conversion_types
        user_bucket, session_bucket = self._user_bucket, self._session_bucket
        # comparing datetimes is cheaper than converting each to seconds
        current_from = datetime.fromtimestamp(now_bucket * BUCKET_SECONDS, UTC)
        for event in events:
            if event.timestamp >= current_from:
                bucket, number = current, now_bucket
            else:
                number = math.floor(event.timestamp.timestamp() / BUCKET_SECONDS)
                if number < oldest:
                    continue
                bucket = self._bucket(number, now_bucket)  # type: ignore[assignment]
            bucket.events += 1
            event_type = event.event_type
            if event_type in page_types:
                bucket.page_views += 1
                if event.page_url:
                    bucket.pages[event.page_url] += 1
            if event_type in conversion_types:
                bucket.conversions += 1
            user = event.user_fingerprint
            if user_bucket.get(user, number - 1) < number:
                user_bucket[user] = number
                bucket.users.append(user)
            session = event.session_id
            if session_bucket.get(session, number - 1) < number:
                session_bucket[session] = number
                bucket.sessions.append(session)

    def add_request(self, seconds: float, status: int, now: float) -> None:
        """Count one answered HTTP request that took ``seconds``."""
        now_bucket = bucket_of(now)
        bucket = self._bucket(now_bucket, now_bucket)
        assert bucket is not None
        bucket.requests += 1
        bucket.request_seconds += seconds
        if status >= 500:
            bucket.server_errors += 1

    def restore(
        self,
        bucket_counts: Iterable[tuple[int, int, int, int]],
        page_views: Iterable[tuple[int, str, int]],
        users: Mapping[str, int],
        sessions: Mapping[str, int],
        now: float,
    ) -> None:
        """Seed the window from storage (at start): per bucket ``(bucket, events, page views,
        conversions)``; ``(bucket, page URL, views)``; each visitor's and session's newest
        bucket."""
        now_bucket = bucket_of(now)
        for number, events, views, conversions in bucket_counts:
            bucket = self._bucket(number, now_bucket)
            if bucket is not None:
                bucket.events += events
                bucket.page_views += views
                bucket.conversions += conversions
        for number, page, views in page_views:
            bucket = self._bucket(number, now_bucket)
            if bucket is not None:
                bucket.pages[page] += views
        for seen, members, attribute in (
            (self._user_bucket, users, "users"),
            (self._session_bucket, sessions, "sessions"),
        ):
            for key, number in members.items():
                bucket = self._bucket(number, now_bucket)
                if bucket is not None and seen.get(key, bucket.number - 1) < bucket.number:
                    seen[key] = bucket.number
                    getattr(bucket, attribute).append(key)

    def figures(self, now: float) -> RealtimeFigures:
        """The figures of the window that ends at ``now``."""
        now_bucket = bucket_of(now)
        self._expire(now_bucket)
        buckets = self._buckets
        events_of = {b.number: b.events for b in buckets}
        numbers = range(now_bucket - self.bucket_count + 1, now_bucket + 1)
        pages: collections.Counter[str] = collections.Counter()
        for bucket in buckets:
            pages.update(bucket.pages)
        requests = sum(b.requests for b in buckets)
        top = sorted(pages.items(), key=lambda item: (-item[1], item[0]))[: self.top_pages]
        return RealtimeFigures(
            window_seconds=self.window,
            active_users=len(self._user_bucket),
            active_sessions=len(self._session_bucket),
            events=sum(b.events for b in buckets),
            page_views=sum(b.page_views for b in buckets),
            conversions=sum(b.conversions for b in buckets),
            top_pages=tuple(top),
            requests=requests,
            avg_response_ms=1000 * sum(b.request_seconds for b in buckets) / requests
            if requests
            else None,
            error_rate=sum(b.server_errors for b in buckets) / requests if requests else None,
            events_per_bucket=tuple(events_of.get(n, 0) for n in numbers),
        )


@attrs.define
class ServiceUptime:
    """Share of time the service was ready since it started, from periodic observations: the
    time up to an observation counts as ready when the observation (and the one before) was."""

    started: float
    ready_seconds: float = 0.0
    _last: float | None = None
    _last_ready: bool = False

    def observe(self, ready: bool, now: float) -> None:
        if self._last is not None and ready and self._last_ready:
            self.ready_seconds += now - self._last
        elif self._last is not None and (ready or self._last_ready):
            self.ready_seconds += (
                now - self._last
            ) / 2  # changed in between: half of it, on average
        self._last, self._last_ready = now, ready

    def percent(self, now: float) -> float:
        """Percent of the time since start that the service was ready (100 before any interval
        was observed, if it is ready then; else 0)."""
        observed = (self._last or self.started) - self.started
        if observed <= 0:
            return 100.0 if self._last_ready else 0.0
        return min(100.0, 100 * self.ready_seconds / observed)


def realtime_document(
    figures: RealtimeFigures, uptime_percent: float, now: datetime, source: str = "local"
) -> dict[str, Any]:
    """The ``data`` of ``GET /api/analytics/realtime`` (and of a ``realtime_metrics`` message):
    the original service's shape, every figure a JSON number. ``avgResponseTime`` is in
    milliseconds and ``errorRate`` a share of 1 (both 0 when no request was answered in the
    window); ``uptime`` is a percentage (this instance's). ``source`` is ``redis`` when the
    figures are every instance's, ``local`` when they are this instance's alone.
    ``activeSessions`` repeats ``overview.active_sessions`` where the original admin page reads
    it."""
    return {
        "timestamp": iso_datetime(now),
        "windowSeconds": figures.window_seconds,
        "source": source,
        "activeSessions": figures.active_sessions,
        "overview": {
            "active_users": figures.active_users,
            "active_sessions": figures.active_sessions,
            "total_events": figures.events,
            "page_views": figures.page_views,
            "conversions": figures.conversions,
        },
        "topPages": [{"page_url": page, "views": views} for page, views in figures.top_pages],
        "performance": {
            "avgResponseTime": round(figures.avg_response_ms or 0.0, 3),
            "errorRate": round(figures.error_rate or 0.0, 6),
            "uptime": round(uptime_percent, 3),
            "requests": figures.requests,
        },
        "series": {"bucketSeconds": BUCKET_SECONDS, "events": list(figures.events_per_bucket)},
    }


def public_realtime_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` of :func:`realtime_document` as tokenless clients get it: top pages without
    their query and fragment (a URL as a tracker sent it may carry a visitor's e-mail or a
    booking reference), pages that differ only there merged. The counts stay as they are."""
    views: collections.Counter[str] = collections.Counter()
    for page in data["topPages"]:
        views[page["page_url"].partition("#")[0].partition("?")[0]] += page["views"]
    top = sorted(views.items(), key=lambda item: (-item[1], item[0]))
    return {**data, "topPages": [{"page_url": page, "views": count} for page, count in top]}

"""Admin reports: reads for ``/dashboard``, ``/revenue``, ``/performance``, ``/customers``
(no request text reaches the SQL)."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Iterable
from typing import Any

from ...domain.profiles import ProfileState
from .._connections import StorageConnections
from .._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts

__all__ = ["ReportsStorage"]


class ReportsStorage(StorageConnections):
    """``profiles_page``, ``top_profiles``, ``visitor_counts``, ``revenue_by_day``,
    ``booking_events``, and the hooks an engine supplies for them."""

    async def profiles_page(self, offset: int, limit: int) -> ProfilesPage:
        """``limit`` stored profiles from the ``offset``-th, by latest activity (``last_seen``)
        newest first (then by fingerprint), and the number of profiles. Profiles have no index
        on ``last_seen`` (it would rule out HOT updates, migration 0003): the read scans them."""
        return await self._on_writer(lambda conn: self._profiles_page_blocking(conn, offset, limit))

    async def top_profiles(self, since: datetime.datetime, limit: int) -> list[ProfileState]:
        """Up to ``limit`` profiles last seen at or after ``since``, by the engagement score last
        recorded (highest first; never scored last), then latest activity, then fingerprint."""
        return await self._on_writer(lambda conn: self._top_profiles_blocking(conn, since, limit))

    async def visitor_counts(self, since: datetime.datetime) -> VisitorCounts:
        """Visitors last seen at or after ``since``, and of them those first seen at or after it."""
        return await self._on_writer(lambda conn: self._visitor_counts_blocking(conn, since))

    async def revenue_by_day(
        self, since: datetime.datetime, until: datetime.datetime, types: Iterable[str]
    ) -> list[DailyRevenue]:
        """Events of ``types`` (completed bookings) stamped in ``[since, until)``, per UTC day in
        order: the sum of their values (none: 0) and their number. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(
            lambda conn: self._revenue_by_day_blocking(conn, since, until, kinds)
        )

    async def booking_events(
        self, since: datetime.datetime, until: datetime.datetime, types: Iterable[str], limit: int
    ) -> list[BookingEvent]:
        """Events of ``types`` stamped in ``[since, until)``, in time order (then event id): the
        latest ``limit`` of them when there are more. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(
            lambda conn: self._booking_events_blocking(conn, since, until, kinds, limit)
        )

    @abc.abstractmethod
    def _profiles_page_blocking(self, conn: Any, offset: int, limit: int) -> ProfilesPage: ...

    @abc.abstractmethod
    def _top_profiles_blocking(
        self, conn: Any, since: datetime.datetime, limit: int
    ) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _visitor_counts_blocking(self, conn: Any, since: datetime.datetime) -> VisitorCounts: ...

    @abc.abstractmethod
    def _revenue_by_day_blocking(
        self, conn: Any, since: datetime.datetime, until: datetime.datetime, types: list[str]
    ) -> list[DailyRevenue]: ...

    @abc.abstractmethod
    def _booking_events_blocking(
        self,
        conn: Any,
        since: datetime.datetime,
        until: datetime.datetime,
        types: list[str],
        limit: int,
    ) -> list[BookingEvent]: ...

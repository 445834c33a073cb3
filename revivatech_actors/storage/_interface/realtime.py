"""The realtime window's seed: what the metrics actor starts from, so a restart does not zero
the dashboard."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Iterable
from typing import Any

from .._connections import StorageConnections
from .._records import RealtimeSeed

__all__ = ["RealtimeStorage"]


class RealtimeStorage(StorageConnections):
    """``realtime_seed``, and the hook an engine supplies for it."""

    async def realtime_seed(
        self,
        since: datetime.datetime,
        *,
        page_types: Iterable[str],
        conversion_types: Iterable[str],
    ) -> RealtimeSeed:
        """The events stamped at or after ``since`` (the realtime window), counted per bucket:
        all events, page views (``page_types``) and conversions (``conversion_types``), page
        views per page URL, and each visitor's and session's newest bucket. Uses the
        event-time index; costs one row per bucket, page, visitor and session of the window."""
        pages, conversions = sorted(page_types), sorted(conversion_types)
        return await self._on_writer(
            lambda conn: self._realtime_seed_blocking(conn, since, pages, conversions)
        )

    @abc.abstractmethod
    def _realtime_seed_blocking(
        self,
        conn: Any,
        since: datetime.datetime,
        page_types: list[str],
        conversion_types: list[str],
    ) -> RealtimeSeed: ...

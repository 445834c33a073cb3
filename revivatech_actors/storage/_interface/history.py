"""Stored history in time order: what backtests rebuild past profiles from; and the backtests'
reports."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from ...domain.backtest import HistoryEvent
from .._connections import StorageConnections

__all__ = ["EVALUATIONS_KEPT", "HistoryStorage"]

#: Backtest reports kept (older ones are deleted as new ones are recorded).
EVALUATIONS_KEPT = 50


class HistoryStorage(StorageConnections):
    """``history_bounds``, ``history_events``, the reports' ``record_evaluation`` and
    ``latest_evaluation``, and the hooks an engine supplies."""

    async def history_bounds(self) -> tuple[datetime.datetime, datetime.datetime] | None:
        """The oldest and newest stored event time; None without events."""
        return await self._on_writer(self._history_bounds_blocking)

    async def history_events(
        self,
        until: datetime.datetime,
        consume: Callable[[str, HistoryEvent], None],
    ) -> int:
        """Call ``consume(fingerprint, event)`` for every event stamped at or before ``until``,
        in time order (ties in a fixed order), in the storage's worker thread (keep it pure and
        brief). Streams from the time index: nothing is sorted or held whole, on either side.
        Answers how many events there were. Runs on this storage's own connection for as long
        as the scan takes: give it a storage of its own, not the service's writer."""

        def scan(conn: Any) -> int:
            events = 0
            for fingerprint, kind, session, moment, value in self._history_rows_blocking(
                conn, until
            ):
                consume(fingerprint, HistoryEvent(kind, session, moment, value))
                events += 1
            return events

        return await self._on_writer(scan)

    async def record_evaluation(
        self, evaluated_at: datetime.datetime, report: dict[str, Any]
    ) -> None:
        """Store a backtest's report (keeping the newest :data:`EVALUATIONS_KEPT`)."""
        text = orjson.dumps(report).decode()
        await self._on_writer(
            lambda conn: self._record_evaluation_blocking(conn, evaluated_at, text)
        )

    async def latest_evaluation(self) -> tuple[datetime.datetime, dict[str, Any]] | None:
        """The newest report and when its backtest ran; None before the first."""
        row = await self._on_writer(self._latest_evaluation_blocking)
        return None if row is None else (row[0], orjson.loads(row[1]))

    @abc.abstractmethod
    def _record_evaluation_blocking(
        self, conn: Any, evaluated_at: datetime.datetime, report: str
    ) -> None: ...

    @abc.abstractmethod
    def _latest_evaluation_blocking(self, conn: Any) -> tuple[datetime.datetime, str] | None: ...

    @abc.abstractmethod
    def _history_bounds_blocking(
        self, conn: Any
    ) -> tuple[datetime.datetime, datetime.datetime] | None: ...

    @abc.abstractmethod
    def _history_rows_blocking(
        self, conn: Any, until: datetime.datetime
    ) -> Iterator[tuple[str, str, str, datetime.datetime, float | None]]:
        """``(fingerprint, event_type, session_id, timestamp, value)`` ordered by time, then
        event id, streamed."""

"""Scores and predictions: the scorer's records, and what it reads back."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from ...domain.partitions import partition_of
from ...domain.profiles import ProfileState
from ...domain.scoring import ScoreRecord
from .._connections import StorageConnections
from .._records import StoredPrediction

__all__ = ["ScoresStorage"]


class ScoresStorage(StorageConnections):
    """``record_scores``, ``profiles_to_rescore``, ``unscored_profiles``,
    ``recent_predictions``, and the hooks an engine supplies for them."""

    async def record_scores(self, records: Sequence[ScoreRecord]) -> None:
        """In one transaction: a ``ml_predictions`` row per recorded score, and each visitor's
        segment, recorded score values, ``scored_at`` and ``scored_version`` on its profile. A
        result older than the one stored (of an earlier version of the profile, or of the same one
        scored earlier) changes nothing; of several for one visitor, only the newest counts."""
        newest: dict[str, ScoreRecord] = {}
        for record in records:
            kept = newest.get(record.user_fingerprint)
            if kept is None or (record.version, record.scored_at) >= (kept.version, kept.scored_at):
                newest[record.user_fingerprint] = record
        if not newest:
            return
        records = list(newest.values())
        await self._on_writer(lambda conn: self._record_scores_blocking(conn, records))

    async def profiles_to_rescore(
        self, scored_before: datetime.datetime, limit: int
    ) -> list[ProfileState]:
        """Up to ``limit`` profiles never scored or last scored before ``scored_before``, the
        longest-waiting first."""
        return await self._on_writer(
            lambda conn: self._profiles_to_rescore_blocking(conn, scored_before, limit)
        )

    async def unscored_profiles(self, partitions: Iterable[int], count: int) -> list[str]:
        """The visitors of ``partitions`` (of ``count``) whose stored profile was written since
        its scores were last recorded (``version > scored_version``, migration 0008): what a
        process that died between a profile write and the scorer's record left unscored.
        Reads the whole profiles table (the columns are not indexed, so profile writes stay
        heap-only updates): meant for when partitions change hands, not for every cycle."""
        wanted = frozenset(partitions)
        query = self._queries["unscored_profiles"]
        rows = await self._on_writer(lambda conn: conn.execute(query).fetchall())
        return [fp for (fp,) in rows if partition_of(fp, count) in wanted]

    async def recent_predictions(self, user_fingerprint: str, limit: int) -> list[StoredPrediction]:
        """Each model's latest ``limit`` predictions of the visitor, all newest first."""
        return await self._on_writer(
            lambda conn: self._recent_predictions_blocking(conn, user_fingerprint, limit)
        )

    def _record_scores_blocking(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        with self._transaction(conn):
            self._record_scores(conn, records)

    @abc.abstractmethod
    def _record_scores(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        """Inside a transaction: what ``record_scores`` promises."""

    @abc.abstractmethod
    def _profiles_to_rescore_blocking(
        self, conn: Any, scored_before: datetime.datetime, limit: int
    ) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _recent_predictions_blocking(
        self, conn: Any, user_fingerprint: str, limit: int
    ) -> list[StoredPrediction]: ...

"""Profiles, their sessions, journeys and active days: the derived state of each visitor,
written with the log position it reflects (fenced by the partition's lease)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from ...domain.profiles import ProfileDelta, ProfileState
from .._connections import WRITER
from .._errors import LeaseLost
from .._records import PartitionPosition, StoredJourney, VisitorKeys, VisitorView
from .log import LogStorage

__all__ = ["ProfilesStorage"]


class _Fenced(Exception):
    """Rolls back a write of derived state whose partitions moved on (see LeaseLost)."""


class ProfilesStorage(LogStorage):
    """``apply_profile_deltas``, ``visitor_view``, ``load_profiles``, ``visitor_keys``,
    ``load_journeys``, and the hooks an engine supplies for them."""

    #: Whether writes from several instances (connections) to this engine run at once rather
    #: than waiting for one another; the profiles actor's last write at a stop uses a second one.
    parallel_writes: ClassVar[bool] = False

    async def apply_profile_deltas(
        self,
        deltas: Sequence[ProfileDelta],
        *,
        max_touchpoints: int = 500,
        return_rows: bool = True,
        positions: Sequence[PartitionPosition] = (),
        owner: str | None = None,
    ) -> dict[str, ProfileState]:
        """Add ``deltas`` (one per visitor) to their profiles, journeys and sessions
        (``analytics_sessions``, as ``domain.sessions`` defines the deltas) in one transaction and
        return each visitor's whole stored profile afterwards (nothing with ``return_rows=False``:
        reading the rows back is a cost the caller may not need).

        With ``positions`` (the partitions of every visitor of ``deltas``, written by their
        ``owner``), the same transaction records each partition's log position, and is applied
        only if ``owner`` still holds every one of them with the ``epoch`` and ``writes`` given:
        derived state and the position it reflects never part. A call whose earlier attempt
        committed (its reply was lost) finds ``writes`` moved on by one, applies nothing again and
        returns ``{}``.

        Guarantees: commutative (counters are added, times take the least / greatest, days and
        sessions are rows counted once whichever writer brings them, touchpoints are appended and
        a session's stage only rises). A session stops taking touchpoints once it holds
        ``max_touchpoints`` (its counts and stage still change).

        Raises:
            LeaseLost: another owner holds some of the partitions now; nothing was applied.
            StorageUnavailable: the database cannot be reached (nothing or everything applied:
                the transaction is atomic; without ``positions`` a retry after a lost commit
                reply would add twice).
        """
        if not deltas and not positions:
            return {}
        lane = self._open_lane(WRITER)
        return await self._call(
            lane,
            lambda conn: self._apply_profile_deltas_blocking(
                conn, deltas, max_touchpoints, return_rows, positions, owner
            ),
            abandon=False,
        )

    async def visitor_view(self, user_fingerprint: str, partition: int) -> VisitorView:
        """The visitor's stored rows and the log events they do not reflect yet (of its
        ``partition``), in one snapshot (see ``VisitorView``)."""
        return await self._on_writer(
            lambda conn: self._visitor_view_blocking(conn, user_fingerprint, partition)
        )

    async def load_profiles(self, user_fingerprints: Sequence[str]) -> dict[str, ProfileState]:
        """The stored profiles of ``user_fingerprints`` (visitors without one are left out)."""
        if not user_fingerprints:
            return {}
        return await self._on_writer(
            lambda conn: self._load_profiles_blocking(conn, list(user_fingerprints))
        )

    async def visitor_keys(self, user_fingerprint: str) -> VisitorKeys:
        """The sessions and days storage counts for ``user_fingerprint``."""
        return await self._on_writer(
            lambda conn: self._visitor_keys_blocking(conn, user_fingerprint)
        )

    async def load_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys (one per session) in order of start."""
        return await self._on_writer(
            lambda conn: self._load_journeys_blocking(conn, user_fingerprint)
        )

    def _apply_profile_deltas_blocking(
        self,
        conn: Any,
        deltas: Sequence[ProfileDelta],
        max_touchpoints: int,
        return_rows: bool,
        positions: Sequence[PartitionPosition],
        owner: str | None,
    ) -> dict[str, ProfileState]:
        try:
            with self._transaction(conn):
                # the partition rows first: a takeover waits for this write, or this write sees it
                if positions and self._record_positions(conn, owner, positions) < len(positions):
                    raise _Fenced
                return (
                    self._upsert_profiles(conn, deltas, max_touchpoints, return_rows)
                    if deltas
                    else {}
                )
        except _Fenced:
            pass
        rows = self._partition_rows(conn, [p.partition for p in positions])
        if all(rows.get(p.partition) == (owner, p.epoch, p.writes + 1) for p in positions):
            return {}  # an earlier attempt committed: its reply was lost
        lost = frozenset(
            p.partition
            for p in positions
            if rows.get(p.partition, (None, None, None))[:2] != (owner, p.epoch)
        )
        msg = f"{self._where()}: partition(s) {sorted(lost)} are owned by another instance now"
        raise LeaseLost(msg, lost)

    def _visitor_view_blocking(
        self, conn: Any, user_fingerprint: str, partition: int
    ) -> VisitorView:
        with self._read_snapshot(conn):  # the rows and the position they reflect, written together
            profiles = self._load_profiles_blocking(conn, [user_fingerprint])
            keys = self._visitor_keys_blocking(conn, user_fingerprint)
            journeys = self._load_journeys_blocking(conn, user_fingerprint)
            tail = self._visitor_tail(conn, user_fingerprint, partition)
        return VisitorView(profiles.get(user_fingerprint), keys, journeys, tail)

    @abc.abstractmethod
    def _upsert_profiles(
        self, conn: Any, deltas: Sequence[ProfileDelta], max_touchpoints: int, return_rows: bool
    ) -> dict[str, ProfileState]:
        """Inside a transaction: what ``apply_profile_deltas`` promises."""

    @abc.abstractmethod
    def _load_profiles_blocking(
        self, conn: Any, user_fingerprints: list[str]
    ) -> dict[str, ProfileState]: ...

    @abc.abstractmethod
    def _visitor_keys_blocking(self, conn: Any, user_fingerprint: str) -> VisitorKeys: ...

    @abc.abstractmethod
    def _load_journeys_blocking(self, conn: Any, user_fingerprint: str) -> list[StoredJourney]: ...

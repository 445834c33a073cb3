"""Partitions of visitors and positions in the event log. Pure: no I/O.

Every stored event has a *slot*, a stable hash of its visitor's fingerprint, and its visitor a
*partition*, ``slot % partitions``. The slot is the first four bytes of the MD5 digest of the
fingerprint's UTF-8 bytes, big-endian, with the top bit cleared: any language computes the same
(Python's ``hash()`` differs from process to process). Growing ``partitions`` to a multiple of
itself splits each partition into several without moving a visitor between the old ones: the
visitors of new partition ``q`` all were in old partition ``q % old``.

A :class:`Cursor` is how far the state derived for one partition has applied the log. Log
transactions (``log_txn``: a PostgreSQL transaction id, or SQLite's count of event writes) do not
commit in the order of their numbers, so one number cannot say it. A cursor holds a *horizon*
(every transaction below it is applied) and the transactions at or above it that are applied
too. It moves the horizon only to a point below which no transaction is still in flight (the
oldest one running, as the database reports it), so a transaction that commits late is never
skipped, and it never applies a transaction twice.
"""

from __future__ import annotations

import functools
import hashlib
import math

import attrs

__all__ = ["Cursor", "partition_of", "slot_of", "target_share"]


@functools.lru_cache(maxsize=65536)
def slot_of(user_fingerprint: str) -> int:
    """The visitor's slot: 0 ≤ slot < 2**31, the same in every process."""
    digest = hashlib.md5(user_fingerprint.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def partition_of(user_fingerprint: str, partitions: int) -> int:
    """The visitor's partition among ``partitions``."""
    return slot_of(user_fingerprint) % partitions


def target_share(partitions: int, owners: int) -> int:
    """How many partitions each of ``owners`` live instances should own: all of them are owned
    and none owns more than one above another's share."""
    return math.ceil(partitions / max(1, owners))


@attrs.define
class Cursor:
    """One partition's position in the log, as its owner holds it (see the module docstring).

    ``epoch`` and ``writes`` are the partition row's values as this owner last wrote them: a
    write of derived state is refused unless they still match (another owner took over, or
    the previous attempt had committed)."""

    partition: int
    horizon: int
    applied: set[int] = attrs.Factory(set)
    epoch: int = 0
    writes: int = 0
    moved: bool = False  # changed since the last write began

    def covers(self, txn: int) -> bool:
        """Whether transaction ``txn`` is applied."""
        return txn < self.horizon or txn in self.applied

    def mark(self, txn: int) -> None:
        """Transaction ``txn`` (not covered) is now applied."""
        self.applied.add(txn)
        self.moved = True

    def advance(self, horizon: int, *, noted: bool = True) -> None:
        """Every transaction below ``horizon`` is applied (the caller read them all). Without
        ``noted`` (nothing was read), the move is worth recording only if it forgets applied
        transactions: a horizon behind costs a later reader a little more log to read, and
        recording every move of an idle log would be a write per poll."""
        if horizon > self.horizon:
            self.horizon = horizon
            kept = {txn for txn in self.applied if txn >= horizon}
            if noted or len(kept) < len(self.applied):
                self.moved = True
            self.applied = kept

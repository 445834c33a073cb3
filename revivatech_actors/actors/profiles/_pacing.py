"""When to write profiles: the pacing decisions, as plain functions of what they depend on.

Writes take storage from event commits (and so from acknowledgements). A write is due when what
it would cost (the visitors waiting, at what the last write cost per visitor) is at most
``max_write_share`` of the time it would end, counted from the last write's end: storage then
spends at most that share on profile writes, whatever the load, and under a flood writes come
rarely and coalesce many events each. A write is *urgent* (as fast as storage allows, no rests)
when stopping, over ``max_unwritten_events`` (memory first), or behind the log.

No I/O and no clock of its own: the caller passes the times.
"""

from __future__ import annotations

import attrs

__all__ = ["COSTED_WRITE", "REPLAY_BACKLOG", "Pacing", "is_urgent", "rest_after"]

#: Fewest visitors in a write whose time sets the per-visitor cost the pacing expects: a
#: smaller write measures its fixed overhead more than its rows.
COSTED_WRITE = 200
#: Events applied from the log and not yet written past which writes are urgent: a backlog (a
#: restart's replay, partitions taken over) is state that lags the events, to be written at once.
REPLAY_BACKLOG = 10_000


@attrs.define
class Pacing:
    """What the pacing has seen: the last write's cost per visitor, and when the fast path
    last brought a batch (trio clock). Kept across restarts of the actor."""

    seconds_per_visitor: float = 0.0
    last_batch_at: float = -1e9

    def ingest_idle(self, now: float, flush_interval: float) -> bool:
        """No events stored here for a flush interval: writes cannot hold up any."""
        return now - self.last_batch_at > flush_interval

    def write_due(
        self,
        *,
        now: float,
        idle: float,
        waiting: int,
        positions_moved: bool,
        flush_interval: float,
        max_write_share: float,
    ) -> bool:
        """Whether a write of ``waiting`` visitors is due ``idle`` seconds after the last one
        ended (see the module docstring). With no events stored here for a flush interval (a
        replay, the log of other instances) there is nothing to hold up: due at once. Moved
        positions alone (``positions_moved``, nobody waiting) are written once a flush
        interval has passed (the writer asks once per interval)."""
        if waiting == 0:
            return positions_moved
        if self.ingest_idle(now, flush_interval):
            return True
        cost = waiting * self.seconds_per_visitor
        return cost <= max_write_share * (idle + cost)

    def measured(self, visitors: int, took: float) -> None:
        """A write of ``visitors`` took ``took`` seconds of storage work."""
        if visitors >= COSTED_WRITE:
            self.seconds_per_visitor = took / visitors


def is_urgent(
    *, stopping: bool, unwritten_events: int, max_unwritten_events: int, replayed_unwritten: int
) -> bool:
    """Stopping, over the memory bound, or behind the log: write as fast as storage allows."""
    return (
        stopping or unwritten_events > max_unwritten_events or replayed_unwritten > REPLAY_BACKLOG
    )


def rest_after(chunk_took: float, max_write_share: float) -> float:
    """Seconds to rest after a chunk of a write that took ``chunk_took``: storage busy with a
    whole write in one burst would hold up event commits as long; in chunks with rests between
    them it stays within ``max_write_share`` all along."""
    return chunk_took * (1 / max_write_share - 1)

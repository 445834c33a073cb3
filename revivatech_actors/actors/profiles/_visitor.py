"""One visitor of an owned partition, between its events' arrival and their write.

A visitor actor is an object, not a task: a task per visitor would cost a channel hop and a
scheduler wake-up per event for no gain. A visitor's events arrive in order, one batch at a time,
and the one task that hands them over still handles each visitor's messages in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TypeVar

import attrs

from ...domain.profiles import ProfileDelta, Touch

__all__ = ["VisitorActor"]

K = TypeVar("K")


@attrs.define(eq=False)
class VisitorActor:
    """One visitor of an owned partition: its events not yet written.

    Its events are ``pending`` until a write takes them, ``inflight`` while it runs; a refused
    write puts them back first, so every event is written once and in order."""

    user_fingerprint: str
    partition: int
    # The events themselves, in order: turning them into a delta is left to the writer's thread,
    # off the event loop that serves requests.
    pending: list[Touch] | None = None  # not yet in a write
    inflight: list[Touch] | None = None  # being written
    last_message: float = 0.0  # trio clock
    # Days storage already counts (written by this actor): not sent again. A tuple, not a set:
    # a visitor has a few, and an active visitor's tuple weighs much less than a set.
    known_days: tuple[date, ...] = ()

    def receive(self, touch: Touch, now: float) -> bool:
        """Add ``touch`` (this visitor's next event) to the pending ones; True if it is the first
        pending since the last write began."""
        self.last_message = now
        pending = self.pending
        if pending is None:
            self.pending = [touch]
            return True
        pending.append(touch)
        return False

    def begin_write(self) -> list[Touch]:
        """Move the pending events in flight and return them."""
        assert self.pending is not None and self.inflight is None
        self.inflight, self.pending = self.pending, None
        return self.inflight

    def resume(self) -> None:
        """The write in flight was refused (nothing of it applied): its events go first into
        the next."""
        if self.inflight is not None:
            self.pending = self.inflight + (self.pending or [])
            self.inflight = None

    def written(self, delta: ProfileDelta) -> None:
        """The events in flight committed as ``delta``."""
        self.known_days = _with_new(self.known_days, delta.active_days)
        self.inflight = None

    @property
    def dirty(self) -> bool:
        """Holds events not yet committed (pending or in flight)."""
        return self.pending is not None or self.inflight is not None


def _with_new(known: tuple[K, ...], items: Iterable[K]) -> tuple[K, ...]:
    new = tuple(item for item in items if item not in known)
    return known + new if new else known

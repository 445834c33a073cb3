"""What a live-feed (WebSocket) client may send: messages per second and subscriptions per
connection. Pure functions over frozen values, no I/O; the web layer acts on the verdicts.

Both limits warn first and close only if the client goes on: the first message over the rate
gets an ``error`` and is not handled, as is every other one for :data:`GRACE_SECONDS`; one still
over the rate after that closes the connection (1008). The first subscription past the limit
gets an ``error``; a second one, with no unsubscribe in between, closes the connection.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["GRACE_SECONDS", "MessageBudget", "Verdict", "spend", "subscription_verdict"]

#: Seconds a client warned for its rate has to slow down before it is closed.
GRACE_SECONDS = 1.0


class Verdict(enum.Enum):
    ALLOW = "allow"  # handle the message / take the subscription
    WARN = "warn"  # refuse it with an error message; the connection stays
    DROP = "drop"  # refuse it silently (the client was warned a moment ago)
    CLOSE = "close"  # close the connection (1008)


@attrs.frozen
class MessageBudget:
    """A token bucket holding up to one second of messages at ``rate`` per second."""

    tokens: float
    updated: float  # clock reading (seconds) of ``tokens``
    warned_at: float | None = None  # when the client was last warned, None once it calmed down

    @classmethod
    def full(cls, rate: float, now: float) -> MessageBudget:
        return cls(max(rate, 1.0), now)


def spend(budget: MessageBudget, now: float, rate: float) -> tuple[Verdict, MessageBudget]:
    """The verdict on one message arriving at ``now``, and the budget after it.

    The bucket refills at ``rate`` per second up to ``max(rate, 1)``; a client that lets it fill
    up again is no longer considered warned.
    """
    capacity = max(rate, 1.0)
    tokens = min(capacity, budget.tokens + (now - budget.updated) * rate)
    warned_at = None if tokens >= capacity else budget.warned_at
    if tokens >= 1.0:
        return Verdict.ALLOW, MessageBudget(tokens - 1.0, now, warned_at)
    if warned_at is None:
        return Verdict.WARN, MessageBudget(tokens, now, now)
    if now - warned_at < GRACE_SECONDS:
        return Verdict.DROP, MessageBudget(tokens, now, warned_at)
    return Verdict.CLOSE, MessageBudget(tokens, now, warned_at)


def subscription_verdict(current: int, limit: int, warned: bool) -> Verdict:
    """The verdict on a new subscription of a client holding ``current`` of at most ``limit``,
    ``warned`` if a subscription of its was refused since its last unsubscribe."""
    if current < limit:
        return Verdict.ALLOW
    return Verdict.CLOSE if warned else Verdict.WARN

"""Retrying storage calls: what an actor does when the database is away."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..storage import StorageError

__all__ = ["RETRY_INITIAL", "RETRY_MAX", "until_it_succeeds"]

T = TypeVar("T")

#: First delay before retrying a failed storage call, doubled on each failure up to RETRY_MAX:
#: quick to notice a database that is back, and at most one attempt every two seconds while not.
RETRY_INITIAL = 0.05
RETRY_MAX = 2.0


async def until_it_succeeds(
    operation: Callable[[], Awaitable[T]],
    *,
    logger: logging.Logger,
    what: str,
    on_failure: Callable[[StorageError], None] | None = None,
    give_up: tuple[type[StorageError], ...] = (),
) -> T:
    """``await operation()`` until it does not raise StorageError, with capped exponential backoff.

    Logs the first failure and every 20th; ``on_failure`` hears of each one. Errors of the
    ``give_up`` types are raised at once: retrying cannot help. Cancellation (a shutdown
    deadline) is the only other way out.
    """
    delay = RETRY_INITIAL
    failures = 0
    while True:
        try:
            result = await operation()
        except StorageError as exc:
            if isinstance(exc, give_up):
                raise
            failures += 1
            if on_failure is not None:
                on_failure(exc)
            if failures == 1 or failures % 20 == 0:
                logger.error("%s failed (attempt %d), retrying: %s", what, failures, exc)
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            continue
        if failures:
            logger.warning("%s succeeded after %d failed attempt(s)", what, failures)
        return result

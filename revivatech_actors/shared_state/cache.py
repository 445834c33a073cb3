"""Caches of computed answers (the funnel's): in process, or in Redis so that every instance
shares them. Both store bytes under a key for a number of seconds; a cache that cannot be
reached behaves as empty (the answer is computed again), it never fails the request."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol, cast

import redis

from .redis import RedisConnection

__all__ = ["AnswerCache", "LocalCache", "RedisCache"]

logger = logging.getLogger(__name__)


class AnswerCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...


class LocalCache:
    """In this process: at most ``max_entries`` answers, the oldest dropped first."""

    def __init__(self, max_entries: int = 256, clock=time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + ttl, value)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class RedisCache:
    """In Redis, under ``prefix`` + key, expiring by itself (SET with PX). Redis away: a miss, and
    nothing cached (the connection logs the outage once)."""

    def __init__(self, connection: RedisConnection, prefix: str) -> None:
        self._connection = connection
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        try:
            # The client does not decode responses: a value is bytes, as stored.
            return await self._connection.call(
                lambda client: cast("bytes | None", client.get(self._prefix + key))
            )
        except (redis.RedisError, OSError) as exc:
            logger.debug("funnel cache in Redis unavailable (computing instead): %s", exc)
            return None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._connection.call(
                lambda client: client.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))
            )
        except (redis.RedisError, OSError) as exc:
            logger.debug("funnel cache in Redis unavailable (answer not cached): %s", exc)

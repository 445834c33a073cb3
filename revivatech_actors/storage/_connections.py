"""Connections, worker threads and timeouts: the half of a storage every engine shares.

An engine supplies small *blocking* hooks (connect, close, translate a driver error, ping...);
this module runs them in worker threads and owns the connection lifecycle, timeouts,
reconnection and error translation.

A ``Lane`` is one connection plus a ``trio.CapacityLimiter(1)``, so at most one worker thread
touches a connection at a time. Each storage has a *writer* lane (all writes and migrations) and
a *health* lane (ping, catalog reads), so a health check never waits behind a long write. Health
calls are bounded by ``ping_timeout`` and abandon their thread when it expires; the abandoned
lane is retired (its thread closes the connection once it returns) and the next call opens a
fresh one, so a hung network never blocks a caller and never poisons later calls.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar

import attrs
import trio

from ..domain.secrets import mask_password
from ._errors import StorageError, StorageUnavailable
from ._messages import first_line

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PING_TIMEOUT",
    "HEALTH",
    "WRITER",
    "Lane",
    "StorageConnections",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait for a connection in ``open()``. Long enough for a database across a network
#: (TLS handshake included), short enough that a wrong host fails the start visibly.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a health check may take. Health endpoints are polled often; a database that needs more
#: than a second to answer ``SELECT 1`` is, for its callers, unavailable.
DEFAULT_PING_TIMEOUT = 1.0

WRITER = "writer"
HEALTH = "health"


@attrs.define(eq=False)
class Lane:
    """A connection and the limiter that lets one worker thread at a time use it.

    ``busy`` and ``retired`` are guarded by ``lock``. While ``busy`` only the worker thread touches
    ``conn``; otherwise only the trio side does. Whoever sees ``retired`` last closes ``conn``.
    """

    purpose: str
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    conn: Any = None
    busy: bool = False
    retired: bool = False
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __repr__(self) -> str:
        state = "retired" if self.retired else "busy" if self.busy else "idle"
        return f"<Lane {self.purpose} {state} connected={self.conn is not None}>"


def _nothing(conn: Any) -> None:
    """A call that only makes sure the lane is connected."""


class StorageConnections(abc.ABC):
    """A storage's two connections (writer and health) and the worker threads that use them.

    ``Storage`` builds on it; the aggregates' methods reach the database through ``_on_writer``
    (or ``_call``), always in a worker thread, one thread per connection at a time.
    """

    #: Exceptions of the driver, translated to StorageError by ``_translate_error``.
    _driver_errors: ClassVar[tuple[type[Exception], ...]]
    #: The engine's named queries (``_queries.load_queries``).
    _queries: ClassVar[Mapping[str, str]]

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
    ) -> None:
        if not connect_timeout > 0:
            msg = f"connect_timeout must be positive, got {connect_timeout!r}"
            raise ValueError(msg)
        if not ping_timeout > 0:
            msg = f"ping_timeout must be positive, got {ping_timeout!r}"
            raise ValueError(msg)
        self._url = url
        self._connect_timeout = float(connect_timeout)
        self._ping_timeout = float(ping_timeout)
        self._state = "new"  # new -> open -> closed (open() again is allowed after close)
        self._writer: Lane | None = None
        self._health: Lane | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url_for_display} {self._state}>"

    # ----------------------------------------------------------------------------- public API

    @property
    def url_for_display(self) -> str:
        """The URL with any password masked: safe for logs, health output and error messages."""
        return mask_password(self._url)

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def connect_timeout(self) -> float:
        return self._connect_timeout

    @property
    def ping_timeout(self) -> float:
        return self._ping_timeout

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect the writer and the health connection. Does nothing if already open.

        Guarantees: returns or raises within ``connect_timeout`` seconds, even when the host
        swallows packets; on failure nothing stays connected.

        Raises:
            StorageUnavailable: the database cannot be reached, with a one-line message naming
                where it was looked for (host:port, or the file).
        """
        if self._state == "open":
            return
        writer, health = Lane(WRITER), Lane(HEALTH)
        try:
            with trio.fail_after(self._connect_timeout):
                await self._call(writer, _nothing, abandon=True)
                await self._call(health, _nothing, abandon=True)
        except trio.TooSlowError:
            await self._retire(writer)
            await self._retire(health)
            msg = f"{self._where()}: no connection within {self._connect_timeout:g} s"
            raise StorageUnavailable(msg) from None
        except BaseException:
            await self._retire(writer)
            await self._retire(health)
            raise
        self._writer, self._health = writer, health
        self._state = "open"
        # Debug: every actor opens its own Storage; `serve` logs one line per start instead.
        logger.debug("storage open: %s", self.url_for_display)

    async def close(self) -> None:
        """Close both connections. Idempotent; later calls (except ``open``) raise
        StorageUnavailable.

        A call still running in a worker thread finishes first; its thread then closes the
        connection it used.
        """
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        writer, health = self._writer, self._health
        self._writer = self._health = None
        for lane in (health, writer):
            if lane is not None:
                await self._retire(lane)
        logger.debug("storage closed: %s", self.url_for_display)

    async def ping(self) -> None:
        """Check that the database answers, on the health connection (never behind the writer).

        Guarantees: returns or raises within ``ping_timeout`` seconds; a lost or hung health
        connection is replaced, so the next ping reconnects.

        Raises:
            StorageUnavailable: no answer in time, an error, or the storage is not open.
        """
        await self._call_health(self._ping_blocking, "ping")

    async def table_names(self) -> set[str]:
        """The names of the tables in the database (the current schema on PostgreSQL).

        Answered on the health connection within ``ping_timeout``, like ``ping``.

        Raises:
            StorageUnavailable: as ``ping``.
        """
        return await self._call_health(self._table_names_blocking, "table_names")

    # ------------------------------------------------------------------ running on a lane

    async def _on_writer(self, fn: Callable[[Any], T]) -> T:
        return await self._call(self._open_lane(WRITER), fn, abandon=False)

    def _open_lane(self, purpose: str) -> Lane:
        lane = self._writer if purpose == WRITER else self._health
        if self._state != "open" or lane is None:
            state = "closed" if self._state == "closed" else "not open"
            msg = f"{self.url_for_display}: storage is {state}"
            raise StorageUnavailable(msg)
        return lane

    async def _call_health(self, fn: Callable[[Any], T], what: str) -> T:
        """Run ``fn`` on the health lane within ``ping_timeout``; replace the lane if it hangs."""
        lane = self._open_lane(HEALTH)
        try:
            with trio.fail_after(self._ping_timeout):
                return await self._call(lane, fn, abandon=True)
        except trio.TooSlowError:
            if self._health is lane:
                self._health = Lane(HEALTH)
            await self._retire(lane)
            msg = f"{self._where()}: no answer to {what} within {self._ping_timeout:g} s"
            raise StorageUnavailable(msg) from None
        except StorageUnavailable:
            raise
        except StorageError as exc:
            # For a health check every failure means "unavailable".
            raise StorageUnavailable(str(exc)) from exc

    async def _call(self, lane: Lane, fn: Callable[[Any], T], *, abandon: bool) -> T:
        """Run ``fn(connection)`` in a worker thread on ``lane``, (re)connecting first if needed.

        Driver errors come out as StorageError / StorageUnavailable; other exceptions unchanged.
        With ``abandon`` a cancelled call returns at once and its thread finishes on its own.
        """

        def work() -> T:
            with lane.lock:
                if lane.retired:  # closed, or given up on after a timeout while this call queued
                    msg = f"{self._where()}: connection closed"
                    raise StorageUnavailable(msg)
                lane.busy = True
            try:
                conn = lane.conn
                if conn is not None and not self._is_usable(conn):
                    logger.warning(
                        "%s connection to %s lost; reconnecting", lane.purpose, self._where()
                    )
                    lane.conn = None
                    self._close_quietly(conn)
                    conn = None
                if conn is None:
                    try:
                        conn = self._connect(lane.purpose)
                    except self._driver_errors + (OSError,) as exc:
                        msg = f"cannot connect to {self._where()}: {first_line(exc)}"
                        raise StorageUnavailable(msg) from exc
                    lane.conn = conn
                try:
                    return fn(conn)
                except self._driver_errors as exc:
                    raise self._translate_error(exc) from exc
                except StorageError:  # raised on purpose by fn, after the driver's error
                    raise
                except BaseException:
                    # Not the driver's error: the connection may be stuck mid-protocol (a COPY
                    # or pipeline left open). Never reuse it; the next call reconnects.
                    lane.conn = None
                    self._close_quietly(conn)
                    raise
            finally:
                with lane.lock:
                    lane.busy = False
                    stale, lane.conn = (lane.conn, None) if lane.retired else (None, lane.conn)
                if stale is not None:
                    self._close_quietly(stale)

        return await trio.to_thread.run_sync(work, limiter=lane.limiter, abandon_on_cancel=abandon)

    async def _retire(self, lane: Lane) -> None:
        """Stop using ``lane``: close its connection now, or let its running thread do it."""
        with lane.lock:
            lane.retired = True
            conn, lane.conn = (None, lane.conn) if lane.busy else (lane.conn, None)
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close_quietly, conn)

    def _close_quietly(self, conn: Any) -> None:
        try:
            self._close_connection(conn)
        except Exception:
            logger.debug("error while closing a connection to %s", self._where(), exc_info=True)

    def _claim_lane(self, lane: Lane) -> Any:
        """``lane``'s connection, marked busy for the caller on the event loop, or None when a
        thread holds it, it is retired, or it is not connected yet. Release with
        ``_release_lane``."""
        try:
            lane.limiter.acquire_nowait()  # no checkpoint: the caller runs on at once
        except trio.WouldBlock:
            return None
        with lane.lock:
            conn = lane.conn
            if lane.retired or lane.busy or conn is None or not self._is_usable(conn):
                conn = None
            else:
                lane.busy = True
        if conn is None:
            lane.limiter.release()
        return conn

    async def _release_lane(self, lane: Lane, *, broken: bool) -> None:
        """Undo ``_claim_lane``. With ``broken`` (the connection is dead, or left mid-protocol by
        a cancellation) or a lane retired meanwhile, the connection is closed; the next call
        reconnects."""
        with lane.lock:
            lane.busy = False
            stale, lane.conn = (lane.conn, None) if broken or lane.retired else (None, lane.conn)
        lane.limiter.release()
        if stale is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close_quietly, stale)

    # ---------------------------------------------------------------- engine hooks (blocking)

    @abc.abstractmethod
    def _where(self) -> str:
        """Where the database is, for messages: ``PostgreSQL at host:port`` or the file."""

    @abc.abstractmethod
    def _connect(self, purpose: str) -> Any:
        """Open a connection for ``purpose`` ("writer" or "health"); raise the driver's error."""

    @abc.abstractmethod
    def _is_usable(self, conn: Any) -> bool:
        """False when the connection is closed or lost and must be replaced."""

    @abc.abstractmethod
    def _close_connection(self, conn: Any) -> None:
        """Close a connection (errors are logged and ignored by the caller)."""

    @abc.abstractmethod
    def _translate_error(self, exc: Exception) -> StorageError:
        """A driver error as StorageUnavailable (connection-level) or StorageError (the rest)."""

    @abc.abstractmethod
    def _ping_blocking(self, conn: Any) -> None:
        """Run a trivial query that proves the database answers."""

    @abc.abstractmethod
    def _table_names_blocking(self, conn: Any) -> set[str]: ...

    @abc.abstractmethod
    def _transaction(self, conn: Any) -> contextlib.AbstractContextManager[None]:
        """A context manager: one transaction, committed on success, rolled back on error."""

    @abc.abstractmethod
    def _read_snapshot(self, conn: Any) -> contextlib.AbstractContextManager[None]:
        """A read transaction whose statements all see one state of the database (within one
        already open: that one's)."""

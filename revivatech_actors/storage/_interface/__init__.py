"""The storage interface: what the service asks of its database, whatever the engine.

One abstract class per aggregate, composed into ``Storage``; an engine (``storage/postgres``,
``storage/sqlite``) supplies each aggregate's small *blocking* hooks in a module of the same
name. The public methods run those hooks on the writer's connection in a worker thread
(``_connections``) and hold what both engines share: idempotent batches (``events``), fenced
profile writes (``profiles``), lease rounds and log pages (``log``), the erasure's two
transactions (``lifecycle``).
"""

from __future__ import annotations

from importlib.resources.abc import Traversable
from typing import ClassVar

from .._connections import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_TIMEOUT
from .._migrate import MigratingStorage
from .events import CommittedBatch, EventsStorage
from .funnel import FunnelStorage
from .history import HistoryStorage
from .lifecycle import LifecycleStorage
from .log import LOG_PAGE_EVENTS, LogStorage
from .profiles import ProfilesStorage
from .realtime import RealtimeStorage
from .reports import ReportsStorage
from .scores import ScoresStorage

__all__ = [
    "LOG_PAGE_EVENTS",
    "CommittedBatch",
    "EventsStorage",
    "FunnelStorage",
    "HistoryStorage",
    "LifecycleStorage",
    "LogStorage",
    "ProfilesStorage",
    "RealtimeStorage",
    "ReportsStorage",
    "ScoresStorage",
    "Storage",
]


class Storage(
    MigratingStorage,
    EventsStorage,
    ProfilesStorage,
    ScoresStorage,
    FunnelStorage,
    ReportsStorage,
    RealtimeStorage,
    LifecycleStorage,
    HistoryStorage,
):
    """Where the service keeps its data: one interface, one implementation per engine.

    Create it with ``open_storage(url)``, then ``await open()`` (or ``async with``). All methods
    are trio-friendly: blocking driver calls run in worker threads, one thread per connection at
    a time. Errors are ``StorageError`` subclasses with one-line messages that never show a
    password.
    """

    #: "sqlite" or "postgresql".
    engine: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        migrations_dir: Traversable | None = None,
    ) -> None:
        """Do not connect yet; see ``open()``.

        Args:
            url: the database URL (see ``open_storage``).
            connect_timeout: seconds ``open()`` (and a reconnect) may take.
            ping_timeout: seconds ``ping()`` and ``table_names()`` may take.
            migrations_dir: a folder of ``NNNN_name.sql`` files to use instead of the migrations
                shipped for this engine (tests, tools).

        Raises:
            ValueError: a timeout is not positive.
        """
        super().__init__(url, connect_timeout=connect_timeout, ping_timeout=ping_timeout)
        self._migrations_dir = migrations_dir

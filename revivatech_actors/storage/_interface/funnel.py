"""The conversion funnel (``domain.funnel`` says who reaches each step)."""

from __future__ import annotations

import abc
from typing import Any

from ...domain.funnel import FunnelQuery, FunnelStep
from .._connections import StorageConnections

__all__ = ["FunnelStorage"]


class FunnelStorage(StorageConnections):
    """``funnel``, and the hook an engine supplies for it."""

    async def funnel(self, query: FunnelQuery, *, timeout: float) -> list[FunnelStep]:
        """Count ``query``'s funnel (``domain.funnel`` defines who reaches each step): one
        :class:`FunnelStep` per step, in order. One statement, values passed as parameters; its
        cost grows with the events of the steps' types in the range, not with their square.

        Raises:
            QueryTimeout: the database spent ``timeout`` seconds on it and cancelled it (the
                call's thread is not left running).
        """
        return await self._on_writer(lambda conn: self._funnel_blocking(conn, query, timeout))

    @abc.abstractmethod
    def _funnel_blocking(
        self, conn: Any, query: FunnelQuery, timeout: float
    ) -> list[FunnelStep]: ...

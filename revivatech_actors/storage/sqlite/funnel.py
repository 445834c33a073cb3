"""The conversion funnel on SQLite, interrupted by a progress handler past its time."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from typing import Any

from ...domain.funnel import FunnelQuery, FunnelStep
from .._errors import QueryTimeout
from .._interface.funnel import FunnelStorage
from .connection import read_snapshot
from .queries import Q
from .timestamps import format_timestamp

__all__ = ["SQLiteFunnel"]


def _funnel_sql(steps: int, types: int) -> str:
    """The funnel of ``steps`` steps over ``types`` event types as one statement (see
    ``sql/sqlite/queries/funnel.sql``)."""
    ctes = [
        Q["funnel_events"].replace("{types}", ", ".join(f":type{i}" for i in range(types))),
        Q["funnel_first_step"],
    ]
    ctes += [
        Q["funnel_next_step"].replace("{k}", str(k)).replace("{prev}", str(k - 1))
        for k in range(2, steps + 1)
    ]
    figures = [Q["funnel_step_figures"].replace("{k}", str(k)) for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n".join(figures)


class SQLiteFunnel(FunnelStorage):
    """The funnel hook of ``_interface.funnel``."""

    def _funnel_blocking(
        self, conn: sqlite3.Connection, query: FunnelQuery, timeout: float
    ) -> list[FunnelStep]:
        types = sorted(set(query.steps))
        params: dict[str, Any] = {
            "start": format_timestamp(query.start),
            "end": format_timestamp(query.end),
            "horizon": format_timestamp(query.end + dt.timedelta(seconds=query.window)),
            "window": query.window,
            **{f"type{i}": kind for i, kind in enumerate(types)},
        }
        for k, step in enumerate(query.steps, 1):
            params[f"step{k}"] = step
            if k > 1:
                params[f"window{k}"] = (
                    query.step_windows[k - 2] if query.step_windows else query.window
                )
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)  # true: interrupt
        try:
            with read_snapshot(conn):
                row = conn.execute(_funnel_sql(len(query.steps), len(types)), params).fetchone()
        except sqlite3.OperationalError as exc:
            if time.monotonic() <= deadline:
                raise
            msg = f"{self._where()}: the funnel took longer than {timeout:g} s and was cancelled"
            raise QueryTimeout(msg) from exc
        finally:
            conn.set_progress_handler(None, 0)
        return [FunnelStep(row[2 * i], row[2 * i + 1]) for i in range(len(query.steps))]

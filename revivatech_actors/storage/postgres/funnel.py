"""The conversion funnel on PostgreSQL, bounded by a statement timeout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import psycopg.errors

from ...domain.funnel import FunnelQuery, FunnelStep
from .._errors import QueryTimeout
from .._interface.funnel import FunnelStorage
from .._queries import load_queries

__all__ = ["PostgresFunnel"]

Q = load_queries("postgres")


def _funnel_sql(steps: int) -> str:
    """The funnel of ``steps`` steps as one statement (see ``sql/postgres/queries/funnel.sql``):
    the step count shapes the text, every value is a parameter."""
    ctes = [Q["funnel_events"], Q["funnel_first_step"]]
    ctes += [
        Q["funnel_next_step"].replace("{k}", str(k)).replace("{prev}", str(k - 1))
        for k in range(2, steps + 1)
    ]
    figures = [Q["funnel_step_figures"].replace("{k}", str(k)) for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n".join(figures)


def _funnel_params(query: FunnelQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "types": sorted(set(query.steps)),
        "start": query.start,
        "end": query.end,
        "horizon": query.end + dt.timedelta(seconds=query.window),
        "window": query.window,
    }
    for k, step in enumerate(query.steps, 1):
        params[f"step{k}"] = step
        if k > 1:
            params[f"window{k}"] = query.step_windows[k - 2] if query.step_windows else query.window
    return params


class PostgresFunnel(FunnelStorage):
    """The funnel hook of ``_interface.funnel``."""

    def _funnel_blocking(
        self, conn: psycopg.Connection[Any], query: FunnelQuery, timeout: float
    ) -> list[FunnelStep]:
        params = _funnel_params(query)
        try:
            with conn.transaction():
                conn.execute(Q["funnel_timeout"], (f"{max(1, round(timeout * 1000))}ms",))
                conn.execute(Q["funnel_no_nested_loops"])
                row = conn.execute(_funnel_sql(len(query.steps)), params).fetchone()
        except psycopg.errors.QueryCanceled as exc:
            msg = f"{self._where()}: the funnel took longer than {timeout:g} s and was cancelled"
            raise QueryTimeout(msg) from exc
        assert row is not None
        return [FunnelStep(row[2 * i], row[2 * i + 1]) for i in range(len(query.steps))]

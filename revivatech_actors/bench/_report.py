"""Figures of a run: counters, latency summaries, and how they are printed.

Shared by the modes: ``--mode single|batch`` fill :class:`Figures`, ``--mode ws`` summarises
its delays with :func:`latency_summary`. Pure: printing takes the figures already computed.
"""

from __future__ import annotations

import math
import sys
from array import array
from typing import Any

import attrs

__all__ = [
    "Figures",
    "Tick",
    "latency_summary",
    "percentile",
    "print_tick",
    "table",
    "ws_table",
]

#: One progress tick: (second, requests, events, 503s, errors) during that second.
Tick = tuple[int, int, int, int, int]


def percentile(sorted_values: array | list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of already sorted values; 0.0 when there are none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(samples: array | list[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of ``samples`` (any order), rounded to 3 decimals."""
    ordered = sorted(samples)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    figures = {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)}
    figures |= {"max": ordered[-1] if ordered else 0.0, "mean": mean}
    return {k: round(v, 3) for k, v in figures.items()}


@attrs.define
class Figures:
    """Counters and raw latency samples (ms) of the measured window; mergeable across processes."""

    mode: str
    connections: int
    processes: int = 1
    duration_s: float = 0.0
    requests: int = 0
    events: int = 0
    status_counts: dict[int, int] = attrs.field(factory=dict)
    overloaded_503: int = 0
    errors: int = 0
    connection_errors: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    latencies_ms: array = attrs.field(factory=lambda: array("d"))
    #: answers with 2xx or 503 over the whole run, warmup included (decides the exit code).
    answered_total: int = 0

    def merge(self, other: Figures) -> None:
        """Add ``other``'s counters and samples to these (another process's share of the run)."""
        for name in (
            "requests",
            "events",
            "overloaded_503",
            "errors",
            "connection_errors",
            "accepted",
            "duplicates",
            "rejected",
            "answered_total",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for status, n in other.status_counts.items():
            self.status_counts[status] = self.status_counts.get(status, 0) + n
        self.latencies_ms.extend(other.latencies_ms)
        self.duration_s = max(self.duration_s, other.duration_s)

    def as_dict(self) -> dict[str, Any]:
        """The figures as ``bench --json`` prints them (rates per second, latency summary)."""
        seconds = self.duration_s or 1.0
        return {
            "mode": self.mode,
            "connections": self.connections,
            "processes": self.processes,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "events": self.events,
            "requests_per_s": round(self.requests / seconds, 1),
            "events_per_s": round(self.events / seconds, 1),
            "latency_ms": latency_summary(self.latencies_ms),
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "overloaded_503": self.overloaded_503,
            "errors": self.errors,
            "connection_errors": self.connection_errors,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


def print_tick(tick: Tick) -> None:
    """One progress line on stderr (stdout carries only the figures)."""
    second, requests, events, overloaded, errors = tick
    print(
        f"{second:4d}s  {requests:7d} req/s  {events:8d} events/s  503s {overloaded:5d}  "
        f"errors {errors:5d}",
        file=sys.stderr,
        flush=True,
    )


def table(d: dict[str, Any]) -> str:
    """:meth:`Figures.as_dict` as a table for people."""
    lat = d["latency_ms"]
    rows = [
        ("mode", f"{d['mode']}"),
        ("connections", f"{d['connections']} in {d['processes']} process(es)"),
        ("measured", f"{d['duration_s']} s"),
        ("requests", f"{d['requests']}  ({d['requests_per_s']}/s)"),
        ("events", f"{d['events']}  ({d['events_per_s']}/s)"),
        ("latency ms", "  ".join(f"{k} {v}" for k, v in lat.items())),
        ("status", "  ".join(f"{k}: {v}" for k, v in d["status_counts"].items()) or "-"),
        ("overloaded 503", d["overloaded_503"]),
        ("errors", f"{d['errors']}  (connection errors {d['connection_errors']})"),
        ("accepted", f"{d['accepted']}  duplicates {d['duplicates']}  rejected {d['rejected']}"),
    ]
    return "\n".join(f"{name:<15} {value}" for name, value in rows)


def ws_table(figures: dict[str, Any]) -> str:
    """The ``--mode ws`` figures as a table for people: one line each."""
    lines = []
    for name, value in figures.items():
        shown = (
            "  ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        lines.append(f"{name:<26} {shown}")
    return "\n".join(lines)

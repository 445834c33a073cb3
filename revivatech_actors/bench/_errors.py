"""The error every bench mode reports a failed run with (shared, so no mode imports another)."""

from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(Exception):
    """The run cannot start or produced nothing usable; the message names the URL."""

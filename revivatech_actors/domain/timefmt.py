"""Timestamps as the API shows them: RFC 3339, UTC, millisecond precision, ``Z`` suffix."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_datetime", "iso_utc"]


def iso_utc(epoch_seconds: float | None) -> str | None:
    """``1721127303.268`` → ``"2024-07-16T10:55:03.268Z"``; None stays None."""
    if epoch_seconds is None:
        return None
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_datetime(moment: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

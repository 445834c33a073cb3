"""How SQLite holds times: UTC text of fixed width (``TIMESTAMP_FORMAT``), so comparing text
compares times. The one place that format is written down."""

from __future__ import annotations

import datetime as dt

__all__ = [
    "TIMESTAMP_FORMAT",
    "format_timestamp",
    "optional_datetime",
    "optional_timestamp",
    "parse_timestamp",
]

#: Timestamps are stored as UTC text of fixed width, so comparing text compares times.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_timestamp(value: dt.datetime) -> str:
    """An aware datetime as stored: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Raises:
        ValueError: ``value`` is naive (its zone would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value!r}: timestamps must carry a time zone"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> dt.datetime:
    """A stored timestamp as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def optional_timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def optional_datetime(text: str | None) -> dt.datetime | None:
    return None if text is None else parse_timestamp(text)

"""The original service's stored rows as this service's events. Pure functions, no I/O.

The original RevivaTech service kept its history in two PostgreSQL tables (created by its first
analytics migration; a copy is in ``tests/data/original_001_add_analytics_tables.sql``):
``analytics_events``, one row per tracker event, and ``customer_journeys``, one row per
``POST /track/journey`` call. Each row is turned here into the very request body the original's
client would send this service live (:func:`event_body`, :func:`step_body`) and validated by the
same rules (``validation.validate_event``, ``journeys.validate_journey_step``). History and live
traffic therefore dedupe against each other: a tracker id that is not a UUID maps to the same
UUIDv5 whichever way it arrives, and a journey row's id becomes the client id
``"customer_journeys:<id>"``, so importing twice stores nothing twice.

What the event model has no field for: ``ip_address`` becomes the event's address, kept as
``ingest.client_ip`` says (:func:`.addresses.kept_address`); ``geo_country`` and ``geo_city`` go
into ``properties``; ``processed_at`` (when the original's queue wrote the row) only stands in for
a missing ``created_at``. Times are ``TIMESTAMP WITHOUT TIME ZONE`` there: read in the zone the
original's database wrote them in (UTC unless told otherwise).
"""

from __future__ import annotations

import decimal
import ipaddress
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs
import orjson

from .addresses import kept_address
from .journeys import validate_journey_step
from .validation import FieldError, ValidEvent, truncate_payload, validate_event

__all__ = [
    "EVENT_COLUMNS",
    "EVENTS_TABLE",
    "JOURNEYS_TABLE",
    "JOURNEY_COLUMNS",
    "JOURNEY_ID_PREFIX",
    "REQUIRED_COLUMNS",
    "TABLES",
    "ImportedRow",
    "TableCounts",
    "event_body",
    "import_row",
    "progress_line",
    "skip_reason",
    "step_body",
    "utc_time",
]

EVENTS_TABLE = "analytics_events"
JOURNEYS_TABLE = "customer_journeys"
#: The tables read, in the order rows of equal time are handed on.
TABLES = (EVENTS_TABLE, JOURNEYS_TABLE)

#: Columns of ``analytics_events`` read: what the original's AnalyticsService.storeEvent wrote,
#: plus ``utm_content`` and ``utm_term`` (in both of its schemas). A column a deployment lacks
#: reads as NULL.
EVENT_COLUMNS = (
    "id",
    "user_fingerprint",
    "session_id",
    "user_id",
    "event_type",
    "event_name",
    "event_data",
    "page_url",
    "referrer_url",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "device_type",
    "browser",
    "os",
    "screen_resolution",
    "ip_address",
    "geo_country",
    "geo_city",
    "created_at",
    "processed_at",
)
#: Columns of ``customer_journeys`` read: what the original's ``POST /track/journey`` wrote.
#: ``sequence_number`` is not carried over: this service numbers a visitor's steps itself.
JOURNEY_COLUMNS = (
    "id",
    "user_fingerprint",
    "session_id",
    "user_id",
    "journey_stage",
    "touchpoint",
    "time_spent_seconds",
    "entry_method",
    "traffic_source",
    "content_consumed",
    "actions_taken",
    "stage_entered_at",
    "created_at",
)
#: Columns without which a table cannot be read in order (the keyset is ``(created_at, id)``).
REQUIRED_COLUMNS = ("id", "created_at")
#: Prefix of a journey row's id in the client id of the step it becomes.
JOURNEY_ID_PREFIX = JOURNEYS_TABLE + ":"

#: The tracker's field names that a row of ``analytics_events`` carries under the same name.
_EVENT_FIELDS = (
    "user_fingerprint",
    "session_id",
    "user_id",
    "event_type",
    "event_name",
    "event_data",
    "page_url",
    "referrer_url",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "device_type",
    "browser",
    "os",
    "screen_resolution",
)
_STEP_FIELDS = (
    "user_fingerprint",
    "session_id",
    "user_id",
    "journey_stage",
    "touchpoint",
    "time_spent_seconds",
    "entry_method",
    "traffic_source",
    "content_consumed",
    "actions_taken",
)
#: Journey columns whose ``{}`` is the original's default for "not sent" (``req.body.x || {}``).
_EMPTY_MEANS_ABSENT = frozenset({"content_consumed", "actions_taken"})
_NO_TIME = "is NULL (and so is {other}): the row has no time to be stored at"


def utc_time(value: datetime | None, zone: tzinfo) -> datetime | None:
    """A column's time in UTC: a naive ``TIMESTAMP WITHOUT TIME ZONE`` is read in ``zone``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _plain(value: Any) -> Any:
    """A column value as JSON would carry it: NUMERIC's Decimal as a float."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def event_body(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """The body the original tracker would send for this ``analytics_events`` row: its field
    names, ``timestamp`` as RFC 3339 of ``created_at`` (else ``processed_at``), NULL columns
    left out, ``geo_*`` in ``properties``. ``ip_address`` is not part of it (see
    :func:`import_row`)."""
    body: dict[str, Any] = {}
    if row.get("id") is not None:
        body["id"] = str(row["id"])
    for name in _EVENT_FIELDS:
        value = row.get(name)
        if value is not None:
            body[name] = _plain(value)
    geo = {name: row[name] for name in ("geo_country", "geo_city") if row.get(name) is not None}
    if geo:
        body["properties"] = geo
    moment = utc_time(row.get("created_at"), zone) or utc_time(row.get("processed_at"), zone)
    if moment is not None:
        body["timestamp"] = moment.isoformat()
    return body


def step_body(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """The ``POST /track/journey`` body the original's client would send for this
    ``customer_journeys`` row, timed at ``stage_entered_at`` (else ``created_at``), with the client
    id ``"customer_journeys:<id>"``. An empty ``content_consumed`` / ``actions_taken`` is the
    original's default for one not sent, and is left out like a NULL."""
    body: dict[str, Any] = {}
    if row.get("id") is not None:
        body["id"] = JOURNEY_ID_PREFIX + str(row["id"])
    for name in _STEP_FIELDS:
        value = row.get(name)
        if value is None or (name in _EMPTY_MEANS_ABSENT and value == {}):
            continue
        body[name] = _plain(value)
    moment = utc_time(row.get("stage_entered_at"), zone) or utc_time(row.get("created_at"), zone)
    if moment is not None:
        body["timestamp"] = moment.isoformat()
    return body


@attrs.frozen
class ImportedRow:
    """One source row, mapped: the valid event it becomes (``errors`` empty), or why not.

    ``payload`` is the body built for it (what a dead letter keeps); ``ip_address`` what is kept
    of the row's address under ``ingest.client_ip``."""

    table: str
    valid: ValidEvent | None
    errors: tuple[FieldError, ...]
    payload: str
    ip_address: str | None = None


def _kept_ip(value: Any, mode: str) -> str | None:
    if value is None:
        return None
    try:
        address = ipaddress.ip_interface(str(value)).ip  # INET may carry a netmask: 10.0.0.1/32
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return kept_address(mapped or address, mode)


def import_row(
    table: str, row: Mapping[str, Any], *, zone: tzinfo = UTC, client_ip: str = "anonymized"
) -> ImportedRow:
    """Map and validate one row of ``table`` (:data:`EVENTS_TABLE` or :data:`JOURNEYS_TABLE`)."""
    if table == EVENTS_TABLE:
        body = event_body(row, zone)
        result = validate_event(body)
        time_fields = ("created_at", "processed_at")
    elif table == JOURNEYS_TABLE:
        body = step_body(row, zone)
        result = validate_journey_step(body)
        time_fields = ("stage_entered_at", "created_at")
    else:
        msg = f"not a table of the original service: {table!r}"
        raise ValueError(msg)
    # Without a time, ingest would stamp the import's own time: history would look like today's.
    errors = (
        []
        if "timestamp" in body
        else [FieldError(time_fields[0], _NO_TIME.format(other=time_fields[1]))]
    )
    if not isinstance(result, ValidEvent):
        errors.extend(result)
    payload = truncate_payload(orjson.dumps(body, default=str).decode())
    if errors:
        return ImportedRow(table, None, tuple(errors), payload)
    assert isinstance(result, ValidEvent)  # validation returns a list only of one error or more
    ip = _kept_ip(row.get("ip_address"), client_ip) if table == EVENTS_TABLE else None
    return ImportedRow(table, result, (), payload, ip)


@attrs.define
class TableCounts:
    """What became of one table's rows: ``read`` = ``stored + duplicates + skipped``."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    #: why a row was not stored ("field: message", or the database's reason) -> rows
    skipped: Counter[str] = attrs.Factory(Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableCounts:
        return cls(
            int(data.get("read", 0)),
            int(data.get("stored", 0)),
            int(data.get("duplicates", 0)),
            Counter({str(k): int(v) for k, v in dict(data.get("skipped", {})).items()}),
        )


def skip_reason(errors: tuple[FieldError, ...]) -> str:
    """One line grouping rows refused for the same rules: the fields and messages, joined."""
    return "; ".join(f"{error.field or '(row)'}: {error.message}" for error in errors)


def progress_line(done: int, total: int, seconds: float, *, width: int = 24) -> str:
    """``"[#######.....]  1,200/5,000 rows  24.0%  3,100 rows/s  ETA 0:01"``: rows handled (stored,
    duplicate or skipped) of ``total``, the rate since start and the time left at that rate."""
    share = done / total if total else 1.0
    filled = min(width, int(share * width))
    rate = done / seconds if seconds > 0 else 0.0
    line = (
        f"[{'#' * filled}{'.' * (width - filled)}]  {done:,}/{total:,} rows  "
        f"{share * 100:5.1f}%  {rate:,.0f} rows/s"
    )
    if rate > 0 and total > done:
        left = int((total - done) / rate)
        line += (
            f"  ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
            if left >= 3600
            else f"  ETA {left // 60}:{left % 60:02d}"
        )
    return line

"""What the profile tables hold, as the storage interface takes and returns it; shared by engines.

Write rows (``profile_delta_row``, ``journey_rows``, ``session_delta_row``, ``score_record_row``)
are plain dicts that each engine serialises with orjson (datetimes become RFC 3339), so both
engines write the same figures from the same code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import attrs

from ..domain.profiles import ProfileDelta, ProfileState, Touch
from ..domain.scoring import CHURN, ENGAGEMENT, LEAD, PRICE_SENSITIVITY, ScoreRecord
from ..domain.sessions import SessionDelta
from ..domain.validation import DETAIL_FIELDS
from ..messages import Event

__all__ = [
    "EVENT_EXTRA_COLUMNS",
    "LeaseRound",
    "LogEntry",
    "profile_state",
    "log_entry",
    "LogPage",
    "PartitionPosition",
    "VisitorView",
    "RealtimeSeed",
    "StoredJourney",
    "StoredPrediction",
    "VisitorKeys",
    "event_extra_items",
    "event_extra_values",
    "profile_delta_row",
    "score_record_row",
    "session_delta_row",
    "stored_scores",
]


#: The analytics_events columns beside the core ones (migration 0005), in the order
#: :func:`event_extra_values` gives them: the client's own id, the tracker's detail fields, and
#: what the request said of the client.
EVENT_EXTRA_COLUMNS = ("client_event_id", *DETAIL_FIELDS, "user_agent", "ip_address")
_NO_DETAILS = (None,) * len(DETAIL_FIELDS)


def event_extra_values(e: Event) -> tuple[Any, ...]:
    """``e``'s values of :data:`EVENT_EXTRA_COLUMNS`, None where absent."""
    return (
        e.client_id,
        *(_NO_DETAILS if e.details is None else e.details),
        e.user_agent,
        e.ip_address,
    )


def event_extra_items(e: Event) -> dict[str, Any]:
    """``e``'s present values of :data:`EVENT_EXTRA_COLUMNS`, by column (usually few or none)."""
    items = (
        {}
        if e.details is None
        else {k: v for k, v in zip(DETAIL_FIELDS, e.details, strict=False) if v is not None}
    )
    if e.client_id is not None:
        items["client_event_id"] = e.client_id
    if e.user_agent is not None:
        items["user_agent"] = e.user_agent
    if e.ip_address is not None:
        items["ip_address"] = e.ip_address
    return items


@attrs.frozen
class RealtimeSeed:
    """The stored events of the realtime window, counted per bucket of
    ``domain.realtime.BUCKET_SECONDS`` (bucket = epoch seconds // BUCKET_SECONDS): what the
    metrics actor starts from, so a restart does not zero the dashboard."""

    bucket_counts: list[tuple[int, int, int, int]]  # (bucket, events, page views, conversions)
    page_views: list[tuple[int, str, int]]  # (bucket, page URL, views)
    users: dict[str, int]  # visitor -> newest bucket with an event
    sessions: dict[str, int]  # session -> newest bucket with an event


@attrs.frozen
class StoredPrediction:
    """One ``ml_predictions`` row."""

    model_type: str
    prediction_value: float
    confidence_score: float | None
    factors: list[dict[str, Any]]
    created_at: datetime
    model_version: str = "fixed"  # the weighting that produced it (docs/scoring.md)


@attrs.frozen
class StoredJourney:
    """One ``customer_journeys`` row: a visitor's session, its touchpoints as stored (``at`` is
    RFC 3339 text), its stage and where (and when) its first and last sourced touches came from."""

    session_id: str
    touchpoints: list[dict[str, Any]]
    stage: str | None
    first_touch_source: str | None
    last_touch_source: str | None
    started_at: datetime
    updated_at: datetime
    first_touch_at: datetime | None = None
    last_touch_at: datetime | None = None


@attrs.frozen
class VisitorKeys:
    """The sessions and days storage already counts for a visitor."""

    sessions: frozenset[str]
    days: frozenset[date]


def stored_scores(
    engagement: float | None, lead: float | None, churn: float | None, price: float | None
) -> dict[str, float]:
    """The profile's score columns as ``ProfileState.scores`` (models never recorded left out)."""
    values = {ENGAGEMENT: engagement, LEAD: lead, CHURN: churn, PRICE_SENSITIVITY: price}
    return {model: float(value) for model, value in values.items() if value is not None}


def profile_state(
    row: tuple[Any, ...],
    time: Callable[[Any], datetime | None],
    mapping: Callable[[Any], dict[str, int]],
) -> ProfileState:
    """A profile row (the columns of the ``profile_columns`` fragment) as a
    :class:`ProfileState`; ``time`` and ``mapping`` decode the engine's times and JSON maps."""
    (
        fp,
        events,
        sessions,
        page_views,
        started,
        bookings,
        value,
        first,
        last,
        last_booking,
        seconds,
        days,
        counts,
        segment,
        engagement,
        lead,
        churn,
        price,
        updated,
        devices,
        customer_id,
        customer_id_at,
        version,
    ) = row
    return ProfileState(
        user_fingerprint=fp,
        total_events=events,
        total_sessions=sessions,
        total_page_views=page_views,
        bookings_started=started,
        total_bookings=bookings,
        total_value=value,
        first_seen=time(first),
        last_seen=time(last),
        last_booking_at=time(last_booking),
        total_session_seconds=seconds,
        days_active=days,
        event_counts=mapping(counts),
        segment=segment,
        scores=stored_scores(engagement, lead, churn, price),
        updated_at=time(updated),
        device_counts=mapping(devices),
        customer_id=customer_id,
        customer_id_at=time(customer_id_at),
        version=version,
    )


def profile_delta_row(d: ProfileDelta) -> dict[str, Any]:
    return {
        "user_fingerprint": d.user_fingerprint,
        "events": d.events,
        "page_views": d.page_views,
        "bookings_started": d.bookings_started,
        "bookings_completed": d.bookings_completed,
        "value": d.value,
        "first_seen": d.first_seen,
        "last_seen": d.last_seen,
        "last_booking_at": d.last_booking_at,
        "days": sorted(d.active_days),
        "counts": d.event_counts,
        "devices": d.device_counts,
        "customer_id": d.customer_id,
        "customer_id_at": d.customer_id_at,
    }


def session_delta_row(s: SessionDelta) -> dict[str, Any]:
    # by hand, not attrs.asdict: this runs for every session of every profile write
    return {
        "session_id": s.session_id,
        "user_fingerprint": s.user_fingerprint,
        "started_at": s.started_at,
        "last_activity_at": s.last_activity_at,
        "event_count": s.event_count,
        "page_views": s.page_views,
        "entry_page": s.entry_page,
        "exit_page": s.exit_page,
        "referrer": s.referrer,
        "utm_source": s.utm_source,
    }


def score_record_row(r: ScoreRecord) -> dict[str, Any]:
    return {
        "user_fingerprint": r.user_fingerprint,
        "scored_at": r.scored_at,
        "segment": r.segment,
        "version": r.version,
        "predictions": [
            {
                "model_type": s.model_type,
                "value": s.value,
                "confidence": s.confidence,
                "model_version": s.model_version,
                "factors": [
                    {"name": f.name, "value": f.value, "contribution": f.contribution}
                    for f in s.factors
                ],
            }
            for s in r.recorded
        ],
    }


@attrs.frozen
class PartitionPosition:
    """A partition's row: the log position its derived state reflects (``horizon`` and
    ``applied``, see ``domain.partitions.Cursor``), for the owner holding ``epoch`` whose previous
    write left ``writes`` there. What a write of derived state records in its transaction, and
    what a lease round that takes the partition finds."""

    partition: int
    epoch: int
    writes: int
    horizon: int
    applied: frozenset[int]


@attrs.frozen
class LeaseRound:
    """The outcome of one lease round (``Storage.lease_round``): the partitions this instance
    owns (renewed, and newly claimed with their stored positions), and how many instances are
    alive."""

    owned: dict[int, int]  # partition -> epoch, every partition this instance holds now
    # those of ``owned`` that were not this instance's before the round
    claimed: list[PartitionPosition]
    owners: int


@attrs.frozen(slots=True)
class LogEntry:
    """One event read back from the log: what a profile needs of it."""

    txn: int
    partition: int
    user_fingerprint: str
    event_id: str
    touch: Touch


def log_entry(row: tuple[Any, ...], at: datetime, properties: dict[str, Any] | None) -> LogEntry:
    """A ``read_log`` row as a :class:`LogEntry`, its time and properties already decoded by the
    engine (the row's own are ignored)."""
    (
        txn,
        partition,
        fp,
        event_id,
        event_type,
        session_id,
        _,
        page,
        referrer,
        value,
        _,
        device,
        user_id,
    ) = row
    touch = Touch(
        sys.intern(event_type),
        sys.intern(session_id),
        at,
        None if page is None else sys.intern(page),
        referrer,
        value,
        properties or {},
        device,
        user_id,
    )
    return LogEntry(txn, partition, fp, event_id, touch)


@attrs.frozen
class LogPage:
    """Events of the log not yet applied by the given cursors, whole transactions only, in log
    order; every transaction below ``horizon`` is either in ``entries`` or was covered already."""

    entries: list[LogEntry]
    horizon: int
    # the page stopped short of what the log holds below the oldest transaction in flight
    more: bool = False


@attrs.frozen
class VisitorView:
    """A visitor as stored, read in one snapshot: the derived rows and the events of the log
    they do not reflect yet (``tail``, in log order). Stored plus tail is exactly what every
    event stored so far makes of the visitor, whichever instance stored it or owns it."""

    profile: ProfileState | None
    keys: VisitorKeys
    journeys: list[StoredJourney]
    tail: list[Touch]

"""Customer journeys: each session's ordered touchpoints and the stage it reached. Pure: no I/O.

Stages, lowest to highest (docs/scoring.md, "Journey stages"):

* ``awareness`` — the visitor only looked around (page views, anything not below);
* ``consideration`` — weighed an offer: a service page, pricing, a discount;
* ``decision`` — acted on it: a quote request, a contact, a booking started;
* ``retention`` — came back after a completed booking (a later session without a new booking);
* ``booking`` — completed a booking in this session.

A session's stage only rises (the highest stage any of its touchpoints reached), so stages merge
commutatively, like every other profile figure: ``max`` by :data:`STAGES` rank.

An explicit step (``POST /api/analytics/track/journey``) is stored as an event of type
:data:`JOURNEY_STEP_TYPE` whose ``properties`` carry the ``step`` name and optionally the
``stage`` the step marks.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs

from .scoring import CONTACT_TYPES, DISCOUNT_TYPES, PRICING_TYPES, QUOTE_TYPES, SERVICE_TYPES
from .sessions import PAGE_VIEW_TYPES, utm_source
from .validation import FieldError, ValidEvent, validate_event

__all__ = [
    "JOURNEY_STEP_TYPE",
    "EventFields",
    "MAX_STEP_LENGTH",
    "STEP_ALIASES",
    "STEP_PROPERTIES",
    "STEP_TOUCHPOINT_FIELDS",
    "STAGES",
    "JourneyRow",
    "SessionJourney",
    "event_stage",
    "higher_stage",
    "merge_journey",
    "touch_source",
    "touchpoint",
    "type_stage",
    "validate_journey_step",
    "visitor_stage",
]


class EventFields(Protocol):
    """What journeys read of an event: a stored :class:`~..messages.Event`, or the slimmer
    ``domain.profiles.Touch`` a profile actor keeps until it writes."""

    @property
    def event_type(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def page_url(self) -> str | None: ...
    @property
    def referrer(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def device_type(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...


STAGES = ("awareness", "consideration", "decision", "retention", "booking")
_RANK = {stage: rank for rank, stage in enumerate(STAGES)}

#: Event type of an explicit journey step.
JOURNEY_STEP_TYPE = "journey_step"

_CONSIDERATION_TYPES = frozenset(SERVICE_TYPES + PRICING_TYPES + DISCOUNT_TYPES)
_DECISION_TYPES = frozenset(QUOTE_TYPES + CONTACT_TYPES + ("booking_started",))
_BOOKING_TYPES = frozenset({"booking_completed"})


def event_stage(event: EventFields) -> str:
    """The stage one event shows on its own. Only an explicit journey step may name
    ``retention``; otherwise it comes from the visitor's history (a session after a booking).
    A step's stage that is not one of :data:`STAGES` is kept as sent but ranks as awareness."""
    event_type = event.event_type
    if event_type == JOURNEY_STEP_TYPE:
        stage = event.properties.get("stage")
        return stage if isinstance(stage, str) and stage in _RANK else "awareness"
    return type_stage(event_type)


def type_stage(event_type: str) -> str:
    """The stage an event of ``event_type`` (not an explicit step) shows on its own."""
    if event_type in _BOOKING_TYPES:
        return "booking"
    if event_type in _DECISION_TYPES:
        return "decision"
    if event_type in _CONSIDERATION_TYPES:
        return "consideration"
    return "awareness"


def higher_stage(a: str | None, b: str | None) -> str | None:
    """The higher of two stages (None is below every stage; unknown names rank lowest)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _RANK.get(a, -1) >= _RANK.get(b, -1) else b


@attrs.frozen
class JourneyRow:
    """A session's journey as ``customer_journeys`` holds it, or what a write brings to it: the
    touchpoints in order, the stage reached, where the first and last touches came from (and
    when), and when the session started and was last active."""

    touchpoints: list[dict[str, Any]]
    stage: str | None
    first_source: str | None
    first_source_at: datetime | None
    last_source: str | None
    last_source_at: datetime | None
    started_at: datetime
    last_at: datetime


def merge_journey(
    old: JourneyRow | None,
    new: JourneyRow,
    max_touchpoints: int,
    booked_at: datetime | None = None,
) -> JourneyRow:
    """The journey row once ``new`` (a write's part of one session) is merged into ``old`` (the
    stored row; None for a session not stored yet). ``booked_at`` is the visitor's last completed
    booking before this write, if any.

    Guarantees (the rule PostgreSQL applies in SQL, ``sql/postgres/queries/profiles.sql``):

    * touchpoints are appended in order, and only while the row holds fewer than
      ``max_touchpoints`` (it never grows past them);
    * the stage only rises (:func:`higher_stage`); a session that started after ``booked_at``
      is ``retention`` unless it reached ``booking``;
    * the first source is the one of the earliest sourced touch, the last source the one of the
      latest (of equal times, the one written last); the row spans the earliest start and the
      latest activity of both.

    Pure: ``old`` and ``new`` are not changed.
    """
    started = new.started_at if old is None else min(new.started_at, old.started_at)
    stage = new.stage
    if stage != "booking" and booked_at is not None and booked_at < started:
        stage = "retention"
    if old is None:
        return attrs.evolve(new, touchpoints=new.touchpoints[:max_touchpoints], stage=stage)
    room = max_touchpoints - len(old.touchpoints)
    touchpoints = old.touchpoints + new.touchpoints[:room] if room > 0 else old.touchpoints
    first = (new.first_source, new.first_source_at)
    if old.first_source_at is not None and (
        new.first_source_at is None or old.first_source_at <= new.first_source_at
    ):
        first = (old.first_source, old.first_source_at)
    last = (new.last_source, new.last_source_at)
    if old.last_source_at is not None and (
        new.last_source_at is None or old.last_source_at > new.last_source_at
    ):
        last = (old.last_source, old.last_source_at)
    return JourneyRow(
        touchpoints=touchpoints,
        stage=higher_stage(old.stage, stage),
        first_source=first[0],
        first_source_at=first[1],
        last_source=last[0],
        last_source_at=last[1],
        started_at=started,
        last_at=max(new.last_at, old.last_at),
    )


def touch_source(event: EventFields) -> str | None:
    """Where a touch came from: the page URL's ``utm_source``, else the referrer's host, else None
    (a direct visit, or a page of the site itself)."""
    source = utm_source(event.page_url)
    if source:
        return source
    if event.referrer:
        host = urlsplit(event.referrer).hostname
        if host and host != (urlsplit(event.page_url).hostname if event.page_url else None):
            return host[:256]
    return None


def touchpoint(event: EventFields) -> dict[str, Any]:
    """One touchpoint as stored in ``customer_journeys.touchpoints``: event type (for an explicit
    step, the step's name), page and time (a datetime: storage writes it as RFC 3339);
    ``step: true`` marks an explicit step."""
    if event.event_type == JOURNEY_STEP_TYPE:
        properties = event.properties
        point = {
            "type": str(properties.get("step")),
            "page": event.page_url,
            "at": event.timestamp,
            "step": True,
        }
        for name in STEP_TOUCHPOINT_FIELDS:
            if properties.get(name) is not None:
                point[name] = properties[name]
        return point
    return {"type": event.event_type, "page": event.page_url, "at": event.timestamp}


#: What a step's touchpoint keeps of its properties besides its name (the original's columns).
STEP_TOUCHPOINT_FIELDS = (
    "stage",
    "time_spent_seconds",
    "entry_method",
    "traffic_source",
    "content_consumed",
    "actions_taken",
)


@attrs.define
class SessionJourney:
    """What a run of one session's events adds to its journey (an accumulator, like
    ProfileDelta)."""

    session_id: str
    touchpoints: list[dict[str, Any]] = attrs.Factory(list)
    stage: str = "awareness"
    started_at: datetime | None = None
    last_at: datetime | None = None
    booked_at: datetime | None = None  # earliest completed booking in the session
    first_source: str | None = None  # of the earliest event with a source
    first_source_at: datetime | None = None
    last_source: str | None = None  # of the latest event with a source
    last_source_at: datetime | None = None
    # what the session's analytics_sessions row takes (domain.sessions.SessionDelta)
    event_count: int = 0
    page_views: int = 0
    entry_page: str | None = None  # page of the earliest event
    entry_referrer: str | None = None  # referrer of the earliest event
    exit_page: str | None = None  # page of the latest event (of equal times, the last handled)

    def add(self, event: EventFields) -> None:
        moment = event.timestamp
        self.touchpoints.append(touchpoint(event))
        self.event_count += 1
        if event.event_type in PAGE_VIEW_TYPES:
            self.page_views += 1
        stage = event_stage(event)
        if stage != "awareness":
            self.stage = higher_stage(self.stage, stage) or stage
            if event.event_type in _BOOKING_TYPES and (
                self.booked_at is None or moment < self.booked_at
            ):
                self.booked_at = moment
        if self.started_at is None or moment < self.started_at:
            self.started_at = moment
            self.entry_page, self.entry_referrer = event.page_url, event.referrer
        if self.last_at is None or moment >= self.last_at:
            self.last_at = moment
            self.exit_page = event.page_url
        if event.referrer is not None or (
            event.page_url is not None and "utm_source=" in event.page_url
        ):
            source = touch_source(event)
            if source is not None:
                if self.first_source_at is None or moment < self.first_source_at:
                    self.first_source, self.first_source_at = source, moment
                if self.last_source_at is None or moment >= self.last_source_at:
                    self.last_source, self.last_source_at = source, moment


def visitor_stage(sessions: list[dict[str, Any]]) -> str | None:
    """A visitor's current stage from their sessions (each with ``stage`` and ``started_at``, in
    order of start): the latest session's stage; a later session of a visitor who completed a
    booking in an earlier one is ``retention`` unless it reached ``booking`` itself."""
    if not sessions:
        return None
    booked_before = any(s.get("stage") == "booking" for s in sessions[:-1])
    latest = sessions[-1].get("stage") or "awareness"
    if booked_before and latest != "booking":
        return "retention"
    return latest


#: Names of a journey step's fields under the original service's API: alias -> field.
STEP_ALIASES = {"touchpoint": "step", "journey_stage": "stage"}
#: What else a journey step may carry, kept in the event's properties: name -> kind.
STEP_PROPERTIES = {
    "time_spent_seconds": "number",
    "event_type": "text",
    "entry_method": "text",
    "traffic_source": "text",
    "content_consumed": "object",
    "actions_taken": "object",
}
#: Longest step or stage name, in characters.
MAX_STEP_LENGTH = 64
_STEP_REQUIRED = "is required (or touchpoint): the name of the step, a non-empty string"
_STAGE_TEXT = "must be a non-empty string (a name of STAGES ranks; any other is kept as sent)"
_KINDS = {
    "number": "a finite number",
    "text": f"a string of at most {MAX_STEP_LENGTH * 4} characters",
    "object": "a JSON object",
}


def validate_journey_step(data: object) -> ValidEvent | list[FieldError]:
    """Check an explicit journey step and turn it into the event that records it (type
    :data:`JOURNEY_STEP_TYPE`; ``properties`` carry ``step``, ``stage`` and the fields of
    :data:`STEP_PROPERTIES`); or every rule it breaks. ``touchpoint`` and ``journey_stage`` are the
    original service's names of ``step`` and ``stage``. A stage is kept as sent; only the names of
    :data:`STAGES` rank (see :func:`event_stage`). Every other field follows the event rules
    (``validate_event``): detail fields are columns, unknown ones are kept with a warning."""
    if not isinstance(data, dict):
        return validate_event(data)
    errors: list[FieldError] = []
    fields = dict(data)
    for alias, field in STEP_ALIASES.items():
        if alias in fields:
            value = fields.pop(alias)
            if fields.get(field) is None:
                fields[field] = value
            elif value is not None and value != fields[field]:
                errors.append(
                    FieldError(alias, f"differs from {field}, sent too; send one of them")
                )
    named = {}
    for field, alias in (("step", "touchpoint"), ("stage", "journey_stage")):
        value = fields.pop(field, None)
        shown = alias if alias in data and data.get(field) is None else field
        if value is None and field == "stage":
            continue
        if not isinstance(value, str) or not value.strip():
            errors.append(FieldError(shown, _STEP_REQUIRED if field == "step" else _STAGE_TEXT))
        elif len(value.strip()) > MAX_STEP_LENGTH:
            errors.append(FieldError(shown, f"must be at most {MAX_STEP_LENGTH} characters"))
        else:
            named[field] = value.strip()
    for name, kind in STEP_PROPERTIES.items():
        value = fields.pop(name, None)
        if value is None:
            continue
        if kind == "number":
            ok = type(value) in (int, float) and math.isfinite(value) and value >= 0
        elif kind == "text":
            ok = isinstance(value, str) and len(value) <= MAX_STEP_LENGTH * 4
        else:
            ok = isinstance(value, dict)
        if ok:
            named[name] = value
        else:
            errors.append(
                FieldError(name, f"must be {_KINDS[kind]}" + (" >= 0" if kind == "number" else ""))
            )
    properties = fields.get("properties")
    fields["event_type"] = JOURNEY_STEP_TYPE
    if isinstance(properties, dict) or properties is None:
        fields["properties"] = {**(properties or {}), **named}
    result = validate_event(fields)
    if isinstance(result, ValidEvent):
        return errors or result
    return errors + result

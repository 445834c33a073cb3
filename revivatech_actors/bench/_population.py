"""Synthetic customer populations whose futures are known, to evaluate (and later learn) the lead
and churn scores. Pure: no I/O, no clock; the same arguments always give the same population.

Each visitor's behaviour is simulated from their arrival until ``now + horizon_days``. The events
up to ``now`` are what would be posted to the service; the events after it are the hidden future,
from which the labels come:

* ``books_within_horizon``: a ``booking_completed`` in ``(now, now + horizon_days]`` (the lead
  score's question);
* ``active_within_horizon``: any event in that window (its negation is the churn risk's
  question).

Two behaviours (:data:`POPULATIONS`):

* ``one_off``, one-off repairs: a visitor comes with a *need*. While in need they visit every few
  days, moving through services, prices, a quote or a contact, and a booking, which they complete
  or abandon; some give up. A completed booking ends the need. Between needs they drop by now and
  then; a new need comes weeks later, and some visitors never come back after a need.
* ``regular``, regular customers: intent lasts. A customer who has booked books again on a
  cadence of their own (5 to 15 days, with jitter) and browses between bookings; visitors who have
  not booked browse, and some convert. Every visitor stops at a random time (churn), after which
  they have no events.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import attrs

__all__ = ["POPULATIONS", "Population", "Visitor", "generate"]

#: The behaviours :func:`generate` knows.
POPULATIONS = ("one_off", "regular")

SITE = "https://shop.example"
_MS_PER_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- parameters --------------------------------------------------------------------------------
# Tuned (90 days, 9-day horizon, 5,000 visitors, seeds 1 to 3) so that the base rates are those a
# shop could see and the service's fixed formulas, on the events up to ``now``, rank the labels
# with these ROC AUCs (lead score against booking, churn risk against inactivity):
#
#   population   books   inactive   lead AUC   churn AUC
#   one_off      ~13 %   ~49 %      ~0.84      ~0.80
#   regular      ~20 %   ~53 %      ~0.61      ~0.81
#
# The lead score zeroes a visitor right after a booking: right for one-off repairs, wrong for
# regular customers, whose next booking is the likeliest. Ranges are drawn from uniformly.

# one_off

#: Mean days between a visitor's sessions while in need, drawn per need from this range.
ONE_OFF_NEED_GAP_DAYS = (0.5, 3.0)
#: Chance that a session in need moves the visitor one step further towards booking, drawn per
#: need from this range.
ONE_OFF_ADVANCE = (0.3, 0.7)
#: Chance that a visitor in need gives up (fixes it elsewhere) after a session.
ONE_OFF_GIVE_UP = 0.04
#: Chance that a started booking is completed (else abandoned, and maybe tried again).
ONE_OFF_COMPLETE = 0.85
#: Days from the end of a need to the next one: at least the first, the second on average (a
#: shifted exponential: a device rarely breaks again within days).
ONE_OFF_NEXT_NEED_DAYS = (14.0, 35.0)
#: Chance of never coming back after a need that ended in a booking / without one.
ONE_OFF_CHURN_BOOKED = 0.2
ONE_OFF_CHURN_GAVE_UP = 0.5
#: Mean days between a visitor's casual visits between needs, drawn per visitor from this range.
ONE_OFF_CASUAL_GAP_DAYS = (3.0, 20.0)
ONE_OFF_SERVICES = (
    "screen-repair",
    "battery-replacement",
    "charging-port",
    "water-damage",
    "data-recovery",
    "camera-repair",
)
ONE_OFF_PRICE = (39.0, 249.0)

# regular

#: Mean days from arrival until a visitor stops coming (churn), drawn per visitor (exponential).
REGULAR_LIFETIME_DAYS = 120.0
#: Chance that a visitor ever books; the first booking comes this many days after arrival (mean).
REGULAR_CONVERT = 0.35
REGULAR_FIRST_BOOKING_DAYS = 8.0
#: A customer's cadence: days between bookings, drawn per customer; jitter: its relative spread.
REGULAR_CADENCE_DAYS = (5.0, 15.0)
REGULAR_JITTER = 0.2
#: Mean days between browsing sessions, drawn per visitor from this range.
REGULAR_BROWSE_GAP_DAYS = (2.0, 25.0)
#: Chance that a browsing session shows intent (prices, a quote or a contact): of a visitor who
#: never books, of one who will but has not yet, and of a customer between bookings.
REGULAR_WINDOW_SHOPPING = 0.1
REGULAR_PROSPECT_INTENT = 0.8
REGULAR_CUSTOMER_INTENT = 0.5
#: Chance that a browsing session without intent looks at a service.
REGULAR_BROWSE_SERVICE = 0.3
#: Chance that a booking is abandoned (and tried again a day or two later).
REGULAR_ABANDON = 0.1
REGULAR_SERVICES = (
    "maintenance-plan",
    "device-cleaning",
    "battery-health-check",
    "screen-protector-fitting",
    "backup-service",
)
REGULAR_PRICE = (15.0, 60.0)

#: A session's events: the first at the session's start, each next after a pause drawn from
#: 5 s plus an exponential of this mean (seconds).
_PAUSE_SECONDS = 40.0
_BROWSE_PAGES = ("/", "/services", "/reviews", "/about", "/blog/device-care", "/faq")


@attrs.frozen
class Visitor:
    """One visitor: every event is a dict as ``POST /api/analytics/events`` takes it, with
    ``event_id``, ``user_fingerprint``, ``session_id``, ``event_type``, ``timestamp`` (RFC 3339,
    UTC, milliseconds, ``Z``), ``page_url`` and, on ``booking_completed``, a ``value``.

    ``events`` are those at or before ``now``, ``future`` those after it (up to ``now +
    horizon_days``), each sorted by time; a visitor has at least one event at or before ``now``.
    The labels are over the window ``(now, now + horizon_days]``: ``books_within_horizon`` iff
    ``future`` holds a ``booking_completed``, ``active_within_horizon`` iff ``future`` is not
    empty."""

    fingerprint: str
    events: tuple[dict[str, Any], ...]
    future: tuple[dict[str, Any], ...]
    books_within_horizon: bool
    active_within_horizon: bool


@attrs.frozen
class Population:
    """Visitors of one behaviour (``kind``, one of :data:`POPULATIONS`), seen at ``now``, with
    their futures over ``horizon_days``."""

    kind: str
    now: datetime
    horizon_days: float
    visitors: tuple[Visitor, ...]


# A session as simulated: its start (days from ``now``) and the event types it holds, in order.
_Session = tuple[float, list[str]]


def generate(
    kind: str,
    visitors: int,
    *,
    now: datetime,
    days: float = 90.0,
    horizon_days: float = 9.0,
    seed: int = 0,
) -> Population:
    """``visitors`` visitors of behaviour ``kind``, who arrive at times spread uniformly over
    ``[now - days, now]`` and whose events run until ``now + horizon_days``.

    Guaranteed: the same arguments give the same population (event ids and values included);
    every timestamp lies in ``[now - days, now + horizon_days]``; event ids are distinct UUIDs;
    fingerprints are ``{kind}-{seed}-{index}`` and session ids ``{fingerprint}-{n}``; a larger
    population starts with the visitors of a smaller one (same ``kind``, ``now``, ``days``,
    ``horizon_days`` and ``seed``). A naive ``now`` is taken as UTC.

    With the defaults, about 13 % (``one_off``) and 20 % (``regular``) of visitors book within
    the horizon, and about half are inactive in it; a visitor who booked before ``now`` books
    again within the horizon about 9 % of the time in ``one_off``, about 58 % in ``regular``.
    """
    if kind not in POPULATIONS:
        raise ValueError(f"kind must be one of {', '.join(POPULATIONS)}, got {kind!r}")
    if visitors < 0:
        raise ValueError(f"visitors must be at least 0, got {visitors}")
    if not (days > 0 and horizon_days > 0 and math.isfinite(days + horizon_days)):
        raise ValueError("days and horizon_days must be finite and above 0")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    now_ms = (now - _EPOCH) // timedelta(milliseconds=1)
    # the window in whole milliseconds, inside [now - days, now + horizon_days]
    first_ms = -((-(now - timedelta(days=days) - _EPOCH)) // timedelta(milliseconds=1))
    last_ms = (now + timedelta(days=horizon_days) - _EPOCH) // timedelta(milliseconds=1)
    rng = random.Random(seed)
    simulate = _one_off if kind == "one_off" else _regular
    stamps = _Stamps()
    built = tuple(
        _visitor(
            rng,
            f"{kind}-{seed}-{index}",
            simulate,
            kind,
            now_ms=now_ms,
            first_ms=first_ms,
            last_ms=last_ms,
            stamps=stamps,
        )
        for index in range(visitors)
    )
    return Population(kind=kind, now=now, horizon_days=float(horizon_days), visitors=built)


def _visitor(
    rng: random.Random,
    fingerprint: str,
    simulate: Callable[[random.Random, float, float, list[_Session]], None],
    kind: str,
    *,
    now_ms: int,
    first_ms: int,
    last_ms: int,
    stamps: _Stamps,
) -> Visitor:
    arrival_ms = rng.randint(first_ms, now_ms)
    sessions: list[_Session] = []
    simulate(rng, (arrival_ms - now_ms) / _MS_PER_DAY, (last_ms - now_ms) / _MS_PER_DAY, sessions)
    service = rng.choice(ONE_OFF_SERVICES if kind == "one_off" else REGULAR_SERVICES)
    price = ONE_OFF_PRICE if kind == "one_off" else REGULAR_PRICE
    timed: list[tuple[int, dict[str, Any]]] = []
    for number, (start, types) in enumerate(sessions):
        session_id = f"{fingerprint}-{number}"
        # the first session starts at the arrival exactly, so every visitor has an event by now
        at = arrival_ms if number == 0 else now_ms + round(start * _MS_PER_DAY)
        for event_type in types:
            if at > last_ms:
                break
            event: dict[str, Any] = {
                "event_id": _uuid4(rng.getrandbits(128)),
                "user_fingerprint": fingerprint,
                "session_id": session_id,
                "event_type": event_type,
                "timestamp": stamps.iso(at),
                "page_url": _page(rng, event_type, service),
            }
            if event_type == "booking_completed":
                event["value"] = round(rng.uniform(*price), 2)
            timed.append((at, event))
            at += 5000 + round(rng.expovariate(1.0 / _PAUSE_SECONDS) * 1000)
    timed.sort(key=itemgetter(0))  # stable: a session's events keep their order
    events = tuple(event for at, event in timed if at <= now_ms)
    future = tuple(event for at, event in timed if at > now_ms)
    return Visitor(
        fingerprint=fingerprint,
        events=events,
        future=future,
        books_within_horizon=any(e["event_type"] == "booking_completed" for e in future),
        active_within_horizon=bool(future),
    )


def _page(rng: random.Random, event_type: str, service: str) -> str:
    if event_type == "page_view":
        return SITE + rng.choice(_BROWSE_PAGES)
    if event_type == "service_viewed":
        return f"{SITE}/services/{service}"
    if event_type == "pricing_viewed":
        return f"{SITE}/pricing/{service}"
    if event_type == "quote_requested":
        return f"{SITE}/quote?service={service}"
    if event_type == "contact_clicked":
        return f"{SITE}/contact"
    return f"{SITE}/booking/{service}"


def _uuid4(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))``, in half the time."""
    h = f"{bits & _UUID_MASK | _UUID_V4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)  # version 4, variant RFC 4122
_UUID_MASK = ~((0xF000 << 64) | (0xC000 << 48))


class _Stamps:
    """RFC 3339 timestamps of epoch milliseconds, the part up to the minute formatted once."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def iso(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        prefix = self._minutes.get(minute)
        if prefix is None:
            moment = _EPOCH + timedelta(minutes=minute)
            prefix = self._minutes[minute] = moment.strftime("%Y-%m-%dT%H:%M:")
        second, millis = divmod(rest, 1000)
        return f"{prefix}{second:02d}.{millis:03d}Z"


# --- one_off ---------------------------------------------------------------------------------


def _one_off(rng: random.Random, start: float, end: float, out: list[_Session]) -> None:
    """Needs, one after another, with casual visits between them, until the visitor churns."""
    casual_gap = rng.uniform(*ONE_OFF_CASUAL_GAP_DAYS)
    t = start
    while t <= end:
        t, booked = _need(rng, t, end, out)
        churn = ONE_OFF_CHURN_BOOKED if booked else ONE_OFF_CHURN_GAVE_UP
        if t > end or rng.random() < churn:
            return
        least, mean = ONE_OFF_NEXT_NEED_DAYS
        next_need = t + least + rng.expovariate(1.0 / (mean - least))
        t += rng.expovariate(1.0 / casual_gap)
        while t < next_need and t <= end:
            out.append((t, _casual(rng)))
            t += rng.expovariate(1.0 / casual_gap)
        t = next_need


def _casual(rng: random.Random) -> list[str]:
    """A visit without a need: a page or two, sometimes a service."""
    types = ["page_view"] * rng.randint(1, 2)
    if rng.random() < 0.3:
        types.append("service_viewed")
    return types


def _need(rng: random.Random, start: float, end: float, out: list[_Session]) -> tuple[float, bool]:
    """The sessions of one need from ``start``: the time of its last session and whether it ended
    in a completed booking (else the visitor gave up, or the simulation ended)."""
    gap = rng.uniform(*ONE_OFF_NEED_GAP_DAYS)
    advance = rng.uniform(*ONE_OFF_ADVANCE)
    stage = 0
    t = start
    while True:
        types = ["page_view"]
        booked = False
        if stage == 0:
            types += ["service_viewed"] * rng.randint(1, 3)
        elif stage == 1:
            types += ["service_viewed", "pricing_viewed"]
            types += ["pricing_viewed"] * rng.randint(0, 1)
        elif stage == 2:
            types.append("pricing_viewed")
            choice = rng.random()
            types += (
                ["quote_requested"]
                if choice < 0.5
                else ["contact_clicked"]
                if choice < 0.8
                else ["quote_requested", "contact_clicked"]
            )
        else:
            types += ["pricing_viewed", "booking_started"]
            if rng.random() < ONE_OFF_COMPLETE:
                if rng.random() < 0.1:
                    types.append("coupon_applied")
                types.append("booking_completed")
                booked = True
            else:
                types.append("booking_abandoned")
        out.append((t, types))
        if booked:
            return t, True
        if rng.random() < ONE_OFF_GIVE_UP:
            return t, False
        if stage < 3 and rng.random() < advance:
            stage += 1
        t += rng.expovariate(1.0 / gap)
        if t > end:
            return t, False


# --- regular ---------------------------------------------------------------------------------


def _regular(rng: random.Random, start: float, end: float, out: list[_Session]) -> None:
    """Browsing sessions, and for a customer, bookings on their cadence, until they churn."""
    books = rng.random() < REGULAR_CONVERT
    stop = min(end, start + rng.expovariate(1.0 / REGULAR_LIFETIME_DAYS))
    browse_gap = rng.uniform(*REGULAR_BROWSE_GAP_DAYS)
    cadence = rng.uniform(*REGULAR_CADENCE_DAYS)
    # the first session is the arrival; then browsing and bookings interleave, in time order
    out.append((start, _browse(rng, intent=books)))
    booking = start + rng.expovariate(1.0 / REGULAR_FIRST_BOOKING_DAYS) if books else math.inf
    intent = REGULAR_PROSPECT_INTENT if books else REGULAR_WINDOW_SHOPPING
    visit = start + rng.expovariate(1.0 / browse_gap)
    while min(booking, visit) <= stop:
        if booking <= visit:
            if rng.random() < REGULAR_ABANDON:
                out.append((booking, _booking(rng, complete=False)))
                booking += rng.uniform(0.2, 2.0)  # tried again within a day or two
                continue
            out.append((booking, _booking(rng, complete=True)))
            intent = REGULAR_CUSTOMER_INTENT
            booking += cadence * max(0.2, rng.gauss(1.0, REGULAR_JITTER))
        else:
            out.append((visit, _browse(rng, intent=rng.random() < intent)))
            visit += rng.expovariate(1.0 / browse_gap)


def _browse(rng: random.Random, *, intent: bool) -> list[str]:
    """A browsing session: pages, sometimes a service; with ``intent``, services and prices, and
    maybe a quote or a contact."""
    types = ["page_view"] * rng.randint(1, 3)
    if not intent:
        if rng.random() < REGULAR_BROWSE_SERVICE:
            types.append("service_viewed")
        return types
    types += ["service_viewed"] * rng.randint(1, 2)
    types.append("pricing_viewed")
    roll = rng.random()
    if roll < 0.25:
        types.append("quote_requested")
    elif roll < 0.4:
        types.append("contact_clicked")
    return types


def _booking(rng: random.Random, *, complete: bool) -> list[str]:
    """A booking session: straight to the service, sometimes its price, then the booking,
    completed or abandoned."""
    types = ["page_view", "service_viewed"]
    if rng.random() < 0.4:
        types.append("pricing_viewed")
    types.append("booking_started")
    if not complete:
        types.append("booking_abandoned")
        return types
    if rng.random() < 0.08:
        types.append("coupon_applied")
    types.append("booking_completed")
    return types

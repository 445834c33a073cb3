"""Validation of one ingested event (DESIGN.md section 3). Pure functions, no I/O.

:func:`validate_event` turns a decoded JSON body into a :class:`ValidEvent`, or into the list of
every rule it breaks (:class:`FieldError`, in field order, then unknown fields), so that a client
learns about all of its mistakes from one answer. Nothing the client sent is silently dropped:
unknown top-level fields are refused, custom data belongs in ``properties``.

This runs for every event that arrives, so it is written for speed: no regex except the one for
``event_type``, no helper objects built per call, the error list only made when there is an error.

:func:`correct_clock_skew` is the Segment rule ingest applies to a valid event's times, and
:func:`truncate_payload` bounds what a dead letter keeps of the offending input.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from sys import intern
from typing import Any

import attrs
import orjson

__all__ = [
    "FieldError",
    "KNOWN_FIELDS",
    "MAX_EVENT_TYPE_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_PROPERTIES_BYTES",
    "MAX_PROPERTIES_DEPTH",
    "MAX_URL_LENGTH",
    "ValidEvent",
    "correct_clock_skew",
    "truncate_payload",
    "validate_event",
]

#: Longest ``user_fingerprint`` and ``session_id``, in characters.
MAX_ID_LENGTH = 128
#: Longest ``event_type``, in characters (of ``A-Z a-z 0-9 _ . : -``).
MAX_EVENT_TYPE_LENGTH = 64
#: Longest ``page_url`` and ``referrer``, in characters.
MAX_URL_LENGTH = 2048
#: Largest ``properties`` object, in bytes of its compact JSON encoding.
MAX_PROPERTIES_BYTES = 32 * 1024
#: Deepest ``properties`` nesting: the object itself is level 1, every object or list inside one more.
MAX_PROPERTIES_DEPTH = 5
#: The top-level fields an event may have; any other one is an error.
KNOWN_FIELDS = frozenset(
    {
        "user_fingerprint",
        "session_id",
        "event_type",
        "event_id",
        "timestamp",
        "sent_at",
        "page_url",
        "referrer",
        "value",
        "properties",
    }
)


@attrs.frozen(slots=True)
class FieldError:
    """One broken rule: the field it concerns (``""`` for the whole body) and a human sentence."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@attrs.frozen(slots=True)
class ValidEvent:
    """An event that passed every rule, with its values in canonical form."""

    user_fingerprint: str
    session_id: str
    event_type: str
    event_id: str | None  # canonical lower-case hyphenated UUID, or None when absent
    timestamp: datetime | None  # aware, in UTC; None when absent
    sent_at: datetime | None  # aware, in UTC; None when absent
    page_url: str | None
    referrer: str | None
    value: float | None
    properties: dict[str, Any]  # {} when absent


# --- messages (module constants: the same text every time, built once) ---------------------------

_NOT_OBJECT = "an event must be a JSON object"
_REQUIRED = "is required"
_NOT_STRING = "must be a string"
_BLANK = "must not be blank"
_ID_LENGTH = f"must be 1 to {MAX_ID_LENGTH} characters"
_EVENT_TYPE = f"must be 1 to {MAX_EVENT_TYPE_LENGTH} characters of A-Z a-z 0-9 _ . : -"
_UUID = "must be a UUID like 123e4567-e89b-12d3-a456-426614174000 (8-4-4-4-12 hex digits)"
_TIME_NOT_STRING = "must be an RFC 3339 string"
_TIME_SHAPE = "must be an RFC 3339 date-time, e.g. 2025-07-16T10:55:03.268Z"
_TIME_NAIVE = "must include a time zone offset (RFC 3339)"
_TIME_INVALID = "is not a valid date and time"
_TIME_RANGE = "must be between the years 1970 and 9999 (UTC)"
_URL_LENGTH = f"must be at most {MAX_URL_LENGTH} characters"
_NUMBER = "must be a finite number"
_PROPS_OBJECT = "must be a JSON object"
_PROPS_DEPTH = f"is nested deeper than {MAX_PROPERTIES_DEPTH} levels"
_UNKNOWN = "is not a known field; put custom data in properties"

_EVENT_TYPE_RE = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_EVENT_TYPE_LENGTH}}}")
_EVENT_TYPE_MATCH = _EVENT_TYPE_RE.fullmatch

# Only ASCII hex digits: ``int(s, 16)`` (and so ``uuid.UUID``) also takes ``_`` and non-ASCII digits.
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DIGITS = "0123456789"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What counts as a level of nesting in properties (tuples too, for callers other than the JSON parser).
_CONTAINERS = frozenset({dict, list, tuple})


# --- the validator -----------------------------------------------------------------------------


def validate_event(data: object) -> ValidEvent | list[FieldError]:
    """Check one decoded JSON event; the canonical :class:`ValidEvent`, or every rule it breaks."""
    if not isinstance(data, dict):
        return [FieldError("", _NOT_OBJECT)]
    get = data.get
    errors: list[FieldError] | None = None

    # user_fingerprint, session_id: required strings of 1..128 characters, not only whitespace
    fingerprint = get("user_fingerprint")
    if type(fingerprint) is not str or not 0 < len(fingerprint) <= MAX_ID_LENGTH or fingerprint.isspace():
        errors = _id_errors(errors, "user_fingerprint", fingerprint)
    session_id = get("session_id")
    if type(session_id) is not str or not 0 < len(session_id) <= MAX_ID_LENGTH or session_id.isspace():
        errors = _id_errors(errors, "session_id", session_id)

    # event_type: required, 1..64 characters of A-Z a-z 0-9 _ . : -
    event_type = get("event_type")
    if event_type is None:
        errors = _add(errors, "event_type", _REQUIRED)
    elif type(event_type) is not str:
        errors = _add(errors, "event_type", _NOT_STRING)
    elif _EVENT_TYPE_MATCH(event_type) is None:
        errors = _add(errors, "event_type", _EVENT_TYPE)

    # event_id: optional canonical UUID, stored lower-case
    event_id = get("event_id")
    if event_id is not None:
        if (
            type(event_id) is str
            and len(event_id) == 36
            and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-"
            and _HEX_DIGITS.issuperset(event_id.replace("-", ""))
        ):
            event_id = event_id.lower()
        else:
            errors = _add(errors, "event_id", _UUID)

    # timestamp, sent_at: optional RFC 3339 date-times with an offset, normalised to UTC
    timestamp = get("timestamp")
    if timestamp is not None:
        timestamp = _parse_time(timestamp)
        if type(timestamp) is str:
            errors = _add(errors, "timestamp", timestamp)
    sent_at = get("sent_at")
    if sent_at is not None:
        sent_at = _parse_time(sent_at)
        if type(sent_at) is str:
            errors = _add(errors, "sent_at", sent_at)

    # page_url, referrer: optional strings of at most 2048 characters
    page_url = get("page_url")
    if page_url is not None:
        if type(page_url) is not str:
            errors = _add(errors, "page_url", _NOT_STRING)
        elif len(page_url) > MAX_URL_LENGTH:
            errors = _add(errors, "page_url", f"{_URL_LENGTH} (got {len(page_url)})")
    referrer = get("referrer")
    if referrer is not None:
        if type(referrer) is not str:
            errors = _add(errors, "referrer", _NOT_STRING)
        elif len(referrer) > MAX_URL_LENGTH:
            errors = _add(errors, "referrer", f"{_URL_LENGTH} (got {len(referrer)})")

    # value: optional finite number (not a bool), stored as float
    value = get("value")
    if value is not None:
        kind = type(value)
        if kind is float or (kind is not bool and isinstance(value, (int, float))):
            try:
                value = float(value)
            except OverflowError:  # an int beyond float range
                value = math.inf
            if not math.isfinite(value):
                errors = _add(errors, "value", _NUMBER)
        else:
            errors = _add(errors, "value", _NUMBER)

    # properties: optional JSON object, at most 32 KB encoded and 5 levels deep
    properties = get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors = _add(errors, "properties", _PROPS_OBJECT)
    else:
        too_deep = _too_deep(properties, 1)
        if too_deep:
            errors = _add(errors, "properties", _PROPS_DEPTH)
        try:
            size = len(orjson.dumps(properties))
        except TypeError as exc:  # orjson.JSONEncodeError: huge int, non-str key, recursion limit
            if not too_deep:
                errors = _add(errors, "properties", f"cannot be encoded as JSON ({exc})")
        else:
            if size > MAX_PROPERTIES_BYTES:
                errors = _add(
                    errors, "properties", f"is larger than {MAX_PROPERTIES_BYTES} bytes when encoded (got {size})"
                )

    # unknown top-level fields, each named, in the order the client sent them
    if not KNOWN_FIELDS.issuperset(data):
        for name in data:
            if name not in KNOWN_FIELDS:
                errors = _add(errors, name if type(name) is str else str(name), _UNKNOWN)

    if errors is not None:
        return errors
    # Interned: the same visitor, session, type or page arrives in many events, and what keeps
    # them (the realtime window's buckets, the visitor actors' touches) then holds one copy of
    # each, not one per event: with 100,000 visitors the window alone would otherwise keep
    # ~2 MB of copies per second of a flood, for as long as the window spans.
    return ValidEvent(
        intern(fingerprint), intern(session_id), intern(event_type), event_id, timestamp, sent_at,
        None if page_url is None else intern(page_url), referrer, value, properties,
    )


# --- helpers -----------------------------------------------------------------------------------


def _add(errors: list[FieldError] | None, field: str, message: str) -> list[FieldError]:
    if errors is None:
        errors = []
    errors.append(FieldError(field, message))
    return errors


def _id_errors(errors: list[FieldError] | None, field: str, value: object) -> list[FieldError]:
    """Every problem with a required identifier (called only when there is one)."""
    if errors is None:
        errors = []
    if value is None:
        errors.append(FieldError(field, _REQUIRED))
    elif type(value) is not str:
        errors.append(FieldError(field, _NOT_STRING))
    else:
        length = len(value)
        if length == 0 or length > MAX_ID_LENGTH:
            errors.append(FieldError(field, f"{_ID_LENGTH} (got {length})"))
        if value.isspace():  # "" is not blank here, only too short
            errors.append(FieldError(field, _BLANK))
    return errors


def _parse_time(value: object) -> datetime | str:
    """An aware UTC datetime from an RFC 3339 string, or the message saying what is wrong.

    The shape is checked first: ``datetime.fromisoformat`` also takes ISO 8601 forms that are not
    RFC 3339 (``20250716T105503``, ``2025-07-16T10:55``, ``2025-W29-3``, ``+02`` or ``+0200``
    offsets, ``,`` before fractions). Here the separators and the zone are checked by hand and
    ``fromisoformat``, whose parser takes only ASCII digits between them, checks the digits.
    """
    if type(value) is not str:
        return _TIME_NOT_STRING
    s: str = value
    # YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM)
    if not (
        len(s) >= 19
        and s[4] == "-"
        and s[7] == "-"
        and s[13] == ":"
        and s[16] == ":"
        and s[10] in "Tt "
        and s.isascii()
    ):
        return _TIME_SHAPE
    zone = s[19:]
    if zone[:1] == ".":  # fractional seconds: at least one digit
        zone = zone[1:]
        digits = len(zone)
        zone = zone.lstrip(_DIGITS)
        if len(zone) == digits:
            return _TIME_SHAPE
    if not zone:
        if s[17:19].isdigit():
            return _TIME_NAIVE
        return _TIME_SHAPE
    if len(zone) == 1:
        if zone != "Z":
            if zone != "z":
                return _TIME_SHAPE
            s = s.upper()  # RFC 3339 allows lower case; fromisoformat does not
    elif not (len(zone) == 6 and zone[3] == ":" and zone[0] in "+-"):
        return _TIME_SHAPE
    if s[10] == "t":
        s = s.upper()
    if s[0:4] < "1970":
        if s[0:4].isdigit():
            return _TIME_RANGE
        return _TIME_SHAPE
    try:
        moment = datetime.fromisoformat(s)
    except ValueError:  # a non-digit, month 13, February 30, hour 24, second 60, offset 24:00 ...
        return _TIME_INVALID
    if moment.tzinfo is not UTC:
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
            return _TIME_RANGE
    if moment < _EPOCH:  # 1970-01-01T00:30:00+01:00 is in 1969 in UTC
        return _TIME_RANGE
    return moment


def _too_deep(container: dict[Any, Any] | list[Any] | tuple[Any, ...], level: int) -> bool:
    """Whether anything inside ``container`` (which is at nesting ``level``) goes past the depth
    limit. Stops descending at the limit, so hostile nesting costs no more than legitimate nesting."""
    for child in container.values() if type(container) is dict else container:
        if type(child) in _CONTAINERS and (level >= MAX_PROPERTIES_DEPTH or _too_deep(child, level + 1)):
            return True
    return False


# --- times and payloads for ingest and dead letters --------------------------------------------


def correct_clock_skew(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """When the event happened, by the server's clock (the Segment rule).

    No ``timestamp``: ``received_at``. With ``sent_at``: ``timestamp + (received_at - sent_at)``,
    which removes the client clock's error (both client times share it). Otherwise ``timestamp``.
    """
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return timestamp + (received_at - sent_at)


def truncate_payload(text: str, limit: int = 8192) -> str:
    """``text`` cut to at most ``limit`` characters; when cut, it ends with ``…[truncated N chars]``
    (N being how many characters of ``text`` were left out), and the marker fits inside ``limit``."""
    length = len(text)
    if length <= limit:
        return text
    # The marker's length depends on N's digit count, which depends on the marker's length:
    # try digit counts upward until they agree (N grows by one per extra digit, so one does).
    digits = 1
    while True:
        kept = limit - (len("…[truncated  chars]") + digits)
        if kept < 0:  # no room even for the marker
            return text[: max(limit, 0)]
        cut = length - kept
        if len(str(cut)) <= digits:
            return f"{text[:kept]}…[truncated {cut} chars]"
        digits += 1

"""Validation of one ingested event (the rules: docs/api.md, "Fields" and "Request rules").
Pure functions, no I/O.

:func:`validate_event` turns a decoded JSON body into a :class:`ValidEvent`, or into the list of
every rule it breaks (:class:`FieldError`, in field order, then unknown fields), so that a client
learns about all of its mistakes from one answer. Nothing the client sent is silently dropped:
a field it does not know is kept with the event's custom data (``properties``) and named in a
warning; the fields trackers commonly send (the original RevivaTech tracker's ``id``,
``event_name``, ``event_data``, ``referrer_url``, UTM and device fields...) are taken under their
names (:data:`DETAIL_FIELDS`, :data:`ALIASES`).

This runs for every event that arrives, so it is written for speed: no regex except the one for
``event_type``, no helper objects built per call, the error list only made when there is an error,
and an event of only the core fields (:data:`KNOWN_FIELDS`) never looks at the others.

:func:`correct_clock_skew` is the Segment rule ingest applies to a valid event's times, and
:func:`truncate_payload` bounds what a dead letter keeps of the offending input.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import uuid
from datetime import UTC, datetime
from sys import intern
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
import orjson

__all__ = [
    "ALIASES",
    "DETAIL_FIELDS",
    "EventDetails",
    "FieldError",
    "ID_NAMESPACE",
    "KNOWN_FIELDS",
    "MAX_CLIENT_ID_LENGTH",
    "MAX_DETAIL_LENGTH",
    "MAX_EVENT_TYPE_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_PROPERTIES_BYTES",
    "MAX_PROPERTIES_DEPTH",
    "MAX_URL_LENGTH",
    "ValidEvent",
    "client_event_uuid",
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
#: Deepest ``properties`` nesting: the object itself is level 1, every object or list inside one
#: more.
MAX_PROPERTIES_DEPTH = 5
#: Longest client event id (``id`` or ``event_id``) that is not a UUID, in characters.
MAX_CLIENT_ID_LENGTH = 128
#: Longest text of a detail field (:data:`DETAIL_FIELDS`), in characters.
MAX_DETAIL_LENGTH = 256
#: Epoch times below this are refused: seconds and milliseconds cannot be told apart below it
#: (10^11 ms is 1973-03-03, 10^11 s is the year 5138).
MIN_EPOCH_MILLIS = 10**11
#: Namespace of the UUIDv5 a client event id that is not a UUID maps to (:func:`client_event_uuid`).
ID_NAMESPACE = uuid.UUID("7d1c7f0e-3a52-5b7e-9a53-2f6f1b0c4e1d")
#: The core fields of an event. An event of only these takes the fast path.
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
#: Tracker fields stored as columns of their own (``EventDetails``): name -> kind, where "text"
#: is a string of at most :data:`MAX_DETAIL_LENGTH` characters and "number" a finite number.
DETAIL_FIELDS = {
    "event_name": "text",
    "user_id": "text",
    "utm_source": "text",
    "utm_medium": "text",
    "utm_campaign": "text",
    "utm_term": "text",
    "utm_content": "text",
    "device_type": "text",
    "browser": "text",
    "os": "text",
    "screen_resolution": "text",
    "viewport_size": "text",
    "time_on_page": "number",
    "time_since_last_event": "number",
}
#: Other names trackers use for a core field: alias -> field. When both are sent, the field wins
#: and the alias's value is kept in ``properties`` under the alias's name.
ALIASES = {"id": "event_id", "referrer_url": "referrer"}
#: Other names of custom data: their objects are merged into ``properties``.
_CUSTOM_DATA = ("event_data", "metadata")
# The names _extended sorts an event's fields by.
_TEXT_FIELDS = frozenset(name for name, kind in DETAIL_FIELDS.items() if kind == "text")
_NUMBER_FIELDS = frozenset(name for name, kind in DETAIL_FIELDS.items() if kind == "number")
_KNOWN_NAMES = KNOWN_FIELDS | DETAIL_FIELDS.keys() | ALIASES.keys() | frozenset(_CUSTOM_DATA)


@attrs.frozen(slots=True)
class FieldError:
    """One broken rule: the field it concerns (``""`` for the whole body) and a human sentence."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class EventDetails(NamedTuple):
    """The tracker fields of :data:`DETAIL_FIELDS` one event carried (absent ones None), in that
    order. ``time_on_page`` and ``time_since_last_event`` are as sent (milliseconds, from the
    RevivaTech tracker). A named tuple, not an attrs class: one is built for every tracker event,
    from the values in one C call (``_make``)."""

    event_name: str | None = None
    user_id: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    device_type: str | None = None
    browser: str | None = None
    os: str | None = None
    screen_resolution: str | None = None
    viewport_size: str | None = None
    time_on_page: float | None = None
    time_since_last_event: float | None = None


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
    #: The event id exactly as the client sent it (``event_id``, else ``id``), when it sent one:
    #: what the answer's ``eventId`` echoes. ``event_id`` is its UUID (:func:`client_event_uuid`).
    client_id: str | None = None
    details: EventDetails | None = None  # None when no detail field was sent
    #: Fields kept in a way the client may not expect (an unknown field kept in properties...).
    warnings: tuple[FieldError, ...] = ()


# --- messages (module constants: the same text every time, built once) ---------------------------

_NOT_OBJECT = "an event must be a JSON object"
_REQUIRED = "is required"
_NOT_STRING = "must be a string"
_BLANK = "must not be blank"
_ID_LENGTH = f"must be 1 to {MAX_ID_LENGTH} characters"
_EVENT_TYPE = f"must be 1 to {MAX_EVENT_TYPE_LENGTH} characters of A-Z a-z 0-9 _ . : -"
_TIME_NOT_STRING = "must be an RFC 3339 string or a number of epoch milliseconds"
_TIME_AMBIGUOUS = (
    "is a number below 10^11: epoch seconds and milliseconds cannot be told apart there; "
    "send epoch milliseconds or an RFC 3339 string"
)
_TIME_MILLIS_RANGE = "must be epoch milliseconds between the years 1973 and 9999"
_CLIENT_ID = f"must be a UUID or a string of 1 to {MAX_CLIENT_ID_LENGTH} characters"
_DETAIL_LENGTH = f"must be at most {MAX_DETAIL_LENGTH} characters"
_TIME_SHAPE = "must be an RFC 3339 date-time, e.g. 2025-07-16T10:55:03.268Z"
_TIME_NAIVE = "must include a time zone offset (RFC 3339)"
_TIME_INVALID = "is not a valid date and time"
_TIME_RANGE = "must be between the years 1970 and 9999 (UTC)"
_URL_LENGTH = f"must be at most {MAX_URL_LENGTH} characters"
_NUMBER = "must be a finite number"
# PostgreSQL's text and jsonb cannot hold U+0000: refused here, on every engine, by field.
_NUL = "contains a NUL character (U+0000), which cannot be stored"
_PROPS_OBJECT = "must be a JSON object"
_PROPS_DEPTH = f"is nested deeper than {MAX_PROPERTIES_DEPTH} levels"
_KEPT_UNKNOWN = "is not a known field; kept in properties"
_TAKEN = "cannot be kept in properties: properties already has a different value under that name"

_EVENT_TYPE_RE = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_EVENT_TYPE_LENGTH}}}")
_EVENT_TYPE_MATCH = _EVENT_TYPE_RE.fullmatch

# Only ASCII hex digits: ``int(s, 16)`` (and so ``uuid.UUID``) also takes ``_`` and non-ASCII
# digits.
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DIGITS = "0123456789"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What counts as a level of nesting in properties (tuples too, for callers other than the JSON
# parser).
_CONTAINERS = frozenset({dict, list, tuple})


# --- the validator -----------------------------------------------------------------------------


def validate_event(data: object) -> ValidEvent | list[FieldError]:
    """Check one decoded JSON event; the canonical :class:`ValidEvent`, or every rule it breaks."""
    if not isinstance(data, dict):
        return [FieldError("", _NOT_OBJECT)]
    errors: list[FieldError] | None = None
    details: EventDetails | None = None
    kept: dict[str, Any] | None = None
    warnings: list[FieldError] | None = None
    id_field = "event_id"
    if not KNOWN_FIELDS.issuperset(data):  # more than the core fields: sort them out first
        data, id_field, details, kept, warnings, errors = _extended(data)
    get = data.get

    # user_fingerprint, session_id: required strings of 1..128 characters, not only whitespace
    fingerprint = get("user_fingerprint")
    if (
        type(fingerprint) is not str
        or not 0 < len(fingerprint) <= MAX_ID_LENGTH
        or fingerprint.isspace()
    ):
        errors = _id_errors(errors, "user_fingerprint", fingerprint)
    elif "\x00" in fingerprint:
        errors = _add(errors, "user_fingerprint", _NUL)
    session_id = get("session_id")
    if (
        type(session_id) is not str
        or not 0 < len(session_id) <= MAX_ID_LENGTH
        or session_id.isspace()
    ):
        errors = _id_errors(errors, "session_id", session_id)
    elif "\x00" in session_id:
        errors = _add(errors, "session_id", _NUL)

    # event_type: required, 1..64 characters of A-Z a-z 0-9 _ . : -
    event_type = get("event_type")
    if event_type is None:
        errors = _add(errors, "event_type", _REQUIRED)
    elif type(event_type) is not str:
        errors = _add(errors, "event_type", _NOT_STRING)
    elif _EVENT_TYPE_MATCH(event_type) is None:
        errors = _add(errors, "event_type", _EVENT_TYPE)

    # event_id (or id): optional; a UUID is stored lower-case, any other id as its UUIDv5
    event_id = get("event_id")
    client_id = None
    if event_id is not None:
        if (
            type(event_id) is str
            and len(event_id) == 36
            and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-"
            and _HEX_DIGITS.issuperset(event_id.replace("-", ""))
        ):
            canonical = event_id.lower()
            if canonical != event_id:
                client_id = event_id
            event_id = canonical
        else:
            if type(event_id) is int:
                event_id = str(event_id)
            if type(event_id) is str and "\x00" in event_id:
                errors = _add(errors, id_field, _NUL)
            elif (
                type(event_id) is str
                and 0 < len(event_id) <= MAX_CLIENT_ID_LENGTH
                and not event_id.isspace()
            ):
                client_id = event_id
                if type(fingerprint) is str:
                    event_id = client_event_uuid(fingerprint, client_id)
            else:
                errors = _add(errors, id_field, _CLIENT_ID)

    # timestamp, sent_at: optional RFC 3339 date-times with an offset, or epoch milliseconds; in UTC
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
        elif "\x00" in page_url:
            errors = _add(errors, "page_url", _NUL)
    referrer = get("referrer")
    if referrer is not None:
        if type(referrer) is not str:
            errors = _add(errors, "referrer", _NOT_STRING)
        elif len(referrer) > MAX_URL_LENGTH:
            errors = _add(errors, "referrer", f"{_URL_LENGTH} (got {len(referrer)})")
        elif "\x00" in referrer:
            errors = _add(errors, "referrer", _NUL)

    # value: optional finite number (not a bool), stored as float
    value = get("value")
    if value is not None:
        value = _finite(value)
        if value is None:
            errors = _add(errors, "value", _NUMBER)

    # properties: optional JSON object (with what _extended keeps), at most 32 KB encoded, 5 levels
    # deep
    properties = get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors = _add(errors, "properties", _PROPS_OBJECT)
    if kept and isinstance(properties, dict):
        properties = dict(properties)
        for name, kept_value in kept.items():
            if properties.get(name, kept_value) != kept_value:
                errors = _add(errors, name, _TAKEN)
            properties[name] = kept_value
    if properties and isinstance(properties, dict):
        too_deep = _too_deep(properties, 1)
        if too_deep:
            errors = _add(errors, "properties", _PROPS_DEPTH)
        try:
            encoded = orjson.dumps(properties)
        except TypeError as exc:  # orjson.JSONEncodeError: huge int, non-str key, recursion limit
            if not too_deep:
                errors = _add(errors, "properties", f"cannot be encoded as JSON ({exc})")
        else:
            size = len(encoded)
            if size > MAX_PROPERTIES_BYTES:
                errors = _add(
                    errors,
                    "properties",
                    f"is larger than {MAX_PROPERTIES_BYTES} bytes when encoded (got {size})",
                )
            elif b"\\u0000" in encoded and _holds_nul(properties):  # the walk only when it may
                errors = _add(errors, "properties", _NUL)

    if errors is not None:
        return errors
    if TYPE_CHECKING:  # what the checks above passed means; not asserted at run time (hot path)
        assert type(fingerprint) is str and type(session_id) is str and type(event_type) is str
        assert not isinstance(timestamp, str) and not isinstance(sent_at, str)
    # Interned: the same visitor, session, type or page arrives in many events, and what keeps
    # them (the realtime window's buckets, the visitor actors' touches) then holds one copy of
    # each, not one per event, for as long as the window spans.
    return ValidEvent(
        intern(fingerprint),
        intern(session_id),
        intern(event_type),
        event_id,
        timestamp,
        sent_at,
        None if page_url is None else intern(page_url),
        referrer,
        value,
        properties,
        client_id,
        details,
        () if warnings is None else tuple(warnings),
    )


def client_event_uuid(user_fingerprint: str, client_id: str) -> str:
    """The UUID stored for a client event id that is not a UUID: UUIDv5 of ``client_id`` in the
    namespace UUIDv5(:data:`ID_NAMESPACE`, ``user_fingerprint``). The same visitor's replay of an
    id maps to the same UUID (so it is a duplicate); two visitors' equal ids do not collide."""
    return _uuid5_text(_visitor_namespace(user_fingerprint), client_id)


def _uuid5_bytes(namespace: bytes, name: str) -> bytearray:
    """RFC 4122 version 5, as ``uuid.uuid5`` computes it, without building UUID objects: the
    tracker sends a non-UUID id with every event, and ``uuid.uuid5``'s objects cost more than
    the hash."""
    digest = bytearray(hashlib.sha1(namespace + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest


def _uuid5_text(namespace: bytes, name: str) -> str:
    h = _uuid5_bytes(namespace, name).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=4096)
def _visitor_namespace(user_fingerprint: str) -> bytes:
    """A visitor's namespace; kept for the visitors seen lately, whose events come in runs."""
    return bytes(_uuid5_bytes(ID_NAMESPACE.bytes, user_fingerprint))


def _extended(
    data: dict[Any, Any],
) -> tuple[
    dict[Any, Any],
    str,
    EventDetails | None,
    dict[str, Any] | None,
    list[FieldError] | None,
    list[FieldError] | None,
]:
    """Sort out an event with fields beyond the core ones: (the fields to validate, aliases
    resolved; the name the event id came under; the detail fields; what to keep in properties by
    name; warnings; errors). Custom data (``event_data``, ``metadata``) is merged into
    ``properties``. The names are sorted out by set operations (in C): a tracker's event has a
    dozen detail fields, and a Python step per field was most of its validation."""
    names = data.keys()
    detail_values: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    warnings: list[FieldError] = []
    errors: list[FieldError] | None = None
    for name in names & _TEXT_FIELDS:
        value = data[name]
        if type(value) is str:
            if len(value) > MAX_DETAIL_LENGTH:
                errors = _add(errors, name, f"{_DETAIL_LENGTH} (got {len(value)})")
            elif "\x00" in value:
                errors = _add(errors, name, _NUL)
            else:
                detail_values[name] = value
        elif value is not None:
            kept[name] = value
            warnings.append(FieldError(name, "is not a string; kept in properties"))
    for name in names & _NUMBER_FIELDS:
        value = data[name]
        if value is not None:
            number = _finite(value)
            if number is None:
                kept[name] = value
                warnings.append(FieldError(name, "is not a finite number; kept in properties"))
            else:
                detail_values[name] = number
    device = detail_values.get("device_type")
    if device is not None:  # kept by every visitor's profile actor until written: one copy each
        detail_values["device_type"] = intern(device)
    unknown = names - _KNOWN_NAMES
    if unknown:
        for name in data:  # in the order sent
            if name in unknown:
                shown = name if type(name) is str else str(name)
                kept[shown] = data[name]
                warnings.append(FieldError(shown, _KEPT_UNKNOWN))
    core = data
    id_field = "event_id"
    for alias, field in ALIASES.items():
        value = data.get(alias)
        if value is None:
            continue
        if data.get(field) is None:
            if core is data:
                core = dict(data)
            core[field] = value
            if field == "event_id":
                id_field = alias
        elif data[field] != value:
            kept[alias] = value
            warnings.append(
                FieldError(alias, f"{field} was sent too and is used; {alias} kept in properties")
            )
    custom = [name for name in _CUSTOM_DATA if data.get(name) is not None]
    if custom:
        properties = data.get("properties")
        merged = dict(properties) if isinstance(properties, dict) else {}
        for name in custom:
            values = data[name]
            if type(values) is not dict:
                kept[name] = values
                warnings.append(FieldError(name, "is not a JSON object; kept in properties"))
            elif merged.keys() & values.keys() and any(
                merged.get(key, item) != item for key, item in values.items()
            ):
                kept[name] = values
                warnings.append(
                    FieldError(
                        name,
                        "has keys that other custom data holds with other values; "
                        f"kept whole in properties.{name}",
                    )
                )
            else:
                merged.update(values)
        if properties is None or isinstance(properties, dict):
            if core is data:
                core = dict(data)
            core["properties"] = merged
    if len(warnings) > 1:  # in the order the fields were sent
        order = {name: position for position, name in enumerate(data)}
        warnings.sort(key=lambda warning: order.get(warning.field, len(order)))
    details = EventDetails._make(map(detail_values.get, DETAIL_FIELDS)) if detail_values else None
    return core, id_field, details, kept or None, warnings or None, errors


def _finite(value: object) -> float | None:
    """``value`` as a finite float when it is a finite number (not a bool), else None."""
    kind = type(value)
    if kind is float or (kind is not bool and isinstance(value, (int, float))):
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int beyond float range
            return None
        return number if math.isfinite(number) else None
    return None


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
    kind = type(value)
    if kind is int or kind is float:
        return _from_millis(value)  # type: ignore[arg-type]
    if kind is not str:
        return _TIME_NOT_STRING
    s: str = value  # type: ignore[assignment]
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


def _from_millis(millis: float) -> datetime | str:
    """An aware UTC datetime from epoch milliseconds, or the message saying what is wrong."""
    if not math.isfinite(millis):
        return _TIME_MILLIS_RANGE
    if millis < MIN_EPOCH_MILLIS:
        return _TIME_AMBIGUOUS
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # past the year 9999
        return _TIME_MILLIS_RANGE


def _holds_nul(value: object) -> bool:
    """True if a string in ``value`` (a decoded JSON value), or a key of one of its objects,
    holds U+0000."""
    if type(value) is str:
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in str(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(item) for item in value)
    return False


def _too_deep(container: dict[Any, Any] | list[Any] | tuple[Any, ...], level: int) -> bool:
    """Whether anything inside ``container`` (which is at nesting ``level``) goes past the depth
    limit. Stops descending at the limit, so hostile nesting costs no more than legitimate
    nesting."""
    for child in container.values() if type(container) is dict else container:
        if type(child) in _CONTAINERS and (
            level >= MAX_PROPERTIES_DEPTH or _too_deep(child, level + 1)
        ):
            return True
    return False


# --- times and payloads for ingest and dead letters --------------------------------------------


def correct_clock_skew(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
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
    (N being how many characters of ``text`` were left out), and the marker fits inside
    ``limit``."""
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

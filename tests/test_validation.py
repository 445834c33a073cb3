"""Event validation rules (docs/api.md, "Fields" and "Request rules"), clock-skew correction and
payload truncation.

Pure functions: plain synchronous tests, mostly tables of (input, expected) at each boundary.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from revivatech_actors.domain.validation import (
    ID_NAMESPACE,
    KNOWN_FIELDS,
    MAX_EVENT_TYPE_LENGTH,
    MAX_ID_LENGTH,
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTIES_DEPTH,
    MAX_URL_LENGTH,
    EventDetails,
    FieldError,
    ValidEvent,
    client_event_uuid,
    correct_clock_skew,
    truncate_payload,
    validate_event,
)

BASE = {"user_fingerprint": "fp_1", "session_id": "sess_1", "event_type": "page_view"}

EVENT_TYPE_MESSAGE = "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
TIME_SHAPE = "must be an RFC 3339 date-time, e.g. 2025-07-16T10:55:03.268Z"
TIME_NAIVE = "must include a time zone offset (RFC 3339)"
TIME_NOT_STRING = "must be an RFC 3339 string or a number of epoch milliseconds"
TIME_AMBIGUOUS = (
    "is a number below 10^11: epoch seconds and milliseconds cannot be told apart there; "
    "send epoch milliseconds or an RFC 3339 string"
)
TIME_MILLIS_RANGE = "must be epoch milliseconds between the years 1973 and 9999"
CLIENT_ID = "must be a UUID or a string of 1 to 128 characters"
TIME_INVALID = "is not a valid date and time"
TIME_RANGE = "must be between the years 1970 and 9999 (UTC)"
NUMBER = "must be a finite number"
KEPT_UNKNOWN = "is not a known field; kept in properties"


def event(**fields):
    """BASE with ``fields`` added, replaced, or (given as ``...``) removed."""
    data = dict(BASE)
    for name, value in fields.items():
        if value is ...:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def valid(data) -> ValidEvent:
    result = validate_event(data)
    assert isinstance(result, ValidEvent), result
    return result


def errors(data) -> list[tuple[str, str]]:
    result = validate_event(data)
    assert isinstance(result, list), result
    assert all(isinstance(error, FieldError) for error in result)
    return [(error.field, error.message) for error in result]


# --- constants and small API --------------------------------------------------------------------


def test_constants():
    assert (MAX_ID_LENGTH, MAX_EVENT_TYPE_LENGTH, MAX_URL_LENGTH) == (128, 64, 2048)
    assert (MAX_PROPERTIES_BYTES, MAX_PROPERTIES_DEPTH) == (32768, 5)
    assert KNOWN_FIELDS == {
        "user_fingerprint", "session_id", "event_type", "event_id", "timestamp", "sent_at",
        "page_url", "referrer", "value", "properties",
    }  # fmt: skip


def test_field_error_as_dict():
    assert FieldError("event_type", "is required").as_dict() == {
        "field": "event_type",
        "message": "is required",
    }


def test_minimal_event_gets_defaults():
    assert valid(BASE) == ValidEvent(
        user_fingerprint="fp_1",
        session_id="sess_1",
        event_type="page_view",
        event_id=None,
        timestamp=None,
        sent_at=None,
        page_url=None,
        referrer=None,
        value=None,
        properties={},
    )


def test_repeated_strings_are_one_object():
    # What keeps many events (the realtime window, visitor actors) holds one copy of each
    # visitor, session, type and page, not one per event.
    body = orjson.dumps({**BASE, "page_url": "https://shop.example/p/1"})
    first, second = valid(orjson.loads(body)), valid(orjson.loads(body))
    for field in ("user_fingerprint", "session_id", "event_type", "page_url"):
        assert getattr(first, field) == getattr(second, field)
        assert getattr(first, field) is getattr(second, field), field


def test_full_event_is_canonicalised():
    result = valid(
        {
            "user_fingerprint": "fp_1",
            "session_id": "sess_1",
            "event_type": "booking:started",
            "event_id": "123E4567-E89B-12D3-A456-426614174000",
            "timestamp": "2025-07-16T12:55:03.268+02:00",
            "sent_at": "2025-07-16T10:55:04Z",
            "page_url": "https://example.com/book",
            "referrer": "https://google.com/",
            "value": 129,
            "properties": {"device": "iPhone 15", "tags": ["a", "b"]},
        }
    )
    assert result.event_id == "123e4567-e89b-12d3-a456-426614174000"
    assert result.timestamp == datetime(2025, 7, 16, 10, 55, 3, 268000, tzinfo=UTC)
    assert result.timestamp.tzinfo is UTC
    assert result.sent_at == datetime(2025, 7, 16, 10, 55, 4, tzinfo=UTC)
    assert (result.page_url, result.referrer) == ("https://example.com/book", "https://google.com/")
    assert result.value == 129.0 and type(result.value) is float
    assert result.properties == {"device": "iPhone 15", "tags": ["a", "b"]}


@pytest.mark.parametrize("data", [[], [BASE], "page_view", None, 42, 1.5, True, b"{}"])
def test_non_object_body(data):
    assert errors(data) == [("", "an event must be a JSON object")]


# --- user_fingerprint, session_id ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["user_fingerprint", "session_id"])
@pytest.mark.parametrize(
    "value",
    ["a", "x" * 128, " padded ", "ünïcødé-✓", "a b"],
    ids=["1 char", "128 chars", "kept untrimmed", "unicode", "inner space"],
)
def test_identifier_accepted(field, value):
    assert getattr(valid(event(**{field: value})), field) == value


@pytest.mark.parametrize("field", ["user_fingerprint", "session_id"])
@pytest.mark.parametrize(
    ("value", "messages"),
    [
        (..., ["is required"]),
        (None, ["is required"]),
        ("", ["must be 1 to 128 characters (got 0)"]),
        ("x" * 129, ["must be 1 to 128 characters (got 129)"]),
        (" ", ["must not be blank"]),
        ("\t\n  ", ["must not be blank"]),
        (" " * 129, ["must be 1 to 128 characters (got 129)", "must not be blank"]),
        (12345, ["must be a string"]),
        (["fp"], ["must be a string"]),
        (True, ["must be a string"]),
    ],
    ids=[
        "absent",
        "null",
        "empty",
        "129 chars",
        "space",
        "whitespace",
        "long blank",
        "int",
        "list",
        "bool",
    ],
)
def test_identifier_refused(field, value, messages):
    assert errors(event(**{field: value})) == [(field, message) for message in messages]


# --- event_type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a", "x" * 64, "page_view", "booking:started", "ui.click-button", "A-Z_a-z.0-9:x", "0"],
)
def test_event_type_accepted(value):
    assert valid(event(event_type=value)).event_type == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (..., "is required"),
        (None, "is required"),
        ("", EVENT_TYPE_MESSAGE),
        ("x" * 65, EVENT_TYPE_MESSAGE),
        ("page view", EVENT_TYPE_MESSAGE),
        ("page_view\n", EVENT_TYPE_MESSAGE),
        ("événement", EVENT_TYPE_MESSAGE),
        ("a/b", EVENT_TYPE_MESSAGE),
        ("٣", EVENT_TYPE_MESSAGE),
        (7, "must be a string"),
    ],
    ids=[
        "absent",
        "null",
        "empty",
        "65 chars",
        "space",
        "trailing newline",
        "accent",
        "slash",
        "arabic digit",
        "int",
    ],
)
def test_event_type_refused(value, message):
    assert errors(event(event_type=value)) == [("event_type", message)]


# --- event_id -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
        ("123E4567-E89B-12D3-A456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
        ("123e4567-E89B-12d3-A456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
        ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
        (None, None),
        (..., None),
    ],
    ids=["lower", "upper", "mixed", "nil uuid", "null", "absent"],
)
def test_event_id_accepted(value, stored):
    assert valid(event(event_id=value)).event_id == stored


def test_event_id_random_uuids_round_trip():
    for _ in range(100):
        text = str(uuid.uuid4())
        assert valid(event(event_id=text.upper())).event_id == text


@pytest.mark.parametrize(
    "value",
    [
        "{123e4567-e89b-12d3-a456-426614174000}",  # uuid.UUID accepts braces: not canonical here
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",  # ... and the URN form
        "123e4567e89b12d3a456426614174000",  # ... and no hyphens
        "123e4567-e89b-12d3-a456-42661417400",  # 35 characters
        "123e4567-e89b-12d3-a456-4266141740_0",  # int(..., 16), and so uuid.UUID, accepts "_"
        "123e4567-e89b-12d3-a456-42661417400٣",  # ... and non-ASCII digits
        "1764686400000_k3j5h6g7f8d9s",  # the RevivaTech tracker's ids
        "x",
        "x" * 128,
    ],
)
def test_an_event_id_that_is_not_a_uuid_maps_to_its_uuid5_and_is_echoed(value):
    result = valid(event(event_id=value))
    assert result.client_id == value
    assert result.event_id == str(
        uuid.uuid5(uuid.uuid5(ID_NAMESPACE, BASE["user_fingerprint"]), value)
    )
    assert result.event_id == client_event_uuid(BASE["user_fingerprint"], value)
    assert valid(event(event_id=value)).event_id == result.event_id  # a replay is a duplicate
    other = valid(event(event_id=value, user_fingerprint="someone else"))
    assert other.event_id != result.event_id  # equal ids of two visitors do not collide


def test_an_integer_id_is_its_decimal_text():
    result = valid(event(id=123))
    assert result.client_id == "123"
    assert result.event_id == client_event_uuid(BASE["user_fingerprint"], "123")


def test_id_is_the_event_id_when_event_id_is_absent():
    uuid_text = "123E4567-E89B-12D3-A456-426614174000"
    result = valid(event(id=uuid_text))
    assert (result.event_id, result.client_id) == (uuid_text.lower(), uuid_text)
    assert result.warnings == ()
    assert valid(event(id="abc")).client_id == "abc"


def test_event_id_wins_over_id_and_id_is_kept_in_properties():
    result = valid(event(event_id="123e4567-e89b-12d3-a456-426614174000", id="abc"))
    assert result.event_id == "123e4567-e89b-12d3-a456-426614174000"
    assert result.client_id is None
    assert result.properties == {"id": "abc"}
    assert [w.field for w in result.warnings] == ["id"]
    same = valid(event(event_id="abc", id="abc"))
    assert (same.client_id, same.properties, same.warnings) == ("abc", {}, ())


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "x" * 129,
        12.5,
        True,
        ["123e4567-e89b-12d3-a456-426614174000"],
        {"id": 1},
    ],
)
def test_event_id_refused(value):
    assert errors(event(event_id=value)) == [("event_id", CLIENT_ID)]
    assert errors(event(id=value)) == [("id", CLIENT_ID)]


# --- timestamp, sent_at -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["timestamp", "sent_at"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-07-16T10:55:03.268Z", datetime(2025, 7, 16, 10, 55, 3, 268000, tzinfo=UTC)),
        ("2025-07-16T10:55:03Z", datetime(2025, 7, 16, 10, 55, 3, tzinfo=UTC)),
        ("2025-07-16T12:55:03+02:00", datetime(2025, 7, 16, 10, 55, 3, tzinfo=UTC)),
        ("2025-07-16T05:25:03.5-05:30", datetime(2025, 7, 16, 10, 55, 3, 500000, tzinfo=UTC)),
        (
            "2025-07-16T10:55:03.123456789+00:00",
            datetime(2025, 7, 16, 10, 55, 3, 123456, tzinfo=UTC),
        ),
        ("2025-07-16T10:55:03-00:00", datetime(2025, 7, 16, 10, 55, 3, tzinfo=UTC)),
        ("2025-07-16 10:55:03Z", datetime(2025, 7, 16, 10, 55, 3, tzinfo=UTC)),
        ("2025-07-16t10:55:03z", datetime(2025, 7, 16, 10, 55, 3, tzinfo=UTC)),
        ("2025-07-17T00:30:00+14:00", datetime(2025, 7, 16, 10, 30, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        (None, None),
        (..., None),
    ],
    ids=[
        "Z with millis", "Z", "+02:00", "-05:30 fraction", "nanoseconds truncated", "-00:00",
        "space", "lower case", "+14:00 crosses the date", "epoch", "last second", "leap day",
        "null", "absent",
    ],
)  # fmt: skip
def test_time_accepted_and_normalised_to_utc(field, value, expected):
    moment = getattr(valid(event(**{field: value})), field)
    assert moment == expected
    if expected is not None:
        assert moment.utcoffset() == timedelta(0)
        assert moment.tzinfo is UTC


@pytest.mark.parametrize("field", ["timestamp", "sent_at"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-07-16T10:55:03", TIME_NAIVE),
        ("2025-07-16T10:55:03.268", TIME_NAIVE),
        ("2025-07-16 10:55:03", TIME_NAIVE),
        ("2025-07-16", TIME_SHAPE),
        ("2025-07-16T10:55Z", TIME_SHAPE),
        ("20250716T105503Z", TIME_SHAPE),
        ("2025-W29-3T10:55:03Z", TIME_SHAPE),
        ("2025-07-16T10:55:03+02", TIME_SHAPE),
        ("2025-07-16T10:55:03+0200", TIME_SHAPE),
        ("2025-07-16T10:55:03+02:00:30", TIME_SHAPE),
        ("2025-07-16T10:55:03,268Z", TIME_SHAPE),
        ("2025-07-16T10:55:03.Z", TIME_SHAPE),
        ("2025-07-16T10:55:03 Z", TIME_SHAPE),
        ("2025-07-16X10:55:03Z", TIME_SHAPE),
        ("Wed, 16 Jul 2025 10:55:03 GMT", TIME_SHAPE),
        ("yesterday", TIME_SHAPE),
        ("", TIME_SHAPE),
        ("2025-07-16T10:55:0٣Z", TIME_SHAPE),
        ("2025-13-01T00:00:00Z", TIME_INVALID),
        ("2025-02-29T00:00:00Z", TIME_INVALID),
        ("2025-07-16T24:00:00Z", TIME_INVALID),
        ("2025-07-16T10:55:60Z", TIME_INVALID),
        ("2025-07-16T10:55:03+24:00", TIME_INVALID),
        ("2025-07-1xT10:55:03Z", TIME_INVALID),
        ("1969-12-31T23:59:59Z", TIME_RANGE),
        ("0000-01-01T00:00:00Z", TIME_RANGE),
        ("1970-01-01T00:30:00+01:00", TIME_RANGE),
        ("9999-12-31T23:00:00-05:00", TIME_RANGE),
        (1752663303, TIME_AMBIGUOUS),
        (1752663303.268, TIME_AMBIGUOUS),
        (-1, TIME_AMBIGUOUS),
        (10**16, TIME_MILLIS_RANGE),
        (True, TIME_NOT_STRING),
        ({"seconds": 1}, TIME_NOT_STRING),
    ],
    ids=[
        "naive", "naive millis", "naive space", "date only", "no seconds", "basic format",
        "week date", "+02", "+0200", "offset seconds", "comma fraction", "empty fraction",
        "space before Z", "X separator", "RFC 2822", "garbage", "empty", "arabic digit", "month 13",
        "Feb 29 2025", "hour 24", "leap second", "offset 24h", "letter in day", "1969", "year 0",
        "1969 in UTC", "year 10000 in UTC", "epoch seconds", "float seconds", "negative",
        "year 318857", "bool", "object",
    ],
)  # fmt: skip
def test_time_refused(field, value, message):
    assert errors(event(**{field: value})) == [(field, message)]


# --- page_url, referrer -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["page_url", "referrer"])
@pytest.mark.parametrize(
    "value", ["https://example.com/", "", "x" * 2048, "/relative?q=1#frag", None, ...]
)
def test_url_accepted(field, value):
    assert getattr(valid(event(**{field: value})), field) == (None if value is ... else value)


@pytest.mark.parametrize("field", ["page_url", "referrer"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * 2049, "must be at most 2048 characters (got 2049)"),
        ("x" * 10_000, "must be at most 2048 characters (got 10000)"),
        (42, "must be a string"),
        ({"href": "/"}, "must be a string"),
    ],
)
def test_url_refused(field, value, message):
    assert errors(event(**{field: value})) == [(field, message)]


# --- value --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (0, 0.0),
        (129, 129.0),
        (-5, -5.0),
        (129.99, 129.99),
        (1e300, 1e300),
        (2**64, float(2**64)),
        (None, None),
        (..., None),
    ],
)
def test_value_accepted(value, stored):
    result = valid(event(value=value)).value
    assert result == stored
    assert result is None or type(result) is float


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        10**400,
        "129.99",
        "",
        [1],
        {"amount": 1},
    ],
    ids=[
        "true",
        "false",
        "nan",
        "inf",
        "-inf",
        "int beyond float",
        "numeric string",
        "empty string",
        "list",
        "dict",
    ],
)
def test_value_refused(value):
    assert errors(event(value=value)) == [("value", NUMBER)]


# --- properties ---------------------------------------------------------------------------------


def nested(depth: int, *, lists: bool = False):
    """A properties object ``depth`` levels deep (the object itself is level 1)."""
    inner: object = 1
    for level in range(depth - 1):
        inner = [inner] if lists and level % 2 == 0 else {"k": inner}
    return {"k": inner}


def sized(size: int) -> dict:
    """A properties object whose compact JSON encoding is exactly ``size`` bytes."""
    properties = {"a": "x" * (size - len(b'{"a":""}'))}
    assert len(orjson.dumps(properties)) == size
    return properties


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, {}),
        (..., {}),
        ({}, {}),
        ({"a": 1, "b": "two", "c": None, "d": [1, 2], "e": {"f": True}}, None),
        (nested(5), None),
        (nested(5, lists=True), None),
        ({"a": [], "b": {}, "c": [[[[]]]]}, None),
        (sized(32768), None),
        ({"big": 2**63 - 1, "small": -(2**63)}, None),
    ],
    ids=[
        "null",
        "absent",
        "empty",
        "mixed",
        "depth 5",
        "depth 5 with lists",
        "empty containers",
        "32768 bytes",
        "64-bit ints",
    ],
)
def test_properties_accepted(value, stored):
    result = valid(event(properties=value)).properties
    assert result == (value if stored is None else stored)


def test_depth_counts_each_level():
    assert valid(event(properties={"a": {"b": 1}})).properties == {"a": {"b": 1}}
    assert valid(event(properties={"a": [[[[1]]]]})).properties == {
        "a": [[[[1]]]]
    }  # 1 object + 4 lists
    assert errors(event(properties={"a": [[[[[1]]]]]})) == [
        ("properties", "is nested deeper than 5 levels")
    ]
    assert valid(event(properties={"a": [[[{}]]]})).properties == {"a": [[[{}]]]}
    assert errors(event(properties={"a": [[[[{}]]]]})) == [
        ("properties", "is nested deeper than 5 levels")
    ]  # {} too


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        ([], ["must be a JSON object"]),
        ([{"a": 1}], ["must be a JSON object"]),
        ("{}", ["must be a JSON object"]),
        (7, ["must be a JSON object"]),
        (False, ["must be a JSON object"]),
        (sized(32769), ["is larger than 32768 bytes when encoded (got 32769)"]),
        (nested(6), ["is nested deeper than 5 levels"]),
        (nested(6, lists=True), ["is nested deeper than 5 levels"]),
        (nested(1000), ["is nested deeper than 5 levels"]),
        (
            {"deep": nested(6), "pad": "x" * 40_000},
            [
                "is nested deeper than 5 levels",
                "is larger than 32768 bytes when encoded (got 40055)",
            ],
        ),
        ({"huge": 2**64}, ["cannot be encoded as JSON (Integer exceeds 64-bit range)"]),
        ({1: "non-string key"}, ["cannot be encoded as JSON (Dict key must be str)"]),
    ],
    ids=[
        "list", "list of objects", "string", "int", "bool", "32769 bytes", "depth 6",
        "depth 6 with lists", "depth 1000", "too deep and too big", "int beyond 64 bits",
        "non-string key",
    ],
)  # fmt: skip
def test_properties_refused(value, messages):
    assert errors(event(properties=value)) == [("properties", message) for message in messages]


def test_multibyte_characters_count_as_bytes():
    # "€" is 3 bytes of UTF-8: the limit is on bytes, reached here with about 11 thousand characters
    properties = {"a": "€" * 10_920}
    size = len(orjson.dumps(properties))
    assert size == 8 + 3 * 10_920 == 32768
    assert valid(event(properties=properties))
    properties = {"a": "€" * 10_920 + "x"}
    assert errors(event(properties=properties)) == [
        ("properties", "is larger than 32768 bytes when encoded (got 32769)")
    ]


# --- unknown fields and several errors at once ---------------------------------------------------


def test_an_unknown_field_is_kept_in_properties_with_a_warning():
    result = valid(event(userId="u1", properties={"a": 1}))
    assert result.properties == {"a": 1, "userId": "u1"}
    assert result.warnings == (FieldError("userId", KEPT_UNKNOWN),)


def test_unknown_fields_are_warned_in_the_order_sent():
    result = valid({"zeta": 1, **BASE, "alpha": {"x": [1]}})
    assert [w.field for w in result.warnings] == ["zeta", "alpha"]
    assert result.properties == {"zeta": 1, "alpha": {"x": [1]}}


def test_an_unknown_field_whose_name_properties_holds_otherwise_is_refused():
    assert errors(event(colour="red", properties={"colour": "blue"})) == [
        (
            "colour",
            "cannot be kept in properties: "
            "properties already has a different value under that name",
        )
    ]
    assert valid(event(colour="red", properties={"colour": "red"})).properties == {"colour": "red"}


def test_unknown_fields_count_against_the_properties_limits():
    assert errors(event(blob="x" * MAX_PROPERTIES_BYTES))[0][0] == "properties"
    deep: dict = {}
    level = deep
    for _ in range(MAX_PROPERTIES_DEPTH):
        level["d"] = {}
        level = level["d"]
    assert errors(event(nested=deep)) == [
        ("properties", f"is nested deeper than {MAX_PROPERTIES_DEPTH} levels")
    ]


# --- what trackers send beside the core fields ----------------------------------------------------

#: An event as the RevivaTech tracker builds it (every field it sends).
TRACKER_EVENT = {
    "id": "1764686400000_k3j5h6g7f8d9s",
    "user_fingerprint": "fp_1",
    "session_id": "sess_1",
    "event_type": "page_view",
    "event_name": "Page View",
    "event_data": {"page_title": "Home", "page_load_time": 812},
    "page_url": "https://revivatech.co.uk/?utm_source=google",
    "referrer_url": "https://www.google.com/",
    "timestamp": 1764686400000,
    "device_type": "desktop",
    "browser": "Chrome",
    "os": "Linux x86_64",
    "screen_resolution": "1920x1080",
    "viewport_size": "1280x720",
    "time_on_page": 1520,
    "time_since_last_event": 310.5,
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "winter",
    "utm_term": "screen repair",
    "utm_content": "ad-1",
    "user_id": "customer-42",
}


def test_the_trackers_event_is_taken_whole_without_warnings():
    result = valid(TRACKER_EVENT)
    assert result.warnings == ()
    assert result.client_id == TRACKER_EVENT["id"]
    assert result.event_id == client_event_uuid("fp_1", TRACKER_EVENT["id"])
    assert result.timestamp == datetime(2025, 12, 2, 14, 40, tzinfo=UTC)
    assert result.referrer == "https://www.google.com/"
    assert result.properties == {"page_title": "Home", "page_load_time": 812}
    assert result.details == EventDetails(
        event_name="Page View",
        user_id="customer-42",
        utm_source="google",
        utm_medium="cpc",
        utm_campaign="winter",
        utm_term="screen repair",
        utm_content="ad-1",
        device_type="desktop",
        browser="Chrome",
        os="Linux x86_64",
        screen_resolution="1920x1080",
        viewport_size="1280x720",
        time_on_page=1520.0,
        time_since_last_event=310.5,
    )


def test_epoch_milliseconds_keep_their_fraction():
    assert valid(event(timestamp=1764686400123.5)).timestamp == datetime(
        2025, 12, 2, 14, 40, 0, 123500, tzinfo=UTC
    )
    assert valid(event(sent_at=100_000_000_000)).sent_at == datetime(
        1973, 3, 3, 9, 46, 40, tzinfo=UTC
    )


def test_core_only_events_have_no_details():
    result = valid(event())
    assert (result.details, result.client_id, result.warnings) == (None, None, ())


def test_event_data_and_metadata_merge_into_properties():
    result = valid(event(properties={"a": 1}, event_data={"b": 2}, metadata={"c": 3, "a": 1}))
    assert result.properties == {"a": 1, "b": 2, "c": 3}
    assert result.warnings == ()


def test_custom_data_that_disagrees_is_kept_whole_under_its_name():
    result = valid(event(properties={"a": 1}, metadata={"a": 2, "b": 3}))
    assert result.properties == {"a": 1, "metadata": {"a": 2, "b": 3}}
    assert [w.field for w in result.warnings] == ["metadata"]


@pytest.mark.parametrize("field", ["event_data", "metadata"])
def test_custom_data_that_is_not_an_object_is_kept_under_its_name(field):
    result = valid(event(**{field: "text"}))
    assert result.properties == {field: "text"}
    assert result.warnings == (FieldError(field, "is not a JSON object; kept in properties"),)
    assert valid(event(**{field: None})).properties == {}


def test_referrer_url_is_the_referrer_and_referrer_wins():
    assert valid(event(referrer_url="https://a.example/")).referrer == "https://a.example/"
    both = valid(event(referrer="https://a.example/", referrer_url="https://b.example/"))
    assert both.referrer == "https://a.example/"
    assert both.properties == {"referrer_url": "https://b.example/"}
    assert [w.field for w in both.warnings] == ["referrer_url"]
    assert errors(event(referrer_url=5)) == [("referrer", "must be a string")]


def test_a_detail_of_the_wrong_type_is_kept_in_properties():
    result = valid(event(browser=["Chrome"], time_on_page="12s"))
    assert result.details is None
    assert result.properties == {"browser": ["Chrome"], "time_on_page": "12s"}
    assert [w.field for w in result.warnings] == ["browser", "time_on_page"]


def test_a_detail_too_long_is_refused():
    assert errors(event(event_name="n" * 257)) == [
        ("event_name", "must be at most 256 characters (got 257)")
    ]


def test_null_details_are_absent():
    assert valid(event(browser=None, time_on_page=None)).details is None


def test_every_error_reported_in_field_order():
    data = {
        "properties": [],
        "value": True,
        "referrer": "r" * 2049,
        "page_url": 5,
        "sent_at": "2025-07-16T10:55:03",
        "timestamp": "nope",
        "event_id": "",
        "event_type": "bad type",
        "session_id": "   ",
        "extra": None,
    }
    assert errors(data) == [
        ("user_fingerprint", "is required"),
        ("session_id", "must not be blank"),
        ("event_type", EVENT_TYPE_MESSAGE),
        ("event_id", CLIENT_ID),
        ("timestamp", TIME_SHAPE),
        ("sent_at", TIME_NAIVE),
        ("page_url", "must be a string"),
        ("referrer", "must be at most 2048 characters (got 2049)"),
        ("value", NUMBER),
        ("properties", "must be a JSON object"),
    ]


def test_empty_object_names_each_required_field():
    assert errors({}) == [
        ("user_fingerprint", "is required"),
        ("session_id", "is required"),
        ("event_type", "is required"),
    ]


def test_errors_serialise_for_the_api():
    result = validate_event(event(event_type="", user_fingerprint=5))
    assert [error.as_dict() for error in result] == [
        {"field": "user_fingerprint", "message": "must be a string"},
        {"field": "event_type", "message": EVENT_TYPE_MESSAGE},
    ]


def test_input_is_not_modified():
    data = event(
        event_id="123E4567-E89B-12D3-A456-426614174000", timestamp="2025-07-16T12:55:03+02:00"
    )
    before = dict(data)
    valid(data)
    assert data == before


# --- many events --------------------------------------------------------------------------------


def test_ten_thousand_varied_valid_events():
    rng = random.Random(20250716)
    events = []
    for i in range(10_000):
        data = {
            "user_fingerprint": f"fp_{rng.randrange(500)}",
            "session_id": f"sess_{rng.randrange(2000)}",
            "event_type": rng.choice(
                ["page_view", "click", "booking:started", "booking.completed", "form-submit"]
            ),
        }
        if i % 2:
            data["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if i % 3:
            moment = datetime(2025, 7, 16, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(86_400), milliseconds=rng.randrange(1000)
            )
            offset = timezone(timedelta(minutes=rng.choice([-300, 0, 60, 120, 330])))
            data["timestamp"] = (
                moment.astimezone(offset).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            )
            data["sent_at"] = (moment + timedelta(seconds=1)).isoformat()
        if i % 4 == 0:
            data["page_url"] = f"https://example.com/repair/{i}"
            data["referrer"] = None
        if i % 5 == 0:
            data["value"] = rng.choice([0, 49, 129.99, 1e6])
        if i % 7 == 0:
            data["properties"] = {"device": "iPhone", "step": i % 9, "tags": ["a", {"b": [i]}]}
        events.append(data)

    results = [validate_event(data) for data in events]

    assert len(results) == 10_000
    bad = [result for result in results if not isinstance(result, ValidEvent)]
    assert bad == []
    assert sum(result.event_id is not None for result in results) == 5_000
    assert sum(result.timestamp is not None for result in results) == 6_666
    assert all(result.timestamp.tzinfo is UTC for result in results if result.timestamp is not None)


# --- correct_clock_skew -------------------------------------------------------------------------

RECEIVED = datetime(2025, 7, 16, 11, 0, 0, tzinfo=UTC)


def test_clock_skew_without_timestamp_is_received_at():
    assert correct_clock_skew(None, None, RECEIVED) == RECEIVED
    assert correct_clock_skew(None, datetime(2025, 7, 16, 10, 0, tzinfo=UTC), RECEIVED) == RECEIVED


def test_clock_skew_corrects_a_client_clock_one_hour_behind():
    # The client's clock reads 09:59:58 for an event and 09:59:59 when it sends; the server
    # receives at 11:00:00 (UTC). The clock is an hour (and a second of transit) behind.
    timestamp = datetime(2025, 7, 16, 9, 59, 58, tzinfo=UTC)
    sent_at = datetime(2025, 7, 16, 9, 59, 59, tzinfo=UTC)
    assert correct_clock_skew(timestamp, sent_at, RECEIVED) == datetime(
        2025, 7, 16, 10, 59, 59, tzinfo=UTC
    )


def test_clock_skew_corrects_a_client_clock_ahead():
    timestamp = datetime(2025, 7, 16, 11, 4, 0, tzinfo=UTC)
    sent_at = datetime(2025, 7, 16, 11, 5, 0, tzinfo=UTC)
    assert correct_clock_skew(timestamp, sent_at, RECEIVED) == datetime(
        2025, 7, 16, 10, 59, 0, tzinfo=UTC
    )


def test_clock_skew_without_sent_at_keeps_timestamp():
    timestamp = datetime(2025, 7, 16, 9, 59, 58, tzinfo=UTC)
    assert correct_clock_skew(timestamp, None, RECEIVED) == timestamp


def test_clock_skew_from_validated_offsets():
    result = valid(
        event(timestamp="2025-07-16T11:59:58+02:00", sent_at="2025-07-16T11:59:59+02:00")
    )
    assert correct_clock_skew(result.timestamp, result.sent_at, RECEIVED) == datetime(
        2025, 7, 16, 10, 59, 59, tzinfo=UTC
    )


# --- truncate_payload ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "short", "x" * 8192])
def test_truncate_leaves_short_text_alone(text):
    assert truncate_payload(text) is text


def test_truncate_long_text_to_exactly_the_limit():
    text = "x" * 10_000
    result = truncate_payload(text)
    assert len(result) == 8192
    marker = "…[truncated 1831 chars]"  # 23 characters: 8169 kept, 1831 cut
    assert result == "x" * 8169 + marker


@pytest.mark.parametrize("length", [8193, 8200, 8270, 8271, 9169, 9170, 100_000, 1_000_000])
def test_truncate_marker_counts_what_was_cut(length):
    # 8270/8271 and 9169/9170 are where the count of cut characters gains a digit (99→101, 999→1001)
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    result = truncate_payload(text)
    assert len(result) == 8192
    kept, _, rest = result.partition("…[truncated ")
    cut = int(rest.removesuffix(" chars]"))
    assert text.startswith(kept)
    assert len(kept) + cut == length


def test_truncate_with_a_custom_limit():
    assert (
        truncate_payload("abcdefghijklmnopqrstuvwxyz" * 2, limit=30)
        == "abcdefghi…[truncated 43 chars]"
    )
    assert truncate_payload("abcdef", limit=6) == "abcdef"
    assert truncate_payload("abcdefg", limit=3) == "abc"  # no room even for the marker


# --- U+0000 ---------------------------------------------------------------------------------------

NUL = "contains a NUL character (U+0000), which cannot be stored"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"user_fingerprint": "a\x00b"}, "user_fingerprint"),
        ({"session_id": "\x00"}, "session_id"),
        ({"event_id": "client\x00id"}, "event_id"),
        ({"page_url": "/p\x00"}, "page_url"),
        ({"referrer": "\x00"}, "referrer"),
        ({"browser": "Fire\x00fox"}, "browser"),
        ({"properties": {"a": ["x", {"b": "\x00"}]}}, "properties"),
        ({"properties": {"key\x00": 1}}, "properties"),
        ({"not_a_known_field\x00": 1}, "properties"),  # kept in properties, so refused there
    ],
)
def test_a_nul_character_is_refused_naming_its_field(fields, named):
    assert errors(event(**fields)) == [(named, NUL)]


def test_an_escaped_backslash_u0000_is_text_not_a_nul():
    assert valid(event(properties={"a": "\\u0000"})).properties == {"a": "\\u0000"}

"""The ingest endpoints over real HTTP: the service in-process on a real socket, httpx as the
client, real SQLite and PostgreSQL behind it, every answer checked against what the database then
holds.

``POST /api/analytics/events`` and ``POST /api/analytics/events/batch`` (docs/api.md, "Events"):
the original service's example, every validation rule, the HTTP-level refusals (malformed JSON, 415,
413, bad batch shapes), idempotency on ``event_id``, clock-skew correction, both ack modes, and
backpressure while PostgreSQL is away (through a TCP proxy that can be switched off).
"""

from __future__ import annotations

import gc
import json
import time
import urllib.parse
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from .helpers import query
from .tcp_proxy import TcpProxy
from .test_service import Running, make_service, wait_until

EVENTS = "/api/analytics/events"
BATCH = "/api/analytics/events/batch"
JSON = {"Content-Type": "application/json"}

#: The example from the original service's documentation, byte for byte what its web apps send.
ORIGINAL_EXAMPLE = {
    "user_fingerprint": "test-user-456",
    "session_id": "test-session-789",
    "event_type": "booking_started",
}


# --- helpers -----------------------------------------------------------------------------------


async def db(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """``query`` in a worker thread, so the in-process service keeps running meanwhile."""
    return await trio.to_thread.run_sync(query, url, sql, params)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


async def id_counts(url: str, ids: list[str]) -> tuple[int, int]:
    """(rows, distinct ids) in ``analytics_events`` among ``ids``."""
    if not ids:
        return 0, 0
    if is_postgres(url):
        sql = (
            "SELECT count(*), count(DISTINCT event_id) FROM analytics_events "
            "WHERE event_id = ANY(%s::uuid[])"
        )
        params: tuple = (ids,)
    else:
        marks = ",".join(["%s"] * len(ids))
        sql = (
            "SELECT count(*), count(DISTINCT event_id) FROM analytics_events "
            f"WHERE event_id IN ({marks})"
        )
        params = tuple(ids)
    ((rows, distinct),) = await db(url, sql, params)
    return rows, distinct


async def stored_event(url: str, event_id: str) -> dict | None:
    columns = (
        "event_id, user_fingerprint, session_id, event_type, event_timestamp, received_at, sent_at"
    )
    where = "event_id = %s::uuid" if is_postgres(url) else "event_id = %s"
    rows = await db(url, f"SELECT {columns} FROM analytics_events WHERE {where}", (event_id,))
    if not rows:
        return None
    assert len(rows) == 1
    row = dict(zip([c.strip() for c in columns.split(",")], rows[0], strict=True))
    row["event_id"] = str(row["event_id"])
    for key in ("event_timestamp", "received_at", "sent_at"):
        row[key] = as_datetime(row[key])
    return row


def as_datetime(value) -> datetime | None:
    """A stored timestamp as an aware datetime (PostgreSQL gives one, SQLite gives text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


async def dead_letters(url: str) -> list[dict]:
    """``rejected_events`` in insertion order, reasons decoded (jsonb on PostgreSQL, text on
    SQLite)."""
    rows = await db(url, "SELECT source, reasons, payload FROM rejected_events ORDER BY id")
    letters = []
    for source, reasons, payload in rows:
        if isinstance(reasons, str):
            reasons = json.loads(reasons)
        letters.append(
            {
                "source": source,
                "reasons": reasons,
                "payload": payload,
                "fields": [r["field"] for r in reasons],
            }
        )
    return letters


def parse_rfc3339_z(text: str) -> datetime:
    assert isinstance(text, str) and text.endswith("Z"), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


def event(**fields) -> dict:
    values = {"user_fingerprint": "visitor-1", "session_id": "session-1", "event_type": "page_view"}
    values.update(fields)
    return values


def assert_error(answer: httpx.Response, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["success"] is False and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


def assert_count(value, expected: int) -> None:
    """A count is a JSON integer (not a bool, not a float, not a string)."""
    assert type(value) is int and value == expected, value


# --- the original example ------------------------------------------------------------------------


async def test_the_original_services_example_works_unchanged(storage_url):
    async with Running(make_service(storage_url)) as client:
        before = datetime.now(UTC)
        answer = await client.post(EVENTS, json=ORIGINAL_EXAMPLE, headers=JSON)
        after = datetime.now(UTC)

        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        assert set(body) == {"success", "eventId", "timestamp", "duplicate"}, body
        assert body["success"] is True and body["duplicate"] is False
        event_id = body["eventId"]
        assert str(uuid.UUID(event_id)) == event_id  # canonical lower-case UUID
        stamp = parse_rfc3339_z(body["timestamp"])
        # no client timestamp: the event happened when it was received
        assert before - timedelta(milliseconds=1) <= stamp <= after + timedelta(milliseconds=1)

    row = await stored_event(storage_url, event_id)
    assert row is not None
    assert (row["user_fingerprint"], row["session_id"], row["event_type"]) == (
        "test-user-456",
        "test-session-789",
        "booking_started",
    )
    assert abs(row["event_timestamp"] - stamp) < timedelta(milliseconds=1)
    sessions = await db(
        storage_url, "SELECT session_id, user_fingerprint, event_count FROM analytics_sessions"
    )
    assert sessions == [("test-session-789", "test-user-456", 1)]


# --- validation ----------------------------------------------------------------------------------

_DEEP = {"a": {"b": {"c": {"d": {"e": {}}}}}}  # six levels: one too many
_DEEPEST_ALLOWED = {"a": {"b": {"c": {"d": {"e": 1}}}}}  # five levels

#: (what is wrong, the body, the fields the answer must name)
INVALID_EVENTS = [
    ("missing required fields", {}, {"user_fingerprint", "session_id", "event_type"}),
    (
        "many bad fields at once",
        {
            "user_fingerprint": "f" * 129,
            "session_id": "session-1",
            "event_type": "booking started!",
            "event_id": "",
            "timestamp": "2025-07-16T10:00:00",
            "page_url": "https://revivatech.example/"
            + "p" * (2049 - len("https://revivatech.example/")),
            "value": "x",
            "properties": _DEEP,
            "colour": "red",  # unknown: kept in properties, not refused
        },
        {
            "user_fingerprint",
            "event_type",
            "event_id",
            "timestamp",
            "page_url",
            "value",
            "properties",
        },
    ),
    (
        "boolean value, properties too large, session missing",
        {
            "user_fingerprint": "visitor-1",
            "event_type": "page_view",
            "value": True,
            "properties": {"blob": "x" * 33_000},
        },
        {"session_id", "value", "properties"},
    ),
    (
        "properties not an object, naive sent_at, bad referrer type",
        event(properties=[1, 2, 3], sent_at="2025-07-16 10:00:05", referrer=42),
        {"properties", "sent_at", "referrer"},
    ),
    (
        "blank ids and a numeric event_type",
        event(user_fingerprint="   ", session_id="", event_type=7),
        {"user_fingerprint", "session_id", "event_type"},
    ),
    ("not a JSON object", [1, 2], {""}),
    # PostgreSQL cannot store U+0000: refused by field on both engines, never by the database
    (
        "NUL characters",
        event(user_fingerprint="a\x00b", page_url="/p\x00", properties={"k\x00": "v"}),
        {"user_fingerprint", "page_url", "properties"},
    ),
]


async def test_every_validation_rule_names_each_bad_field_and_keeps_a_dead_letter(storage_url):
    async with Running(make_service(storage_url)) as client:
        for what, body, fields in INVALID_EVENTS:
            answer = await client.post(EVENTS, json=body)
            error = assert_error(answer, 400, "invalid_event")
            named = [detail["field"] for detail in error["details"]]
            assert sorted(named) == sorted(fields), (what, error)
            assert all(isinstance(d["message"], str) and d["message"] for d in error["details"]), (
                what
            )
            for field in fields - {""}:
                assert field in error["message"], (what, error["message"])

        # the limits themselves are allowed
        boundary = event(
            user_fingerprint="f" * 128,
            session_id="s" * 128,
            event_type="e" * 64,
            page_url="https://revivatech.example/"
            + "p" * (2048 - len("https://revivatech.example/")),
            value=0,
            properties=_DEEPEST_ALLOWED,
            timestamp="2025-07-16T10:00:00+02:00",
        )
        accepted = await client.post(EVENTS, json=boundary)
        assert accepted.status_code == 200, accepted.text

    letters = await dead_letters(storage_url)
    assert len(letters) == len(INVALID_EVENTS)
    for letter, (what, body, fields) in zip(letters, INVALID_EVENTS, strict=True):
        assert letter["source"] == "validation", what
        assert sorted(letter["fields"]) == sorted(fields), (what, letter["reasons"])
        assert all(reason["message"] for reason in letter["reasons"]), what
        if isinstance(body, dict) and "user_fingerprint" in body and len(json.dumps(body)) < 8000:
            assert json.loads(letter["payload"]) == body, what  # the offending input, kept whole
    (rows,) = await db(storage_url, "SELECT count(*) FROM analytics_events")
    assert rows == (1,)


async def test_malformed_json_is_400_and_kept_as_a_dead_letter(storage_url):
    broken = b'{"user_fingerprint": "visitor-1", "event_type": '
    not_utf8 = b'{"user_fingerprint": "\xff\xfe"}'
    async with Running(make_service(storage_url)) as client:
        for path, body in (
            (EVENTS, broken),
            (BATCH, b'{"events": [}'),
            (EVENTS, not_utf8),
            (EVENTS, b""),
        ):
            answer = await client.post(path, content=body, headers=JSON)
            error = assert_error(answer, 400, "malformed_json")
            assert error["details"][0]["field"] == ""
    letters = await dead_letters(storage_url)
    assert [letter["source"] for letter in letters] == ["validation"] * 4
    assert letters[0]["payload"] == broken.decode()
    assert letters[1]["payload"] == '{"events": [}'
    assert letters[2]["payload"].startswith('{"user_fingerprint": "')  # undecodable bytes replaced
    assert all(letter["fields"] == [""] for letter in letters)
    assert "malformed JSON" in letters[0]["reasons"][0]["message"]


@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_a_body_that_is_not_json_is_415(storage_url, path):
    body = {"events": [event()]} if path == BATCH else event()
    text = json.dumps(body).encode()
    async with Running(make_service(storage_url)) as client:
        form = await client.post(
            path, data={"user_fingerprint": "v", "session_id": "s", "event_type": "page_view"}
        )
        assert form.request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert_error(form, 415, "unsupported_media_type")
        # what navigator.sendBeacon sends a string as
        plain = await client.post(
            path, content=text, headers={"Content-Type": "text/plain;charset=UTF-8"}
        )
        assert plain.status_code == 200, plain.text
        none = await client.post(path, content=text)
        assert "content-type" not in none.request.headers
        assert_error(none, 415, "unsupported_media_type")

        # JSON with parameters, or a +json type, is JSON
        with_charset = await client.post(
            path, content=text, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert with_charset.status_code == 200, with_charset.text
        suffixed = await client.post(
            path, content=text, headers={"Content-Type": "application/vnd.api+json"}
        )
        assert suffixed.status_code == 200, suffixed.text
    letters = await dead_letters(storage_url)
    assert letters == []  # a refused media type is not an event to keep


async def test_a_body_over_max_body_is_413(storage_url):
    async with Running(make_service(storage_url, **{"ingest.max_body": 2048})) as client:
        small = event(properties={"note": "n" * 1800})
        assert len(json.dumps(small)) < 2048
        assert (await client.post(EVENTS, json=small)).status_code == 200

        large = event(properties={"note": "n" * 2100})
        assert_error(await client.post(EVENTS, json=large), 413, "payload_too_large")
        assert_error(await client.post(BATCH, json={"events": [large]}), 413, "payload_too_large")

        async def chunked():  # no Content-Length: the limit holds for a streamed body too
            for _ in range(4):
                yield b" " * 1000
            yield json.dumps(event()).encode()

        streamed = await client.post(EVENTS, content=chunked(), headers=JSON)
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "payload_too_large")

        # the service still serves after refusing
        assert (await client.post(EVENTS, json=event())).status_code == 200
    (rows,) = await db(storage_url, "SELECT count(*) FROM analytics_events")
    assert rows == (2,)


async def test_a_batch_over_max_batch_is_413_too_many_events(storage_url):
    async with Running(make_service(storage_url, **{"ingest.max_batch": 5})) as client:
        six = {"events": [event(session_id=f"s{i}") for i in range(6)]}
        error = assert_error(await client.post(BATCH, json=six), 413, "too_many_events")
        assert "5" in error["message"] and "6" in error["message"]

        five = await client.post(
            BATCH, json={"events": [event(session_id=f"s{i}") for i in range(5)]}
        )
        assert five.status_code == 200, five.text
        assert_count(five.json()["accepted"], 5)
    (rows,) = await db(storage_url, "SELECT count(*) FROM analytics_events")
    assert rows == (5,)


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": {}},
        {"events": None},
        {"event": [event()]},
        [event()],
        "events",
        42,
        None,
    ],
    ids=["empty-list", "object", "null", "wrong-key", "bare-list", "string", "number", "json-null"],
)
async def test_a_batch_of_the_wrong_shape_is_400_invalid_batch(sqlite_url, body):
    async with Running(make_service(sqlite_url)) as client:
        answer = await client.post(BATCH, content=json.dumps(body).encode(), headers=JSON)
        error = assert_error(answer, 400, "invalid_batch")
        assert error["details"][0]["field"] == "events"


# --- idempotency ---------------------------------------------------------------------------------


async def test_the_same_event_id_twice_is_stored_once_and_answered_duplicate(storage_url):
    event_id = str(uuid.uuid4())
    async with Running(make_service(storage_url)) as client:
        first = await client.post(EVENTS, json=event(event_id=event_id))
        assert first.status_code == 200 and first.json()["duplicate"] is False
        assert first.json()["eventId"] == event_id
        second = await client.post(
            EVENTS, json=event(event_id=event_id, event_type="booking_started")
        )
        assert second.status_code == 200, second.text
        assert second.json()["duplicate"] is True and second.json()["eventId"] == event_id
        # the same UUID in upper case is the same id
        third = await client.post(EVENTS, json=event(event_id=event_id.upper()))
        assert (
            third.json()["duplicate"] is True and third.json()["eventId"] == event_id.upper()
        )  # as sent

    assert await id_counts(storage_url, [event_id]) == (1, 1)
    row = await stored_event(storage_url, event_id)
    assert row["event_type"] == "page_view"  # the first one stays
    sessions = await db(storage_url, "SELECT event_count FROM analytics_sessions")
    assert sessions == [(1,)]  # a duplicate does not count in the session either


async def test_a_batch_reports_stored_rejected_and_duplicate_per_index(storage_url):
    event_id = str(uuid.uuid4())
    batch = {
        "events": [
            event(event_id=event_id),
            event(event_type="not allowed!"),
            event(event_id=event_id, event_type="booking_started"),
        ]
    }
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(BATCH, json=batch)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True
        assert_count(body["accepted"], 1)
        assert_count(body["duplicates"], 1)
        assert_count(body["rejected"], 1)
        results = body["results"]
        assert [r["index"] for r in results] == [0, 1, 2]
        assert [r["status"] for r in results] == ["stored", "rejected", "duplicate"]
        assert results[0]["eventId"] == results[2]["eventId"] == event_id
        assert [e["field"] for e in results[1]["errors"]] == ["event_type"]
        assert "eventId" not in results[1]

        again = (await client.post(BATCH, json=batch)).json()
        assert [r["status"] for r in again["results"]] == ["duplicate", "rejected", "duplicate"]
        assert_count(again["accepted"], 0)
        assert_count(again["duplicates"], 2)
        assert_count(again["rejected"], 1)

    assert await id_counts(storage_url, [event_id]) == (1, 1)
    letters = await dead_letters(storage_url)
    assert [letter["fields"] for letter in letters] == [["event_type"]]  # the resent one kept once
    assert json.loads(letters[0]["payload"]) == batch["events"][1]
    assert await db(storage_url, "SELECT times_received FROM rejected_events") == [(2,)]


# --- clock skew ----------------------------------------------------------------------------------


async def test_the_client_clock_is_corrected_with_sent_at(storage_url):
    body = event(timestamp="2025-07-16T10:00:00Z", sent_at="2025-07-16T10:00:05Z")
    async with Running(make_service(storage_url)) as client:
        answer = await client.post(EVENTS, json=body)
        now = datetime.now(UTC)
    assert answer.status_code == 200, answer.text
    answered = parse_rfc3339_z(answer.json()["timestamp"])
    row = await stored_event(storage_url, answer.json()["eventId"])

    # timestamp + (received_at - sent_at): the event happened 5 s before the request was received
    assert abs(row["event_timestamp"] - (now - timedelta(seconds=5))) < timedelta(seconds=2)
    assert row["received_at"] - row["event_timestamp"] == timedelta(seconds=5)
    assert row["sent_at"] == datetime(2025, 7, 16, 10, 0, 5, tzinfo=UTC)
    assert abs(answered - row["event_timestamp"]) < timedelta(milliseconds=1)

    # without sent_at the client's timestamp is taken as it is
    async with Running(make_service(storage_url)) as client:
        plain = await client.post(EVENTS, json=event(timestamp="2025-07-16T12:00:00+02:00"))
    row = await stored_event(storage_url, plain.json()["eventId"])
    assert row["event_timestamp"] == datetime(2025, 7, 16, 10, 0, tzinfo=UTC)
    assert plain.json()["timestamp"] == "2025-07-16T10:00:00.000Z"


# --- ack = "accepted" ----------------------------------------------------------------------------


async def test_accepted_acks_answer_202_and_store_shortly_after(storage_url):
    repeated = str(uuid.uuid4())
    async with Running(make_service(storage_url, **{"ingest.ack": "accepted"})) as client:
        single = await client.post(EVENTS, json=event(event_id=repeated))
        assert single.status_code == 202, single.text
        body = single.json()
        assert (
            body["success"] is True and body["eventId"] == repeated and body["duplicate"] is False
        )
        parse_rfc3339_z(body["timestamp"])

        batch = await client.post(
            BATCH,
            json={"events": [event(), event(event_type="bad type"), event(event_id=repeated)]},
        )
        assert batch.status_code == 202, batch.text
        answer = batch.json()
        assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "duplicate"]
        assert_count(answer["accepted"], 1)
        assert_count(answer["duplicates"], 1)
        assert_count(answer["rejected"], 1)
        ids = [repeated, answer["results"][0]["eventId"]]

        async def stored():
            return await id_counts(storage_url, ids) == (2, 2)

        await wait_until(stored, timeout=5)

    async def lettered():
        return len(await dead_letters(storage_url)) == 1

    await wait_until(lettered, timeout=5)


# --- what the database itself refuses -----------------------------------------------------------


async def test_an_event_no_engine_can_store_is_refused_by_field_and_does_not_sink_its_batch(
    storage_url,
):
    """PostgreSQL text cannot hold U+0000 (SQLite can): validation refuses it on both engines,
    naming the field, so the answer never depends on the engine. The database's own refusals
    (split out of their batch, kept as dead letters) are covered in test_storage_write."""
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    nul = event(event_id=bad, page_url="https://revivatech.example/a\u0000b")
    async with Running(make_service(storage_url)) as client:
        single = await client.post(EVENTS, json=nul)
        batch = await client.post(BATCH, json={"events": [event(event_id=good), nul]})
    error = assert_error(single, 400, "invalid_event")
    assert [d["field"] for d in error["details"]] == ["page_url"]
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["stored", "rejected"]
    assert (batch.json()["accepted"], batch.json()["rejected"]) == (1, 1)
    assert await id_counts(storage_url, [good]) == (1, 1)
    assert await id_counts(storage_url, [bad]) == (0, 0)
    letters = await dead_letters(storage_url)
    assert [letter["source"] for letter in letters] == ["validation"]  # one payload, kept once


# --- backpressure while the database is away -----------------------------------------------------


def through_proxy(url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@asynccontextmanager
async def proxied_postgres(postgres_url: str):
    """A :class:`TcpProxy` in front of the test's PostgreSQL: yields (proxy, URL through it)."""
    parts = urllib.parse.urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.run)
        yield proxy, through_proxy(postgres_url, port)
        nursery.cancel_scope.cancel()


def forwarded_ids(channel: trio.MemoryReceiveChannel) -> list[str]:
    """The ids of the events the batcher has passed on as stored (to profiles and metrics)."""
    ids = []
    while True:
        try:
            ids.extend(e.event_id for e in channel.receive_nowait().events)
        except (trio.WouldBlock, trio.EndOfChannel):
            return ids


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await client.get(path)
    return answer, time.perf_counter() - started


@pytest.fixture
def frozen_gc():
    """Call to do what `serve` does at start (cli.py): collect, then freeze what exists so the
    collector never scans it again; undone after the test. Without it a full collection of this
    pytest process's whole heap (40-75 ms measured here) lands inside a latency measurement now
    and then: a pause of the test process, not of the service under test."""

    def freeze() -> None:
        gc.collect()
        gc.freeze()

    yield freeze
    gc.unfreeze()


async def test_backpressure_503_while_the_database_is_away_then_everything_acknowledged_is_stored_once(  # noqa: E501
    postgres_url, frozen_gc
):
    inbox, flood = 50, 80
    timings: dict[str, float] = {}
    async with proxied_postgres(postgres_url) as (proxy, proxied_url):
        service = make_service(
            proxied_url,
            **{"ingest.inbox": inbox, "ingest.enqueue_timeout": 0.2, "storage.ping_timeout": 0.3},
        )
        async with Running(service) as client:
            warm = await client.post(EVENTS, json=event(session_id="warm-up"))
            assert warm.status_code == 200, warm.text
            assert proxy.open_connections >= 2  # the writer and the health connection go through it

            frozen_gc()
            proxy.switch_off()
            off_at = time.perf_counter()
            answers: dict[int, httpx.Response] = {}
            sent: dict[int, dict] = {}
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            flood_client = httpx.AsyncClient(
                base_url=str(client.base_url), timeout=30, limits=limits
            )

            async def post_one(n: int) -> None:
                # half with a client event_id, half with one the service assigns
                body = event(session_id=f"flood-{n}", event_id=str(uuid.uuid4()) if n % 2 else None)
                if body["event_id"] is None:
                    del body["event_id"]
                sent[n] = body
                answers[n] = await flood_client.post(EVENTS, json=body)

            def refused() -> list[httpx.Response]:
                return [a for a in answers.values() if a.status_code == 503]

            async with flood_client, trio.open_nursery() as requests:
                for n in range(flood):
                    requests.start_soon(post_one, n)

                async def overloaded():
                    return len(refused()) >= flood - inbox

                await wait_until(overloaded, timeout=5, interval=0.01)
                timings["all_503_after_switch_off"] = time.perf_counter() - off_at
                await trio.sleep(0.3)  # nothing else gets answered while the database is away
                assert len(answers) == flood - inbox, {n: a.status_code for n, a in answers.items()}
                for answer in refused():
                    assert_error(answer, 503, "overloaded")
                    assert int(answer.headers["Retry-After"]) >= 1

                # the probes answer at once, and say why
                health_times, ready_times = [], []
                for _ in range(5):
                    ready, took = await timed_get(client, "/readyz")
                    ready_times.append(took)
                    assert ready.status_code == 503 and ready.json()["ready"] is False
                    health, took = await timed_get(client, "/api/analytics/health")
                    health_times.append(took)
                    assert health.status_code == 503
                    assert health.json()["database"] == "disconnected"
                timings["health_max"] = max(health_times)
                timings["readyz_max"] = max(ready_times)
                assert max(health_times) < 0.1, health_times
                assert max(ready_times) < 0.1, ready_times
                # a new request is still refused, within the enqueue timeout
                late, took = await timed_post(client, event(session_id="late"))
                assert_error(late, 503, "overloaded")
                timings["late_503"] = took
                assert took < 0.2 + 0.1

                await proxy.switch_on()
                on_at = time.perf_counter()
            timings["waiting_answered_after_switch_on"] = time.perf_counter() - on_at
            timings["database_away"] = on_at - off_at

            assert len(answers) == flood
            statuses = sorted(a.status_code for a in answers.values())
            assert statuses == [200] * inbox + [503] * (flood - inbox)
            acknowledged = []
            for n, answer in answers.items():
                if answer.status_code == 200:
                    body = answer.json()
                    assert body["duplicate"] is False
                    if "event_id" in sent[n]:
                        assert body["eventId"] == sent[n]["event_id"]
                    acknowledged.append(body["eventId"])
            assert await id_counts(postgres_url, acknowledged) == (inbox, inbox)
            refused_ids = [
                sent[n]["event_id"]
                for n, a in answers.items()
                if a.status_code == 503 and "event_id" in sent[n]
            ]
            assert await id_counts(postgres_url, refused_ids) == (0, 0)  # refused means not taken

            # and it takes new work again
            again = await client.post(EVENTS, json=event(session_id="after"))
            assert again.status_code == 200, again.text
            assert await id_counts(postgres_url, [again.json()["eventId"]]) == (1, 1)
            assert (await client.get("/readyz")).status_code == 200
    print("backpressure timings (s):", {key: round(value, 3) for key, value in timings.items()})


async def timed_post(client: httpx.AsyncClient, body: dict) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await client.post(EVENTS, json=body)
    return answer, time.perf_counter() - started


# --- dead letters and events in one request, on SQLite -------------------------------------------


async def test_a_batch_with_a_dead_letter_and_valid_events_resolves_on_sqlite(sqlite_url):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch = {
        "events": [
            event(event_id=ids[0]),
            {"event_type": 5},
            event(event_id=ids[1]),
            event(event_id=ids[2]),
        ]
    }
    async with Running(make_service(sqlite_url)) as client:
        with trio.fail_after(3):
            answer = await client.post(BATCH, json=batch)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [r["status"] for r in body["results"]] == ["stored", "rejected", "stored", "stored"]
        assert_count(body["accepted"], 3)
        assert_count(body["rejected"], 1)

        # only dead letters (every event invalid), then dead letters with duplicates only
        with trio.fail_after(3):
            only_letters = await client.post(BATCH, json={"events": [{}, {"event_type": "x y"}]})
        assert only_letters.status_code == 400 and only_letters.json()["rejected"] == 2
        assert only_letters.json()["success"] is False
        with trio.fail_after(3):
            mixed = await client.post(BATCH, json={"events": [event(event_id=ids[0]), []]})
        assert [r["status"] for r in mixed.json()["results"]] == ["duplicate", "rejected"]

        # many concurrent requests of both kinds, so some share a storage transaction
        results: list[httpx.Response] = []

        async def post(n: int) -> None:
            events = (
                [event(session_id=f"c{n}"), {"session_id": f"c{n}"}]
                if n % 2
                else [{"event_type": "?"}]
            )
            results.append(await client.post(BATCH, json={"events": events}))

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for n in range(40):
                    nursery.start_soon(post, n)
        assert (
            sorted(r.status_code for r in results) == [200] * 20 + [400] * 20
        )  # 400: nothing kept

    assert await id_counts(sqlite_url, ids) == (3, 3)
    letters = await dead_letters(sqlite_url)
    assert len(letters) == 1 + 2 + 1 + 20 + 1  # the 20 identical ones kept once
    (repeats,) = await db(sqlite_url, "SELECT max(times_received) FROM rejected_events")
    assert repeats == (20,)
    (rows,) = await db(sqlite_url, "SELECT count(*) FROM analytics_events")
    assert rows == (3 + 20,)


# --- outcomes across a failed flush (PostgreSQL through the proxy) -------------------------------


async def flush_failed(service) -> bool:
    return service.batcher.stats.failed_flushes >= 1


async def test_a_client_retry_held_through_an_outage_is_still_answered_duplicate(postgres_url):
    """A client resends an event already stored while the database is away. After the outage the
    answer must be ``duplicate: true`` and the event must not be passed on as stored again
    (a retried request is reported as duplicate, never stored twice)."""
    event_id = str(uuid.uuid4())
    answers: dict[str, httpx.Response] = {}
    async with proxied_postgres(postgres_url) as (proxy, url):
        service = make_service(url, **{"storage.ping_timeout": 0.3})
        stored_feed = service.batcher.subscribe()
        async with Running(service) as client:
            first = await client.post(EVENTS, json=event(event_id=event_id))
            assert first.status_code == 200 and first.json()["duplicate"] is False

            proxy.switch_off()

            async def resend():
                answers["retry"] = await client.post(EVENTS, json=event(event_id=event_id))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(resend)
                await wait_until(lambda: flush_failed(service))
                await proxy.switch_on()
    retry = answers["retry"]
    assert retry.status_code == 200, retry.text
    assert await id_counts(postgres_url, [event_id]) == (1, 1)  # stored once, as it must be
    passed_on = forwarded_ids(stored_feed)
    assert (retry.json()["duplicate"], passed_on) == (True, [event_id]), (
        f"the retry was answered duplicate={retry.json()['duplicate']} and the batcher passed"
        f" {event_id} on as stored {passed_on.count(event_id)} times"
    )


async def test_an_id_repeated_within_a_batch_held_through_an_outage_is_answered_duplicate(
    postgres_url,
):
    repeated, other = str(uuid.uuid4()), str(uuid.uuid4())
    batch = {"events": [event(event_id=repeated), event(event_id=other), event(event_id=repeated)]}
    answers: dict[str, httpx.Response] = {}
    async with proxied_postgres(postgres_url) as (proxy, url):
        service = make_service(url, **{"storage.ping_timeout": 0.3})
        stored_feed = service.batcher.subscribe()
        async with Running(service) as client:
            warm = await client.post(EVENTS, json=event())  # connections open
            assert warm.status_code == 200
            proxy.switch_off()

            async def send():
                answers["batch"] = await client.post(BATCH, json=batch)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await wait_until(lambda: flush_failed(service))
                await proxy.switch_on()
    answer = answers["batch"]
    assert answer.status_code == 200, answer.text
    assert await id_counts(postgres_url, [repeated, other]) == (2, 2)
    body = answer.json()
    statuses = [r["status"] for r in body["results"]]
    counts = (body["accepted"], body["duplicates"], body["rejected"])
    passed_on = [i for i in forwarded_ids(stored_feed) if i != warm.json()["eventId"]]
    assert (statuses, counts, sorted(passed_on)) == (
        ["stored", "stored", "duplicate"],
        (2, 1, 0),
        sorted([repeated, other]),
    ), (
        f"answered {statuses}, counts {counts}, and passed {repeated} on as stored "
        f"{passed_on.count(repeated)} times"
    )


async def test_a_commit_whose_reply_is_lost_reports_stored_and_keeps_each_dead_letter_once(
    postgres_url,
):
    """The database commits, the reply never arrives (connection lost), the batcher retries: the
    events are ours and answered ``stored`` (not ``duplicate``), and the batch's dead letter is
    kept once, not once per attempt."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    batch = {"events": [event(event_id=a), {"event_type": 5}, event(event_id=b)]}
    async with proxied_postgres(postgres_url) as (proxy, url):
        service = make_service(url, **{"storage.ping_timeout": 0.3})
        async with Running(service) as client:
            assert (await client.post(EVENTS, json=event())).status_code == 200  # connections open
            proxy.lose_next_commit_reply()
            with trio.fail_after(5):
                answer = await client.post(BATCH, json=batch)
            failed_flushes = service.batcher.stats.failed_flushes
    assert proxy.commit_replies_lost == 1 and failed_flushes >= 1  # the fault did happen
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["status"] for r in body["results"]] == ["stored", "rejected", "stored"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 1)
    assert await id_counts(postgres_url, [a, b]) == (2, 2)
    letters = await dead_letters(postgres_url)
    assert len(letters) == 1, (
        f"one rejected event, {len(letters)} identical dead letters: {letters}"
    )


async def test_text_the_database_cannot_hold_in_a_rejected_event_does_not_stop_storage(storage_url):
    """A NUL character in a refused field's name ends up in the dead letter's reasons, which
    PostgreSQL's jsonb cannot hold: the letter is kept with printable escapes instead, and the
    service goes on storing events."""
    async with Running(make_service(storage_url)) as client:
        body = event(
            **{"bad\u0000name": 1}, properties={"bad\u0000name": 2}
        )  # it cannot be kept there
        answer = await client.post(EVENTS, json=body)
        assert_error(answer, 400, "invalid_event")
        after = await client.post(EVENTS, json=event(event_type="after"))
        assert after.status_code == 200, after.text
        assert (await client.get("/readyz")).status_code == 200
    letters = await dead_letters(storage_url)
    assert len(letters) == 1 and letters[0]["source"] == "validation"
    assert "bad" in letters[0]["fields"][0] and "name" in letters[0]["fields"][0]
    (rows,) = await db(storage_url, "SELECT count(*) FROM analytics_events")
    assert rows == (1,)


async def test_a_batch_with_unknown_top_level_fields_is_400(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        answer = await client.post(
            BATCH, json={"events": [event()], "sent_at": "2025-07-16T10:00:00Z"}
        )
    error = assert_error(answer, 400, "invalid_batch")
    assert error["details"] == [
        {
            "field": "sent_at",
            "message": 'is not a known field; a batch holds only "events" (and "write_key")',
        }
    ]


async def test_a_durable_request_gets_503_with_its_ids_after_ack_timeout_and_can_resend_them(
    postgres_url,
):
    """While the database is away an admitted event is held, but its request is not held past
    `ingest.ack_timeout`: it gets 503 naming the event id, and resending that id after the
    database is back stores the event once (it is answered duplicate if the held copy won)."""
    async with proxied_postgres(postgres_url) as (proxy, proxied_url):
        service = make_service(
            proxied_url, **{"ingest.ack_timeout": 0.5, "storage.ping_timeout": 0.3}
        )
        async with Running(service) as client:
            assert (await client.post(EVENTS, json=event(session_id="warm-up"))).status_code == 200
            proxy.switch_off()
            started = time.perf_counter()
            answer = await client.post(EVENTS, json=event(session_id="held"))
            waited = time.perf_counter() - started
            error = assert_error(answer, 503, "not_yet_stored")
            assert 0.5 <= waited < 2.0
            assert int(answer.headers["Retry-After"]) >= 1
            (detail,) = error["details"]
            held_id = detail["message"]
            assert detail["field"] == "event_id" and str(uuid.UUID(held_id)) == held_id
            await proxy.switch_on()

            async def stored():
                return (await id_counts(postgres_url, [held_id]))[0] == 1

            await wait_until(stored, timeout=10)
            resent = await client.post(EVENTS, json=event(session_id="held", event_id=held_id))
            assert resent.status_code == 200 and resent.json()["duplicate"] is True
    assert await id_counts(postgres_url, [held_id]) == (1, 1)

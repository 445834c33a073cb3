"""Slow clients, the cap on open connections and header sizes, over real sockets.

The service runs in-process on a real port; raw TCP clients (trio streams) send requests byte by
byte as slow clients do, and httpx plays the well-behaved keep-alive client. Every limit is
checked on both sides: within it the request is answered, past it the answer is a 4xx with a
JSON body naming the setting, or the connection is closed at once (``web.max_connections``).
"""

from __future__ import annotations

import json
import logging

import trio

from revivatech_actors.bench import read_response
from revivatech_actors.web.connection_limits import (
    REFUSAL_LOG_INTERVAL,
    ConnectionGuard,
    ConnectionLimits,
)

from .helpers import read_until_closed
from .test_service import Running, make_service

EVENTS = "/api/analytics/events"
EVENT = {"user_fingerprint": "visitor-1", "session_id": "session-1", "event_type": "page_view"}


async def connect(service) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", service.settings.web.port)


def parse(raw: bytes) -> tuple[int, dict]:
    """(status, JSON body) of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


async def trickle(stream: trio.SocketStream, data: bytes, interval: float) -> bool:
    """Send ``data`` one byte every ``interval`` seconds; False once the server closed."""
    for byte in data:
        try:
            await stream.send_all(bytes([byte]))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        await trio.sleep(interval)
    return True


async def answer(stream: trio.SocketStream, timeout: float) -> tuple[int, dict]:
    """(status, JSON body) of the next response on a kept-alive connection, read as far as its
    end (not waiting for a close that does not come)."""
    with trio.fail_after(timeout):
        response = await read_response(stream.receive_some, bytearray())
    return response.status, json.loads(response.body)


def request(body: bytes = b"", path: str = EVENTS, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


# --- web.header_timeout ---------------------------------------------------------------------------


async def test_slow_headers_get_408_naming_web_header_timeout_and_are_closed(sqlite_url):
    service = make_service(sqlite_url, **{"web.header_timeout": 1.0})
    async with Running(service):
        results: list[tuple[bytes, bool, float]] = []

        async def slow_client() -> None:
            stream = await connect(service)
            opened = trio.current_time()  # the server's clock starts a little later
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    trickle, stream, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: yes", 0.1
                )
                received, closed = await read_until_closed(stream, 5)
                results.append((received, closed, trio.current_time() - opened))
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(slow_client)
        assert len(results) == 40
        for received, closed, after in results:
            assert closed and 0.9 <= after < 2.5, (received, closed, after)
            status, body = parse(received)
            assert status == 408 and body["error"] == "request_timeout"
            assert "web.header_timeout = 1 s" in body["message"]

        # a connection that sends nothing is held to the same deadline
        silent = await connect(service)
        start = trio.current_time()
        received, closed = await read_until_closed(silent, 5)
        assert closed and 0.9 <= trio.current_time() - start < 2.5
        assert parse(received)[0] == 408


async def test_headers_completing_within_web_header_timeout_are_answered(sqlite_url):
    # 5.6 s of headers: longer than Hypercorn's keep-alive timer (5 s), which no longer cuts them
    service = make_service(sqlite_url, **{"web.header_timeout": 8.0})
    async with Running(service):
        stream = await connect(service)
        sent = await trickle(stream, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", 0.2)
        assert sent
        await stream.send_all(b"\r\n")
        assert await answer(stream, 2) == (200, {"status": "alive"})

        # a later request on the kept-alive connection is timed from its own first byte: it
        # ends more than web.header_timeout after the connection's first
        await trio.sleep(1)
        await trickle(stream, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", 0.1)
        await stream.send_all(b"\r\n")
        assert await answer(stream, 1) == (200, {"status": "alive"})


# --- web.body_timeout -----------------------------------------------------------------------------


async def test_a_trickling_body_is_cut_with_408_naming_web_body_timeout(sqlite_url):
    service = make_service(sqlite_url, **{"web.body_timeout": 1.0})
    async with Running(service):
        stream = await connect(service)
        body = json.dumps(EVENT).encode()
        await stream.send_all(request(body)[: -len(body)])  # the headers, whole
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle, stream, body, 0.1)  # would take ~6 s
            received, closed = await read_until_closed(stream, 5)
            nursery.cancel_scope.cancel()
        assert closed and 0.9 <= trio.current_time() - start < 2.5
        status, answer = parse(received)
        assert status == 408 and answer["error"] == "request_timeout"
        assert "web.body_timeout = 1 s" in answer["message"]


async def test_a_body_arriving_within_web_body_timeout_is_stored(sqlite_url):
    service = make_service(sqlite_url, **{"web.body_timeout": 3.0})
    async with Running(service):
        stream = await connect(service)
        body = json.dumps(EVENT).encode()
        await stream.send_all(request(body)[: -len(body)])
        await trickle(stream, body, 1.5 / len(body))  # 1.5 s
        received, _ = await read_until_closed(stream, 2)
        status, answer = parse(received)
        assert status == 200 and answer["success"] is True, answer


# --- web.max_connections --------------------------------------------------------------------------


async def test_past_web_max_connections_new_connections_close_at_once_and_old_ones_are_served(
    sqlite_url,
):
    service = make_service(sqlite_url, **{"web.max_connections": 5, "web.header_timeout": 30.0})
    async with Running(service) as client:  # httpx: one kept-alive connection
        assert (await client.get("/healthz")).status_code == 200
        held = [await connect(service) for _ in range(4)]  # 5 open now
        await trio.sleep(0.2)

        refused = await connect(service)  # the kernel accepts it; the server closes it at once
        start = trio.current_time()
        received, closed = await read_until_closed(refused, 2)
        assert closed and received == b"" and trio.current_time() - start < 0.5

        # the established keep-alive client is still served, on its connection
        for _ in range(3):
            assert (await client.get("/healthz")).json() == {"status": "alive"}

        # one held connection goes: a new one is served again
        await held.pop().aclose()
        await trio.sleep(0.2)
        fresh = await connect(service)
        await fresh.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        received, _ = await read_until_closed(fresh, 1)
        assert parse(received) == (200, {"status": "alive"}), received
        await fresh.aclose()
        for stream in held:
            await stream.aclose()


# --- web.max_header_size, malformed requests, ingest.max_body -------------------------------


async def test_headers_over_web_max_header_size_are_431_naming_it(sqlite_url):
    service = make_service(sqlite_url, **{"web.max_header_size": 2048})
    async with Running(service) as client:
        fits = await client.get("/healthz", headers={"X-Padding": "p" * 1500})
        assert fits.status_code == 200

        # arriving whole, in one read
        answer = await client.get("/healthz", headers={"X-Padding": "p" * 3000})
        assert answer.status_code == 431
        body = answer.json()
        assert (
            body["error"] == "headers_too_large" and "web.max_header_size = 2048" in body["message"]
        )

        # arriving in pieces: the HTTP parser's own limit answers the same way
        stream = await connect(service)
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: ")
        received = b""
        for _ in range(6):
            try:
                await stream.send_all(b"p" * 600)
            except trio.BrokenResourceError:
                break
            answer, closed = await read_until_closed(stream, 0.1)
            received += answer
            if closed:
                break
        more, closed = await read_until_closed(stream, 2)
        received += more
        status, body = parse(received)
        assert closed and status == 431 and "web.max_header_size = 2048" in body["message"]


async def test_a_request_that_is_not_http_is_a_json_400(sqlite_url):
    service = make_service(sqlite_url)
    async with Running(service):
        stream = await connect(service)
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        received, closed = await read_until_closed(stream, 2)
        status, body = parse(received)
        assert closed and status == 400 and body["error"] == "malformed_request"


async def test_a_body_over_ingest_max_body_is_413_naming_it(sqlite_url):
    async with Running(make_service(sqlite_url, **{"ingest.max_body": 2048})) as client:
        fits = await client.post(EVENTS, json={**EVENT, "properties": {"note": "n" * 1800}})
        assert fits.status_code == 200
        answer = await client.post(EVENTS, json={**EVENT, "properties": {"note": "n" * 2100}})
        assert answer.status_code == 413
        assert "ingest.max_body = 2048 bytes" in answer.json()["message"]


async def test_a_batch_over_ingest_max_batch_is_413_naming_it(sqlite_url):
    async with Running(make_service(sqlite_url, **{"ingest.max_batch": 3})) as client:
        fits = await client.post("/api/analytics/events/batch", json={"events": [EVENT] * 3})
        assert fits.status_code == 200, fits.text
        answer = await client.post("/api/analytics/events/batch", json={"events": [EVENT] * 4})
        assert answer.status_code == 413 and answer.json()["error"] == "too_many_events"
        assert "ingest.max_batch = 3 events, got 4" in answer.json()["message"]


async def test_json_nested_past_the_parsers_depth_is_a_400(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        deep = (
            '{"user_fingerprint": "v", "session_id": "s", "event_type": "t", "properties": '
            + '{"a": ' * 2000
            + "1"
            + "}" * 2001
        )
        answer = await client.post(
            EVENTS, content=deep, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400 and answer.json()["error"] == "malformed_json"
        assert "nested deeper than 1024 levels" in answer.json()["message"]
        nested = {
            "a": {"b": {"c": {"d": {"e": {"f": 1}}}}}
        }  # 6 levels with properties itself: refused
        answer = await client.post(EVENTS, json={**EVENT, "properties": nested})
        assert answer.status_code == 400
        assert answer.json()["details"] == [
            {"field": "properties", "message": "is nested deeper than 5 levels"}
        ]
        fits = await client.post(
            EVENTS, json={**EVENT, "properties": {"a": {"b": {"c": {"d": {"e": 1}}}}}}
        )
        assert fits.status_code == 200, fits.text


async def test_connections_still_sending_headers_do_not_hold_up_a_stop(sqlite_url):
    service = make_service(sqlite_url, **{"web.header_timeout": 30.0})
    running = Running(service)
    await running.__aenter__()
    silent = await connect(service)
    partial = await connect(service)
    await partial.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    await trio.sleep(0.2)
    start = trio.current_time()
    await running.__aexit__(None, None, None)
    assert trio.current_time() - start < 2.0  # not the 3 s grace, let alone header_timeout
    for stream in (silent, partial):
        _, closed = await read_until_closed(stream, 0.5)
        assert closed


# --- the open-file limit ------------------------------------------------------------------


def test_the_open_file_target_fits_max_connections_within_the_hard_limit():
    import resource

    from revivatech_actors.web.connection_limits import RESERVED_FILES, open_file_target

    assert open_file_target(15000, 1024, 20000) == 15000 + RESERVED_FILES
    assert open_file_target(15000, 1024, 4096) == 4096  # the hard limit is the most there is
    assert open_file_target(100, 1024, 4096) == 1024  # enough already: never lowered
    assert open_file_target(15000, 1024, resource.RLIM_INFINITY) == 15000 + RESERVED_FILES


def test_serving_raises_a_low_open_file_limit_in_its_own_process(tmp_path):
    import subprocess
    import sys

    script = (
        "import resource, logging\n"
        "logging.basicConfig()\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))\n"
        "from revivatech_actors.web.connection_limits import raise_open_file_limit\n"
        "raise_open_file_limit(1000)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "raise_open_file_limit(5000)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "1256",
        "2048",
    ]  # then as far as the hard limit allows, with a warning
    assert (
        "web.max_connections = 5000 needs about 5256 open files" in done.stderr
        and "raise that limit or lower web.max_connections" in done.stderr
    )


async def test_http2_over_cleartext_is_not_taken_up(sqlite_url):
    """An h2c upgrade or the HTTP/2 preface would leave HTTP/1.1's deadlines behind."""
    service = make_service(sqlite_url)
    async with Running(service):
        upgrade = await connect(service)
        await upgrade.send_all(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        received, _ = await read_until_closed(upgrade, 1)
        assert parse(received) == (200, {"status": "alive"})  # served as HTTP/1.1, not 101

        preface = await connect(service)
        await preface.send_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        received, _ = await read_until_closed(preface, 1)
        assert received.startswith(b"HTTP/1.1 4"), received  # an HTTP/1.1 refusal, no HTTP/2 frames


async def test_refusals_past_the_cap_are_logged_once_per_interval_and_none_is_left_out(
    autojump_clock, caplog
):
    guard = ConnectionGuard(
        ConnectionLimits(header_timeout=1, body_timeout=1, max_connections=2, max_header_size=8192)
    )
    assert guard.admit() and guard.admit()
    with caplog.at_level(logging.WARNING, logger="revivatech_actors.web.connection_limits"):
        assert not guard.admit()  # logged at once
        for _ in range(4):
            assert not guard.admit()  # counted, not logged: a flood is one line
        assert [r.getMessage().split(" new")[0] for r in caplog.records] == ["1"]
        await trio.sleep(REFUSAL_LOG_INTERVAL)
        guard.release()  # no new refusal came: the four are still reported
        assert [r.getMessage().split(" new")[0] for r in caplog.records] == ["1", "4"]
        guard.release()
        assert len(caplog.records) == 2  # nothing pending: nothing more

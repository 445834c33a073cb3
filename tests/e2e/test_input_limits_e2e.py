"""Slow clients against a real ``serve`` process, its limits set through the environment:
a crowd of connections sending half a request line byte by byte is answered 408 and closed after
``web.header_timeout``, a trickling body after ``web.body_timeout``; past ``web.max_connections``
new connections are closed at once while an established keep-alive client is still served; and
once the crowd is gone new connections are served again."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from ..helpers import read_until_closed
from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

CROWD = 150
MAX_CONNECTIONS = CROWD + 2  # the crowd, the keep-alive client and the slow body


async def trickle(stream: trio.SocketStream, data: bytes, interval: float) -> None:
    for byte in data:
        try:
            await stream.send_all(bytes([byte]))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await trio.sleep(interval)


async def test_slow_clients_are_cut_and_the_connection_cap_spares_established_clients(serve):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_WEB_HEADER_TIMEOUT="2",
            REVIVATECH_WEB_BODY_TIMEOUT="2",
            REVIVATECH_WEB_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        )
    )
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=5, limits=httpx.Limits(max_connections=1)
    ) as client:
        assert (await client.get("/healthz")).status_code == 200  # its connection stays open

        outcomes: list[tuple[bytes, bool, float]] = []
        crowd_open = trio.Event()
        opened_count = [0]

        async def slow_client(request: bytes, headers_first: bool) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            opened = trio.current_time()
            opened_count[0] += 1
            if opened_count[0] == CROWD + 1:
                crowd_open.set()
            async with stream, trio.open_nursery() as nursery:
                if headers_first:
                    head, _, body = request.partition(b"\r\n\r\n")
                    await stream.send_all(head + b"\r\n\r\n")
                    nursery.start_soon(trickle, stream, body, 0.2)
                else:
                    nursery.start_soon(trickle, stream, request, 0.3)
                received, closed = await read_until_closed(stream, 8)
                outcomes.append((received, closed, trio.current_time() - opened))
                nursery.cancel_scope.cancel()

        event = json.dumps(
            {"user_fingerprint": "v", "session_id": "s", "event_type": "page_view"}
        ).encode()
        post = (
            b"POST /api/analytics/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(event)
        ) + event
        async with trio.open_nursery() as nursery:
            for _ in range(CROWD):
                nursery.start_soon(
                    slow_client, b"GET /api/analytics/health HTTP/1.1\r\nHost: t\r\n\r\n", False
                )
            nursery.start_soon(slow_client, post, True)
            with trio.fail_after(5):
                await crowd_open.wait()
            await trio.sleep(0.3)

            # full: a new connection is closed at once, with nothing sent
            refused = await trio.open_tcp_stream("127.0.0.1", server.port)
            start = trio.current_time()
            received, closed = await read_until_closed(refused, 1)
            assert closed and received == b"" and trio.current_time() - start < 0.5
            await refused.aclose()

            # the established keep-alive client is served meanwhile
            for _ in range(3):
                answer = await client.get("/api/analytics/health")
                assert answer.status_code == 200, answer.text

        assert len(outcomes) == CROWD + 1
        for received, closed, after in outcomes:
            assert closed and 1.8 <= after < 4.5, (received[:80], closed, after)
            head, _, body = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), received
            message = json.loads(body)["message"]
            assert "web.header_timeout = 2 s" in message or "web.body_timeout = 2 s" in message
        assert sum(b"web.body_timeout" in received for received, _, _ in outcomes) == 1

        # the crowd is gone: new connections are served again
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as fresh:
            assert (await fresh.get("/healthz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    assert f"web.max_connections = {MAX_CONNECTIONS} are open" in server.output()

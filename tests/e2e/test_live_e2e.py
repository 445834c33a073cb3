"""``WS /api/analytics/ws`` through the real ``serve`` process with a real WebSocket client
(trio-websocket): the protocol of docs/api.md ("WS /api/analytics/ws"), admin only, the main
app's JWTs, the ``token`` cookie only from a trusted page, tokenless public realtime and its own
cap, the client cap, 1001 at shutdown, a client that stops reading neither delays the others
nor stays connected, and snapshots written at once reach a slow deflate client whole."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import socket
import time
import uuid

import httpx
import jwt
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Ping, Pong, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from .conftest import ADMIN_TOKEN, next_of, quiet_feed_delays, service_env, ws_url

pytestmark = pytest.mark.e2e


def start(serve, **settings: str):
    defaults = {
        "REVIVATECH_AUTH_ADMIN_TOKENS": ADMIN_TOKEN,
        "REVIVATECH_PROFILES_FLUSH_INTERVAL": "0.2",
        "REVIVATECH_BROADCAST_MIN_INTERVAL": "0.1",
    }
    return serve(env=service_env(**{**defaults, **settings}))


async def post(server, *events: dict) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
        answer = await client.post("/api/analytics/events/batch", json={"events": list(events)})
        assert answer.status_code == 200, answer.text


def big_page_views(n: int, count: int) -> list[dict]:
    """``count`` page views of new visitors, each of its own long page: with
    ``realtime.top_pages`` 100, snapshots of ~150 KB, which fill a slow client's buffers soon."""
    big_page = "https://x.example/" + "p" * 1500
    return [
        {
            "user_fingerprint": f"u{n}-{i}",
            "session_id": f"s{n}-{i}",
            "event_type": "page_view",
            "page_url": f"{big_page}{n}-{i}",
        }
        for i in range(count)
    ]


async def test_the_protocol(serve):
    server = start(serve)
    fp = f"fp-{uuid.uuid4().hex[:12]}"
    await post(
        server,
        {
            "user_fingerprint": fp,
            "session_id": "s1",
            "event_type": "page_view",
            "page_url": "https://x.example/",
        },
    )
    async with open_websocket_url(ws_url(server)) as ws:
        hello = json.loads(await ws.get_message())
        assert hello["type"] == "connection_established" and hello["clientId"]

        await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
        first = await next_of(ws, "realtime_metrics", timeout=2)
        assert first["data"]["overview"]["total_events"] == 1
        assert {"active_users", "active_sessions", "page_views", "conversions"} <= first["data"][
            "overview"
        ].keys()

        await post(
            server, {"user_fingerprint": fp, "session_id": "s1", "event_type": "booking_started"}
        )
        with trio.fail_after(3):
            while (await next_of(ws, "realtime_metrics"))["data"]["overview"]["total_events"] != 2:
                pass

        await ws.send_message(json.dumps({"type": "ping"}))
        assert await next_of(ws, "pong", timeout=2) == {"type": "pong"}
        for bad in [
            "not json",
            json.dumps([1]),
            json.dumps({"type": "dance"}),
            json.dumps({"type": "subscribe_user_insights"}),
            json.dumps({"type": "unsubscribe", "channel": "x"}),
        ]:
            await ws.send_message(bad)
            error = await next_of(ws, "error", timeout=2)
            assert error["error"] and error["message"]
        await ws.send_message(json.dumps({"type": "ping"}))  # still connected
        await next_of(ws, "pong", timeout=2)

        await ws.send_message(json.dumps({"type": "subscribe_user_insights", "fingerprint": fp}))
        insights = await next_of(ws, "user_insights", timeout=3)
        assert insights["fingerprint"] == insights["data"]["profile"]["fingerprint"] == fp
        assert insights["data"]["profile"]["totalEvents"] == 2
        assert set(insights["data"]["scores"]) == {
            "engagement",
            "lead",
            "churnRisk",
            "priceSensitivity",
            "conversionProbability",
        }

        # a booking moves the scores: the scorer records them, and the follower hears of it
        await post(
            server,
            {
                "user_fingerprint": fp,
                "session_id": "s1",
                "event_type": "booking_completed",
                "value": 120,
            },
        )
        with trio.fail_after(10):
            while (await next_of(ws, "user_insights"))["data"]["profile"]["totalBookings"] != 1:
                pass

        await ws.send_message(json.dumps({"type": "unsubscribe", "channel": "realtime"}))
        await ws.send_message(
            json.dumps({"type": "unsubscribe", "channel": "user_insights", "fingerprint": fp})
        )
        await ws.send_message(json.dumps({"type": "ping"}))
        await next_of(ws, "pong", timeout=2)
        await post(server, {"user_fingerprint": fp, "session_id": "s1", "event_type": "page_view"})
        with trio.move_on_after(1.0):
            message = json.loads(await ws.get_message())
            pytest.fail(f"unsubscribed, yet received {message}")


async def test_an_event_reaches_dashboards_at_once_when_the_feed_is_quiet(serve):
    """With the default settings, each of a few events posted 0.3 s apart reaches every
    subscribed client well within 250 ms of its acknowledgement (updates that waited for
    ``broadcast.min_interval`` after the last one took up to 1 s)."""
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    delays = await quiet_feed_delays(server, server)
    assert len(delays) == 15 and max(delays) < 0.25, delays


async def test_admin_token_header_or_query_and_the_client_cap(serve):
    server = start(serve, REVIVATECH_BROADCAST_MAX_CLIENTS="2")
    for url in (ws_url(server, None), ws_url(server, "wrong-token-0123456789")):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(url):
                pass
        assert rejected.value.status_code == 401
    headers = [("Authorization", f"Bearer {ADMIN_TOKEN}")]
    async with (
        open_websocket_url(ws_url(server, None), extra_headers=headers) as first,
        open_websocket_url(ws_url(server)) as second,
    ):
        for ws in (first, second):
            assert json.loads(await ws.get_message())["type"] == "connection_established"
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ws_url(server)):
                pass
        assert rejected.value.status_code == 503
        assert json.loads(rejected.value.body)["error"] == "too_many_clients"
    with trio.fail_after(5):  # the two left: room again
        while True:
            try:
                async with open_websocket_url(ws_url(server)) as ws:
                    assert json.loads(await ws.get_message())["type"] == "connection_established"
                    break
            except ConnectionRejected:
                await trio.sleep(0.05)


JWT_SECRET = "main-app-jwt-secret-0123456789abcdef"
ADMIN_UI = "http://localhost:3010"


def jwt_of(role: str = "ADMIN", *, exp: int = 900) -> str:
    return jwt.encode(
        {"userId": "u1", "role": role, "exp": int(time.time()) + exp}, JWT_SECRET, algorithm="HS256"
    )


async def refused_status(url: str, headers: list[tuple[str, str]] = ()) -> int:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, extra_headers=list(headers)):
            pass
    return rejected.value.status_code


async def access_of(url: str, headers: list[tuple[str, str]] = ()) -> str:
    async with open_websocket_url(url, extra_headers=list(headers)) as ws:
        hello = json.loads(await ws.get_message())
        assert hello["type"] == "connection_established"
        return hello["access"]


async def test_jwts_and_the_cookie_only_from_a_trusted_page(serve):
    server = start(
        serve, REVIVATECH_AUTH_JWT_SECRET=JWT_SECRET, REVIVATECH_CORS_ALLOWED_ORIGINS=ADMIN_UI
    )
    url = ws_url(server, None)
    cookie = ("Cookie", f"token={jwt_of()}")
    assert await access_of(url, [("Authorization", f"Bearer {jwt_of()}")]) == "admin"
    assert await access_of(ws_url(server, jwt_of("SUPER_ADMIN"))) == "admin"
    assert await access_of(url, [cookie, ("Origin", ADMIN_UI)]) == "admin"
    assert (
        await access_of(url, [cookie, ("Origin", server.base_url)]) == "admin"
    )  # the service's own page
    assert (
        await access_of(ws_url(server), [("Origin", "https://evil.example")]) == "admin"
    )  # explicit: any page
    # a cookie from a foreign page, or with no page named, would be cross-site WebSocket hijacking
    assert await refused_status(url, [cookie, ("Origin", "https://evil.example")]) == 403
    assert await refused_status(url, [cookie]) == 403
    assert await refused_status(url, [("Authorization", f"Bearer {jwt_of('CUSTOMER')}")]) == 403
    assert (
        await refused_status(url, [("Cookie", f"token={jwt_of('CUSTOMER')}"), ("Origin", ADMIN_UI)])
        == 403
    )
    assert await refused_status(ws_url(server, jwt_of(exp=-5))) == 401
    assert await refused_status(url) == 401  # public_realtime is off by default


async def test_public_realtime_for_tokenless_clients_with_their_own_cap(serve):
    server = start(
        serve,
        REVIVATECH_BROADCAST_PUBLIC_REALTIME="true",
        REVIVATECH_BROADCAST_MAX_PUBLIC_CLIENTS="2",
        REVIVATECH_BROADCAST_MAX_CLIENTS="1",
        REVIVATECH_AUTH_JWT_SECRET=JWT_SECRET,
        REVIVATECH_CORS_ALLOWED_ORIGINS=ADMIN_UI,
    )
    fp = f"fp-{uuid.uuid4().hex[:12]}"
    await post(
        server,
        {
            "user_fingerprint": fp,
            "session_id": "s1",
            "event_type": "page_view",
            "page_url": "https://x.example/booking?email=someone%40example.com",
        },
    )
    # as analyticsWebSocketService.ts does: no token, subscribe_realtime after
    # connection_established
    async with (
        open_websocket_url(
            ws_url(server, None), extra_headers=[("Origin", "https://shop.example")]
        ) as visitor,
        open_websocket_url(
            ws_url(server, None),
            extra_headers=[("Cookie", f"token={jwt_of('CUSTOMER')}"), ("Origin", ADMIN_UI)],
        ) as customer,
    ):
        for ws in (
            visitor,
            customer,
        ):  # a logged-in customer's cookie is no admin credential: public too
            hello = json.loads(await ws.get_message())
            assert (hello["type"], hello["access"]) == ("connection_established", "public")
            await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
            realtime = await next_of(ws, "realtime_metrics", timeout=3)
            assert realtime["data"]["overview"]["total_events"] == 1
            # aggregates only: a page's query string may carry a visitor's data
            assert realtime["data"]["topPages"] == [
                {"page_url": "https://x.example/booking", "views": 1}
            ]
        await visitor.send_message(
            json.dumps({"type": "subscribe_user_insights", "fingerprint": fp})
        )
        error = await next_of(visitor, "error", timeout=2)
        assert error["error"] == "admin_only" and error["message"]
        await visitor.send_message(json.dumps({"type": "ping"}))  # the connection stays
        await next_of(visitor, "pong", timeout=2)
        # the public cap is full; an explicit bad token is refused, not made public
        assert await refused_status(ws_url(server, None)) == 503
        assert await refused_status(ws_url(server, "wrong-token-0123456789")) == 401
        # the visitors took none of the admins' places
        async with open_websocket_url(ws_url(server)) as admin:
            hello = json.loads(await admin.get_message())
            assert hello["access"] == "admin"
            await admin.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": fp})
            )
            insights = await next_of(admin, "user_insights", timeout=3)
            assert insights["fingerprint"] == fp
            assert await refused_status(ws_url(server)) == 503  # max_clients = 1
        with trio.move_on_after(
            0.5
        ):  # the visitor never hears of the visitor followed by the admin
            while True:
                message = json.loads(await visitor.get_message())
                assert message["type"] != "user_insights", message


async def test_refused_upgrades_log_nothing_each(serve):
    server = start(serve, REVIVATECH_AUTH_JWT_SECRET=JWT_SECRET)
    before = len(server.output().splitlines())
    for _ in range(20):
        assert await refused_status(ws_url(server, None)) == 401
        assert await refused_status(ws_url(server, jwt_of("CUSTOMER"))) == 403
    await trio.sleep(0.2)
    output = server.output()
    assert len(output.splitlines()) - before < 5, output
    assert JWT_SECRET not in output


async def test_shutdown_closes_clients_with_1001(serve):
    server = start(serve)
    async with open_websocket_url(ws_url(server)) as ws:
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
        await next_of(ws, "realtime_metrics")
        server.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            while True:
                await ws.get_message()
        assert closed.value.reason.code == 1001
    assert server.wait_exit() == 0, server.output()


def _raw_websocket(port: int, *, wait_for_handshake: bool = True) -> socket.socket:
    """A client that completes the handshake, subscribes to realtime, and then never reads.
    Without ``wait_for_handshake`` it sends its frame before the server's answer (a protocol
    violation some clients commit)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/analytics/ws?token={ADMIN_TOKEN} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    if wait_for_handshake:
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(1)  # byte by byte: nothing after the handshake is read
        assert answer.startswith(b"HTTP/1.1 101"), answer
    payload = json.dumps({"type": "subscribe_realtime"}).encode()
    mask = os.urandom(4)
    sock.sendall(
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    return sock


async def test_a_peer_that_stops_answering_pings_is_disconnected(serve):
    """Protocol pings every second (``broadcast.ping_interval``); a client that reads them but
    never answers (nor sends anything) is disconnected after twice that plus 5 s."""
    server = start(serve, REVIVATECH_BROADCAST_PING_INTERVAL="1")
    silent = _raw_websocket(server.port)
    silent.setblocking(False)
    started = time.monotonic()
    try:
        with trio.fail_after(15):
            while True:
                await trio.lowlevel.wait_readable(silent)
                try:
                    data = silent.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    break  # the server closed the connection
        assert 6 <= time.monotonic() - started <= 12
    finally:
        silent.close()


async def test_a_client_breaking_the_handshake_affects_no_other_connection(serve):
    server = start(serve)
    async with open_websocket_url(ws_url(server)) as ws:
        await ws.get_message()
        bad = _raw_websocket(server.port, wait_for_handshake=False)
        try:
            await trio.sleep(0.3)
            await ws.send_message(json.dumps({"type": "ping"}))
            assert await next_of(ws, "pong", timeout=2) == {"type": "pong"}
        finally:
            bad.close()
    assert "root/web crashed" not in server.output()


async def test_a_client_that_stops_reading_delays_nobody_and_is_closed_with_1013(serve):
    server = start(
        serve,
        REVIVATECH_BROADCAST_MIN_INTERVAL="0.01",
        REVIVATECH_BROADCAST_STUCK_TIMEOUT="1",
        REVIVATECH_REALTIME_TOP_PAGES="100",
    )
    stuck = _raw_websocket(server.port)
    gaps = []
    try:
        async with open_websocket_url(ws_url(server)) as ws, trio.open_nursery() as nursery:
            await ws.get_message()
            await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
            await next_of(ws, "realtime_metrics")

            async def load() -> None:
                n = 0
                while True:
                    n += 1
                    await post(server, *big_page_views(n, 10))
                    await trio.sleep(0.02)

            nursery.start_soon(load)
            last = time.monotonic()
            deadline = last + 12
            closed_stuck = False
            while time.monotonic() < deadline:
                await next_of(ws, "realtime_metrics", timeout=2)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
                    stats = (
                        await client.get(
                            "/api/analytics/actors",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                        )
                    ).json()["stats"]
                if stats["broadcaster"]["clients"] == 1:
                    closed_stuck = True
                    break
            nursery.cancel_scope.cancel()
        assert closed_stuck, f"the stuck client was not closed; {server.output()[-2000:]}"
        assert max(gaps) < 1.0, gaps  # the reading client kept getting updates meanwhile
        assert "stuck for 1 s on one send: closed (1013)" in server.output()
    finally:
        stuck.close()


async def test_snapshots_written_at_once_reach_a_slow_deflate_client_whole_and_in_order(serve):
    """Snapshots go straight to an idle connection's socket, uncompressed, even to a client that
    negotiated permessage-deflate (whose other messages come compressed); a client that reads
    slowly, so that the kernel takes only part of a frame, still gets every frame whole and in
    order, the server's pongs and replies included."""
    server = start(
        serve,
        REVIVATECH_BROADCAST_MIN_INTERVAL="0.01",
        REVIVATECH_BROADCAST_STUCK_TIMEOUT="10",
        REVIVATECH_BROADCAST_MAX_MESSAGES_PER_SECOND="1000",
        REVIVATECH_REALTIME_TOP_PAGES="100",
    )
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel takes little at once
    await sock.connect(("127.0.0.1", server.port))
    stream = trio.SocketStream(sock)
    client = WSConnection(ConnectionType.CLIENT)
    target = f"/api/analytics/ws?token={ADMIN_TOKEN}"
    await stream.send_all(
        client.send(Request(host="127.0.0.1", target=target, extensions=[PerMessageDeflate()]))
    )
    events: list = []

    async def receive(size: int = 65536) -> None:
        client.receive_data(await stream.receive_some(size) or None)
        events.extend(client.events())

    while not any(isinstance(event, AcceptConnection) for event in events):
        await receive()
    accepted = next(event for event in events if isinstance(event, AcceptConnection))
    assert [type(e) for e in accepted.extensions] == [PerMessageDeflate]
    await stream.send_all(client.send(Message(json.dumps({"type": "subscribe_realtime"}))))
    totals: list[int] = []
    replies = pongs = 0
    text = ""
    sending = trio.Lock()

    async def send(event: Message | Ping) -> None:
        async with sending:
            await stream.send_all(client.send(event))

    async def changes_and_pings() -> None:
        for n in range(40):  # 40 changes, and a reply and a pong asked for each
            await post(server, *big_page_views(n, 5))
            await send(Message(json.dumps({"type": "ping"})))
            await trio.sleep(0.03)

    async def pings() -> None:  # all along: the server's pongs race its snapshots' rests
        for n in itertools.count():
            await send(Ping(str(n).encode()))
            await trio.sleep(0.002)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(changes_and_pings)
            nursery.start_soon(pings)
            while totals[-1:] != [200] or replies < 40 or pongs < 40:
                await receive(2048)  # slowly: the kernel takes frames a part at a time
                for event in events:
                    if isinstance(event, TextMessage):
                        text += event.data
                        if event.message_finished:
                            message, text = json.loads(text), ""  # every frame whole
                            if message["type"] == "realtime_metrics":
                                totals.append(message["data"]["overview"]["total_events"])
                            elif message["type"] != "connection_established":
                                assert message == {"type": "pong"}
                                replies += 1
                    elif isinstance(event, Pong):
                        assert event.payload == str(pongs).encode()  # each, in order
                        pongs += 1
                events.clear()
                await trio.sleep(0.005)
            nursery.cancel_scope.cancel()
    assert totals == sorted(totals) and len(totals) >= 2  # in order, the newest last
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        stats = (
            await http.get(
                "/api/analytics/actors", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
        ).json()["stats"]["broadcaster"]
    assert stats["snapshotsWrittenAtOnce"] >= 1
    await stream.aclose()


def test_the_fan_out_benchmark_measures_update_delays(serve):
    """``revivatech-actors bench --mode ws`` against a real server: every client connects and
    receives updates while the load is posted, and the delays are plausible."""
    import subprocess
    import sys

    server = start(serve, REVIVATECH_BROADCAST_MIN_INTERVAL="0.2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "revivatech_actors",
            "bench",
            "--url",
            server.base_url,
            "--mode",
            "ws",
            "--clients",
            "20",
            "--rate",
            "500",
            "--batch-size",
            "50",
            "--duration",
            "3",
            "--token",
            ADMIN_TOKEN,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["connected"] == 20 and figures["failed_to_connect"] == 0
    assert figures["events"] >= 1000
    assert figures["updates_per_client_per_s"] >= 2  # about one per 0.2 s
    assert 0 < figures["delay_ms"]["p50"] < 1000 and figures["delay_ms"]["max"] < 2000

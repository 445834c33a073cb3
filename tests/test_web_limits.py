"""Rate limits and write keys over real HTTP: the service in-process on a real socket, httpx as the
client, SQLite / PostgreSQL and Redis real (a TCP proxy takes Redis away).

- ``limits.ingest_rate`` per client address: 429 with ``Retry-After`` and ``RateLimit-*``; a forged
  ``X-Forwarded-For`` from an untrusted peer changes nothing, a trusted proxy's separates clients;
- ``limits.admin_rate`` per admin credential; ``limits.ws_connect_rate`` per address;
- shared through Redis by two services, and in-process when Redis is away (never an error);
- ``auth.write_keys``: header, batch envelope, each event; 401 otherwise; ``write_key`` never
  stored.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from revivatech_actors.service import Service

from .conftest import free_port
from .tcp_proxy import TcpProxy
from .test_service import TOKEN, Running, make_service
from .test_web_ingest import BATCH, EVENTS, assert_error, db, dead_letters, event

AUTH = {"Authorization": f"Bearer {TOKEN}"}
REALTIME = "/api/analytics/realtime"
KEY = "site-write-key-0123456789"
HASHED_KEY = "other-site-key-0123456789"


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def assert_rate_headers(answer: httpx.Response, limit: int, remaining: int) -> None:
    assert answer.headers["RateLimit-Limit"] == str(limit), answer.headers
    assert answer.headers["RateLimit-Remaining"] == str(remaining), answer.headers
    assert int(answer.headers["RateLimit-Reset"]) >= 0


def assert_limited(answer: httpx.Response, limit: int, setting: str) -> dict:
    body = assert_error(answer, 429, "rate_limited")
    assert setting in body["message"]
    assert int(answer.headers["Retry-After"]) >= 1
    assert_rate_headers(answer, limit, 0)
    assert int(answer.headers["RateLimit-Reset"]) >= 1
    return body


async def stored_count(url: str) -> int:
    ((count,),) = await db(url, "SELECT count(*) FROM analytics_events")
    return int(count)


# --- ingest per client address -------------------------------------------------------------------


async def test_ingest_over_its_rate_gets_429_with_the_headers_and_stores_nothing(storage_url):
    async with Running(make_service(storage_url, **{"limits.ingest_rate": "3/1m"})) as client:
        for n, path in enumerate([EVENTS, BATCH, "/api/analytics/track/journey"]):
            body = {"events": [event()]} if path == BATCH else event(session_id=f"s{n}")
            if path.endswith("journey"):
                body = {"user_fingerprint": "visitor-1", "session_id": "s9", "step": "pricing"}
            answer = await client.post(path, json=body)
            assert answer.status_code == 200, answer.text
            assert_rate_headers(answer, 3, 2 - n)
        stored = await stored_count(storage_url)
        refused = await client.post(EVENTS, json=event(session_id="over"))
        body = assert_limited(refused, 3, "limits.ingest_rate")
        assert "3/1m" in body["message"]
        assert 15 <= int(refused.headers["Retry-After"]) <= 20  # one token every 20 s
        assert (await client.post(BATCH, json={"events": [event()]})).status_code == 429
        assert await stored_count(storage_url) == stored
        assert (await client.get("/api/analytics/health")).status_code == 200  # not an ingest route


async def test_a_forged_x_forwarded_for_from_an_untrusted_peer_changes_nothing(sqlite_url):
    async with Running(make_service(sqlite_url, **{"limits.ingest_rate": "2/1m"})) as client:
        answers = [
            await client.post(EVENTS, json=event(), headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(sqlite_url):
    service = make_service(
        sqlite_url, **{"limits.ingest_rate": "2/1m", "web.trusted_proxies": "127.0.0.1"}
    )
    async with Running(service) as client:

        async def post(forwarded: str) -> int:
            return (
                await client.post(EVENTS, json=event(), headers={"X-Forwarded-For": forwarded})
            ).status_code

        assert [await post("198.51.100.1") for _ in range(3)] == [200, 200, 429]
        assert [await post("198.51.100.2") for _ in range(3)] == [200, 200, 429]
        # the client behind the proxy forges an entry; the proxy appends the address it saw
        assert await post("203.0.113.50, 198.51.100.1") == 429
        # an IPv6 client is one bucket per /64 whatever address of it it uses
        assert [await post(f"2001:db8:0:1::{n}") for n in range(1, 4)] == [200, 200, 429]


async def test_an_empty_rate_turns_the_limit_off(sqlite_url):
    async with Running(make_service(sqlite_url, **{"limits.ingest_rate": ""})) as client:
        answers = [await client.post(EVENTS, json=event()) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert "RateLimit-Limit" not in answers[0].headers


# --- admin per credential, WebSocket per address -------------------------------------------------


async def test_admin_routes_are_limited_per_credential(sqlite_url):
    other = "second-admin-token-0123456789"
    settings = make_service(sqlite_url, **{"limits.admin_rate": "2/1m"}).settings
    service = Service.build(settings, (TOKEN, sha(other)))  # a hashed token works the same
    async with Running(service) as client:
        first = [await client.get(REALTIME, headers=AUTH) for _ in range(2)]
        assert [a.status_code for a in first] == [200, 200]
        assert_rate_headers(first[1], 2, 0)
        assert_limited(
            await client.get("/api/analytics/funnel", headers=AUTH), 2, "limits.admin_rate"
        )
        # another credential has its own bucket, whatever address it comes from
        assert (
            await client.get(REALTIME, headers={"Authorization": f"Bearer {other}"})
        ).status_code == 200
        # no credential: 401 as before (the limit is the credential's)
        assert (await client.get(REALTIME)).status_code == 401
        assert (
            await client.get(REALTIME, headers={"Authorization": "Bearer wrong-token-0123456789"})
        ).status_code == 401


async def test_websocket_connections_are_limited_per_address(sqlite_url):
    service = make_service(sqlite_url, **{"limits.ws_connect_rate": "2/1m"})
    url = f"ws://127.0.0.1:{service.settings.web.port}/api/analytics/ws?token={TOKEN}"
    async with (
        Running(service),
        open_websocket_url(url) as first,
        open_websocket_url(url) as second,
    ):
        for ws, left in ((first, "1"), (second, "0")):
            assert json.loads(await ws.get_message())["type"] == "connection_established"
            upgrade = {k.decode().lower(): v.decode() for k, v in ws.handshake_headers}
            assert (upgrade["ratelimit-limit"], upgrade["ratelimit-remaining"]) == ("2", left)
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(url):
                pass
    assert rejected.value.status_code == 429
    headers = {name.decode().lower(): value.decode() for name, value in rejected.value.headers}
    assert int(headers["retry-after"]) >= 1 and headers["ratelimit-limit"] == "2"
    assert json.loads(rejected.value.body)["error"] == "rate_limited"


# --- shared through Redis, and Redis away ---------------------------------------------------------


async def test_two_services_on_one_redis_share_a_clients_bucket(
    postgres_url, redis_url, redis_prefix
):
    settings = {
        "limits.ingest_rate": "40/1m",
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
    }
    async with (
        Running(make_service(postgres_url, **settings)) as a,
        Running(make_service(postgres_url, **settings)) as b,
    ):
        statuses = [
            (await (a if n % 2 else b).post(EVENTS, json=event())).status_code for n in range(60)
        ]
    assert (
        statuses.count(429) >= 20 - 2 * 2
    )  # over the shared 40, less what each lease (2) may hold back
    assert statuses.count(200) <= 40 and statuses[:36] == [200] * 36


async def test_with_redis_unreachable_the_limit_holds_in_process_without_errors(sqlite_url):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with Running(
        make_service(sqlite_url, **{"limits.ingest_rate": "3/1m", "redis.url": closed})
    ) as client:
        statuses = [(await client.post(EVENTS, json=event())).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_redis_going_away_and_back_never_fails_a_request(sqlite_url, redis_prefix):
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy("127.0.0.1", 6379)
        port = await nursery.start(proxy.run)
        settings = {
            "limits.ingest_rate": "100/1m",
            "limits.admin_rate": "100/1m",
            "redis.url": f"redis://127.0.0.1:{port}/0",
            "redis.key_prefix": redis_prefix,
        }
        async with Running(make_service(sqlite_url, **settings)) as client:
            assert (await client.post(EVENTS, json=event())).status_code == 200  # leased from Redis
            proxy.switch_off()
            statuses = [(await client.post(EVENTS, json=event())).status_code for _ in range(50)]
            statuses += [(await client.get(REALTIME, headers=AUTH)).status_code for _ in range(5)]
            await proxy.switch_on()
            await trio.sleep(2.5)  # past the retry pause
            statuses += [(await client.post(EVENTS, json=event())).status_code for _ in range(5)]
        nursery.cancel_scope.cancel()
    assert set(statuses) == {200}, statuses


# --- write keys ----------------------------------------------------------------------------------


def keyed_service(url: str):
    return make_service(url, **{"auth.write_keys": f"{KEY},{sha(HASHED_KEY)}"})


async def test_with_write_keys_ingest_needs_one_in_the_header_the_envelope_or_each_event(
    storage_url,
):
    async with Running(keyed_service(storage_url)) as client:
        accepted = [
            await client.post(EVENTS, json=event(session_id="h"), headers={"X-Write-Key": KEY}),
            await client.post(
                EVENTS, json=event(session_id="b", write_key=HASHED_KEY)
            ),  # sha256-configured
            await client.post(BATCH, json={"events": [event(session_id="e1")], "write_key": KEY}),
            await client.post(
                BATCH,
                json={
                    "events": [
                        event(session_id="e2", write_key=KEY),
                        event(session_id="e3", write_key=HASHED_KEY),
                    ]
                },
            ),
            await client.post(
                "/api/analytics/track/journey",
                json={
                    "user_fingerprint": "visitor-1",
                    "session_id": "j",
                    "step": "pricing",
                    "write_key": KEY,
                },
            ),
            # sendBeacon: text/plain, the key in the body
            await client.post(
                EVENTS,
                content=json.dumps(event(session_id="beacon", write_key=KEY)),
                headers={"Content-Type": "text/plain;charset=UTF-8"},
            ),
        ]
        assert [a.status_code for a in accepted] == [200] * 6, [a.text for a in accepted]
        rows = await db(storage_url, "SELECT properties FROM analytics_events")
        assert len(rows) == 7
        for (properties,) in rows:
            text = properties if isinstance(properties, str) else json.dumps(properties)
            assert "write_key" not in text and KEY not in text and HASHED_KEY not in text


async def test_without_a_valid_write_key_ingest_is_401_and_nothing_is_kept(sqlite_url):
    async with Running(keyed_service(sqlite_url)) as client:
        missing = assert_error(await client.post(EVENTS, json=event()), 401, "missing_write_key")
        assert "X-Write-Key" in missing["message"] and "auth.write_keys" in missing["message"]
        wrong = await client.post(
            EVENTS, json=event(), headers={"X-Write-Key": "wrong-key-0123456789"}
        )
        assert "wrong-key" not in assert_error(wrong, 401, "invalid_write_key")["message"]
        assert_error(
            await client.post(EVENTS, json=event(write_key=sha(KEY))), 401, "invalid_write_key"
        )
        assert_error(
            await client.post(BATCH, json={"events": [event()], "write_key": 42}),
            401,
            "invalid_write_key",
        )
        partly = assert_error(
            await client.post(BATCH, json={"events": [event(write_key=KEY), event()]}),
            401,
            "missing_write_key",
        )
        assert [d["field"] for d in partly["details"]] == ["events[1].write_key"]
        # an invalid event without a key, and broken JSON without a key: no dead letter either
        assert_error(await client.post(EVENTS, json={"event_type": ""}), 401, "missing_write_key")
        assert_error(
            await client.post(
                EVENTS, content=b"{broken", headers={"Content-Type": "application/json"}
            ),
            401,
            "missing_write_key",
        )
        assert (
            await client.get(REALTIME, headers=AUTH)
        ).status_code == 200  # admin routes need no write key
        await trio.sleep(0.2)
    assert await stored_count(sqlite_url) == 0
    assert await dead_letters(sqlite_url) == []


async def test_the_write_key_field_is_never_stored_even_without_keys_configured(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        ok = await client.post(EVENTS, json=event(write_key="anything-at-all"))
        assert ok.status_code == 200 and "warnings" not in ok.json()
        bad = await client.post(EVENTS, json={"event_type": "", "write_key": "anything-at-all"})
        assert bad.status_code == 400
        await trio.sleep(0.3)
    ((properties,),) = await db(sqlite_url, "SELECT properties FROM analytics_events")
    assert "write_key" not in properties and "anything-at-all" not in properties
    letters = await dead_letters(sqlite_url)
    assert len(letters) == 1 and "anything-at-all" not in letters[0]["payload"]

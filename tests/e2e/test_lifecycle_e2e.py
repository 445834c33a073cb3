"""The data lifecycle through the real ``revivatech-actors serve``: a visitor erased on PostgreSQL
is gone from every table and every route, and stays gone after the profiles actor's next writes
and after a restart; old rows go once ``retention.days`` is set, profiles keep their totals;
the dead letters page through ``GET /api/analytics/rejected``."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from revivatech_actors.domain.partitions import partition_of

from ..helpers import query
from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH = "/api/analytics/events/batch"
EVENTS = "/api/analytics/events"
VISITOR_TABLES = (
    "analytics_events",
    "analytics_sessions",
    "customer_journeys",
    "visitor_active_days",
    "ml_predictions",
    "user_behavior_profiles",
)


def start(serve, storage_url: str, **settings: str):
    return serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=storage_url, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, **settings
        )
    )


def rows_of(url: str, fp: str) -> dict[str, int]:
    return {
        table: query(url, f"SELECT count(*) FROM {table} WHERE user_fingerprint = %s", (fp,))[0][0]
        for table in VISITOR_TABLES
    }


def wait_for(what, check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} within {timeout} s")


def profile_stats(client) -> dict:
    return client.get("/api/analytics/actors", headers=AUTH).json()["stats"]["profiles"]


def events_of(fp: str, sessions: int, each: int) -> list[dict]:
    return [
        {
            "user_fingerprint": fp,
            "session_id": f"{fp}-s{s}",
            "event_type": "page_view",
            "page_url": f"https://revivatech.example/{s}/{i}",
        }
        for s in range(sessions)
        for i in range(each)
    ]


def test_an_erased_visitor_is_gone_everywhere_and_stays_gone(serve, postgres_url):
    server = start(serve, postgres_url, REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2")
    fp = f"erase-{uuid.uuid4().hex[:8]}"
    # a visitor of the same partition: its rows are written by the owner the erasure fenced
    other = next(
        o
        for o in (f"keep-{n}" for n in range(10_000))
        if partition_of(o, 64) == partition_of(fp, 64)
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert (
            client.post(
                BATCH, json={"events": events_of(fp, 2, 3) + events_of(other, 1, 2)}
            ).status_code
            == 200
        )
        bad = client.post(
            EVENTS, json={"user_fingerprint": fp, "session_id": "x", "event_type": "bad type!"}
        )
        assert bad.status_code == 400
        # written and scored: every table holds the visitor
        wait_for(
            "the visitor's profile written and scored",
            lambda: all(rows_of(postgres_url, fp).values()),
        )
        wait_for(
            "the dead letter stored",
            lambda: query(postgres_url, "SELECT count(*) FROM rejected_events") == [(1,)],
        )
        stored = rows_of(postgres_url, fp)

        # More events, held in memory by the owner, not written yet: the erasure must fence them.
        assert client.post(BATCH, json={"events": events_of(fp, 3, 1)}).status_code == 200
        before = profile_stats(client)
        lost, taken = before["partitionsLost"], before["partitionsTaken"]
        assert client.delete(f"/api/analytics/users/{fp}").status_code == 401
        answer = client.delete(f"/api/analytics/users/{fp}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        removed = body["removed"]
        assert body["success"] is True and body["userFingerprint"] == fp
        assert removed["analytics_events"] == 9
        assert removed["rejected_events"] == 1
        assert removed["user_behavior_profiles"] == 1
        assert removed["visitor_active_days"] == stored["visitor_active_days"]
        assert removed["ml_predictions"] >= stored["ml_predictions"]
        assert removed["analytics_sessions"] >= 2 and removed["customer_journeys"] >= 2
        assert body["totalRemoved"] == sum(removed.values())
        assert rows_of(postgres_url, fp) == dict.fromkeys(VISITOR_TABLES, 0)
        assert query(postgres_url, "SELECT count(*) FROM rejected_events")[0][0] == 0
        # the local owner dropped the partition
        assert profile_stats(client)["partitionsLost"] == lost + 1

        # The owner takes the partition again, replays it and writes: the visitor does not come
        # back.
        wait_for(
            "the partition taken again",
            lambda: profile_stats(client)["partitionsTaken"] == taken + 1,
        )
        assert client.post(BATCH, json={"events": events_of(other, 1, 1)}).status_code == 200
        wait_for(
            "the other visitor's next event written",
            lambda: (
                query(
                    postgres_url,
                    "SELECT total_events FROM user_behavior_profiles WHERE user_fingerprint = %s",
                    (other,),
                )
                == [(3,)]
            ),
        )
        assert rows_of(postgres_url, fp) == dict.fromkeys(VISITOR_TABLES, 0)
        assert rows_of(postgres_url, other)["analytics_events"] == 3
        assert client.get(f"/api/analytics/insights/{fp}", headers=AUTH).status_code == 404
        journey = client.get(f"/api/analytics/journey/{fp}", headers=AUTH).json()["data"]
        assert journey["totalSteps"] == 0 and journey["journey"] == []
        # Erasing again, or an unknown visitor: zero counts.
        again = client.delete(f"/api/analytics/users/{fp}", headers=AUTH)
        assert again.status_code == 200 and set(again.json()["removed"].values()) == {0}
        assert client.delete("/api/analytics/users/%20", headers=AUTH).status_code == 400

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output()
    server = start(serve, postgres_url, REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2")
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        wait_for(
            "the restart's partitions taken", lambda: profile_stats(client)["partitions"] == 64
        )
        assert client.get(f"/api/analytics/insights/{fp}", headers=AUTH).status_code == 404
        assert (
            client.get(f"/api/analytics/insights/{other}", headers=AUTH).json()["data"]["profile"][
                "totalEvents"
            ]
            == 3
        )
    assert rows_of(postgres_url, fp) == dict.fromkeys(VISITOR_TABLES, 0)


def test_retention_deletes_old_rows_and_profiles_keep_their_totals(serve, sqlite_url):
    long_ago = datetime.now(UTC) - timedelta(days=40)
    fp = "old-visitor"
    old = [
        {
            "user_fingerprint": fp,
            "session_id": "old-s",
            "event_type": "page_view",
            "timestamp": (long_ago + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(4)
    ]
    server = start(
        serve,
        sqlite_url,
        REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2",
        REVIVATECH_RETENTION_DAYS="30",
        REVIVATECH_RETENTION_INTERVAL="0.5",
        REVIVATECH_RETENTION_BATCH_SIZE="3",
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post(BATCH, json={"events": old}).status_code == 200
        assert (
            client.post(
                EVENTS,
                json={"user_fingerprint": fp, "session_id": "new-s", "event_type": "page_view"},
            ).status_code
            == 200
        )

        def janitor():
            return client.get("/api/analytics/actors", headers=AUTH).json()["stats"]["janitor"]

        wait_for("the old events deleted", lambda: janitor()["deleted"]["analytics_events"] == 4)
        stats = janitor()
        assert stats["enabled"] is True and stats["days"] == 30 and stats["failures"] == 0
        assert (
            stats["deleted"]["analytics_sessions"] == 1
            and stats["deleted"]["customer_journeys"] == 1
        )
        assert query(sqlite_url, "SELECT session_id FROM analytics_events") == [("new-s",)]
        assert query(sqlite_url, "SELECT session_id FROM analytics_sessions") == [("new-s",)]
        profile = client.get(f"/api/analytics/insights/{fp}", headers=AUTH).json()["data"][
            "profile"
        ]
        assert profile["totalEvents"] == 5 and profile["totalSessions"] == 2
        # the old session lasted 3 minutes, the new one 0 s: the average keeps the deleted one
        ((retired,),) = query(
            sqlite_url, "SELECT retired_session_seconds FROM user_behavior_profiles"
        )
        assert retired == pytest.approx(180.0, abs=0.01)
        assert profile["avgSessionSeconds"] == pytest.approx(90.0, abs=0.1)


def test_retention_is_off_by_default(serve, sqlite_url):
    long_ago = (datetime.now(UTC) - timedelta(days=4000)).isoformat().replace("+00:00", "Z")
    server = start(serve, sqlite_url, REVIVATECH_RETENTION_INTERVAL="0.2")
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert (
            client.post(
                EVENTS,
                json={
                    "user_fingerprint": "v",
                    "session_id": "s",
                    "event_type": "page_view",
                    "timestamp": long_ago,
                },
            ).status_code
            == 200
        )
        time.sleep(1.0)  # five intervals
        stats = client.get("/api/analytics/actors", headers=AUTH).json()["stats"]["janitor"]
        assert (
            stats["enabled"] is False
            and stats["passes"] == 0
            and set(stats["deleted"].values()) == {0}
        )
    assert query(sqlite_url, "SELECT count(*) FROM analytics_events") == [(1,)]


def test_dead_letters_page_newest_first_with_their_reasons(serve, sqlite_url):
    server = start(serve, sqlite_url)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for n in range(3):
            answer = client.post(
                EVENTS,
                json={"user_fingerprint": f"v{n}", "session_id": "s", "event_type": f"bad {n}!"},
            )
            assert answer.status_code == 400
        big = client.post(
            EVENTS,
            json={
                "user_fingerprint": "big",
                "session_id": "s",
                "event_type": "",
                "properties": {"text": "x" * 20_000},
            },
        )
        assert big.status_code == 400
        # dead letters are kept through the batcher, after the 400: wait until all four are stored
        wait_for(
            "the four dead letters stored",
            lambda: query(sqlite_url, "SELECT count(*) FROM rejected_events") == [(4,)],
        )
        assert client.get("/api/analytics/rejected").status_code == 401

        first = client.get("/api/analytics/rejected", params={"limit": 2}, headers=AUTH)
        assert first.status_code == 200, first.text
        page = first.json()
        assert [letter["payload"][:40] for letter in page["data"]][0].startswith(
            '{"user_fingerprint":"big"'
        )
        newest = page["data"][0]
        assert newest["payloadTruncated"] is True and len(newest["payload"]) == 2048
        assert newest["payload"].endswith("chars]")
        assert newest["reasons"][0]["field"] == "event_type" and newest["source"] == "validation"
        assert newest["timesReceived"] == 1 and newest["receivedAt"].endswith("Z")
        assert page["data"][1]["reasons"][0]["field"] == "event_type"
        assert '"v2"' in page["data"][1]["payload"] and page["data"][1]["payloadTruncated"] is False
        assert page["nextCursor"] is not None

        rest = client.get(
            "/api/analytics/rejected",
            params={"limit": 2, "cursor": page["nextCursor"]},
            headers=AUTH,
        )
        assert [('"v1"' in x["payload"], '"v0"' in x["payload"]) for x in rest.json()["data"]] == [
            (True, False),
            (False, True),
        ]
        assert rest.json()["nextCursor"] is None

        # the erasure's own refusals, on this engine too
        too_long = client.delete("/api/analytics/users/" + "f" * 129, headers=AUTH)
        assert too_long.status_code == 400 and too_long.json()["error"] == "invalid_fingerprint"
        assert too_long.json()["details"][0]["field"] == "fingerprint"
        longest = client.delete("/api/analytics/users/" + "f" * 128, headers=AUTH)
        assert longest.status_code == 200 and longest.json()["totalRemoved"] == 0

        for params, field in (
            ({"limit": "0"}, "limit"),
            ({"limit": "501"}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"cursor": "-3"}, "cursor"),
            ({"cursor": "abc"}, "cursor"),
        ):
            bad = client.get("/api/analytics/rejected", params=params, headers=AUTH)
            assert bad.status_code == 400, params
            assert (
                bad.json()["error"] == "invalid_parameter"
                and bad.json()["details"][0]["field"] == field
            )


def test_an_erasure_on_one_instance_fences_the_owner_on_the_other(
    serve, postgres_url, redis_url, redis_prefix
):
    def instance():
        return start(
            serve,
            postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
            REVIVATECH_REDIS_KEY_PREFIX=redis_prefix,
            REVIVATECH_PROFILES_FLUSH_INTERVAL="3.0",
        )  # B holds what it stored for up to 3 s

    a = instance()
    b = instance()
    with httpx.Client(timeout=30) as client:
        pid_b = client.get(b.base_url + "/api/analytics/actors", headers=AUTH).json()["pid"]
        wait_for(
            "the partitions shared",
            lambda: all(
                client.get(s.base_url + "/api/analytics/actors", headers=AUTH).json()["stats"][
                    "profiles"
                ]["partitions"]
                == 32
                for s in (a, b)
            ),
        )
        owned_by_b = {
            p
            for (p,) in query(
                postgres_url,
                "SELECT partition FROM profile_partitions WHERE owner LIKE %s",
                (f"%:{pid_b}:%",),
            )
        }
        fp = next(
            f
            for f in (f"remote-{n}-{uuid.uuid4().hex[:6]}" for n in range(10_000))
            if partition_of(f, 64) in owned_by_b
        )
        other = next(
            o
            for o in (f"keep-{n}" for n in range(10_000))
            if partition_of(o, 64) == partition_of(fp, 64)
        )
        # stored by B: B's profiles actor holds them in memory until its next write
        assert (
            client.post(
                b.base_url + BATCH, json={"events": events_of(fp, 2, 2) + events_of(other, 1, 1)}
            ).status_code
            == 200
        )
        before = client.get(b.base_url + "/api/analytics/actors", headers=AUTH).json()["stats"][
            "profiles"
        ]
        answer = client.delete(f"{a.base_url}/api/analytics/users/{fp}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["removed"]["analytics_events"] == 4

        def b_stats():
            return client.get(b.base_url + "/api/analytics/actors", headers=AUTH).json()["stats"][
                "profiles"
            ]

        # B's next write brings the other visitor, never the erased one's events it held
        assert (
            client.post(a.base_url + BATCH, json={"events": events_of(other, 1, 1)}).status_code
            == 200
        )
        wait_for(
            "the other visitor written by B",
            lambda: (
                query(
                    postgres_url,
                    "SELECT total_events FROM user_behavior_profiles WHERE user_fingerprint = %s",
                    (other,),
                )
                == [(2,)]
            ),
        )
        assert rows_of(postgres_url, fp) == dict.fromkeys(VISITOR_TABLES, 0)
        # B found the fence by itself (its lease round or its write) and took the partition again
        wait_for(
            "B took the fenced partition again",
            lambda: b_stats()["partitionsTaken"] > before["partitionsTaken"],
        )
        assert b_stats()["partitionsLost"] > before["partitionsLost"]
        for server in (a, b):
            assert (
                client.get(
                    f"{server.base_url}/api/analytics/insights/{fp}", headers=AUTH
                ).status_code
                == 404
            )

"""Durable acknowledgement survives SIGKILL: the real ``serve`` process on PostgreSQL, under load,
killed without warning, restarted on the same database. Every event it answered as stored is there
exactly once, and posting those events again is answered ``duplicate``.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import trio

from ..helpers import query
from .conftest import ADMIN_TOKEN, service_env

pytestmark = pytest.mark.e2e

EVENTS = "/api/analytics/events"
BATCH = "/api/analytics/events/batch"
LOAD_SECONDS = 1.5
WORKERS = 8
BATCH_SIZE = 20


def new_event(worker: int, n: int) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "user_fingerprint": f"visitor-{worker}-{n % 5}",
        "session_id": f"session-{worker}-{n % 3}",
        "event_type": "page_view",
        "page_url": f"https://revivatech.example/repair/{n}",
        "properties": {"worker": worker, "n": n},
    }


async def test_every_acknowledged_event_survives_sigkill_exactly_once(serve, postgres_url):
    env = service_env(
        REVIVATECH_STORAGE_URL=postgres_url,
        REVIVATECH_INGEST_ACK="durable",
        REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
        REVIVATECH_LIMITS_INGEST_RATE="",  # the flood comes from one address, past the default rate
    )
    server = serve(env=env)

    acknowledged: dict[
        str, dict
    ] = {}  # event_id -> the event, for every id answered stored/duplicate
    unanswered = 0  # events whose request was cut by the kill
    refused = 0  # events answered otherwise (there should be none)
    killing = trio.Event()
    limits = httpx.Limits(max_connections=WORKERS * 2)

    async def worker(client: httpx.AsyncClient, number: int) -> None:
        nonlocal unanswered, refused
        n = 0
        while not killing.is_set():
            n += 1
            if n % 2:
                events = [new_event(number, n)]
                request = client.post(EVENTS, json=events[0])
            else:
                events = [new_event(number, n * 100 + i) for i in range(BATCH_SIZE)]
                request = client.post(BATCH, json={"events": events})
            try:
                answer = await request
            except httpx.TransportError:
                unanswered += len(events)
                continue
            if answer.status_code != 200:
                refused += len(events)
                continue
            body = answer.json()
            if len(events) == 1:
                assert body["eventId"] == events[0]["event_id"]
                acknowledged[body["eventId"]] = events[0]
            else:
                for result, sent in zip(body["results"], events, strict=True):
                    assert result["eventId"] == sent["event_id"]
                    if result["status"] in ("stored", "duplicate"):
                        acknowledged[result["eventId"]] = sent

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=limits) as client:
        async with trio.open_nursery() as nursery:
            for number in range(WORKERS):
                nursery.start_soon(worker, client, number)
            await trio.sleep(LOAD_SECONDS)
            killing.set()
            server.process.kill()  # SIGKILL, requests in flight
            killed_at = time.monotonic()
        assert server.process.wait(5) == -9

    assert refused == 0
    assert len(acknowledged) > 100, (
        f"too little load to mean anything: {len(acknowledged)} events acknowledged"
    )

    restarted = serve(env=env)  # same database; waits for /readyz
    restarted_at = time.monotonic()
    ids = list(acknowledged)
    ((rows, distinct),) = await trio.to_thread.run_sync(
        query,
        postgres_url,
        "SELECT count(*), count(DISTINCT event_id) FROM analytics_events"
        " WHERE event_id = ANY(%s::uuid[])",
        (ids,),
    )
    assert (rows, distinct) == (len(ids), len(ids)), (
        f"{len(ids) - distinct} acknowledged event(s) lost"
    )
    ((total,),) = await trio.to_thread.run_sync(
        query, postgres_url, "SELECT count(*) FROM analytics_events"
    )
    # nothing beyond what was sent: at most the unanswered events were stored in addition
    assert len(ids) <= total <= len(ids) + unanswered

    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=10) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        events = list(acknowledged.values())
        for start in range(0, len(events), 500):  # ingest.max_batch
            chunk = events[start : start + 500]
            answer = await client.post(BATCH, json={"events": chunk})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, len(chunk), 0)
            assert {result["status"] for result in body["results"]} == {"duplicate"}
            assert [result["eventId"] for result in body["results"]] == [
                e["event_id"] for e in chunk
            ]
        single = await client.post(EVENTS, json=events[0])
        assert single.status_code == 200 and single.json()["duplicate"] is True

    ((after,),) = await trio.to_thread.run_sync(
        query, postgres_url, "SELECT count(*) FROM analytics_events"
    )
    assert after == total  # the re-posts stored nothing
    print(
        f"\ndurability: {len(ids)} acknowledged, {unanswered} cut by SIGKILL, {total} stored;"
        f" load {killed_at - started:.2f} s, restart to ready {restarted_at - killed_at:.2f} s,"
        f" total {time.monotonic() - started:.2f} s"
    )

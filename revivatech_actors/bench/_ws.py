"""``--mode ws``: WebSocket fan-out under ingest load.

``clients`` dashboard clients connect to ``/api/analytics/ws`` (``ws_url``, by default the
server of ``url``; another instance's URL measures the way across instances), subscribe to
realtime, and record when each ``realtime_metrics`` message arrives and how far its
``overview.total_events`` got. Meanwhile events are posted at ``rate`` events/s in batches of
``batch_size`` to ``url``, and when each batch's answer (its acknowledgement) arrived is logged.
The clients listen :data:`DRAIN` seconds longer than the load lasts, so the last events
acknowledged can be seen too.

Events are matched to updates by count: the server's ``total_events`` before the load is read
first, and the n-th event acknowledged is taken to be the one that brought the count to
baseline + n (batches are acknowledged nearly in the order they are counted). Two delays, both
from the acknowledgement (the client's clock, at the answer's arrival) to an update's arrival:

- ``event_delay_ms``: per acknowledged batch and client, until the first update showing it —
  how late each event reaches each dashboard;
- ``delay_ms``: per update that shows new events and client, from the acknowledgement of the
  oldest of them — the longest any event in that update waited.

Clients may be spread over ``processes`` processes; the ingest load runs in the first. The
server must see no other traffic during the run, and its realtime window must keep every event
posted: a fresh database (with Redis, a fresh key prefix too), or no events in the
``realtime.window`` seconds before the run. ``window_went_back`` counts updates whose count fell;
``subscribed_late``, clients whose first update came after the load began (the machine could not
connect them all in the time set aside).
"""

from __future__ import annotations

import bisect
import multiprocessing
import random
import time
from typing import Any
from urllib.parse import urlsplit

import attrs
import orjson
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ._errors import BenchError
from ._http import Client, encode_request
from ._payloads import batch_body
from ._report import latency_summary

__all__ = ["WsBenchConfig", "run_ws_bench"]

#: Clients that connect at the same time while the run is set up.
CONNECT_CONCURRENCY = 100
#: Seconds the clients keep listening after the load stopped.
DRAIN = 2.0

#: Updates a client received: (``overview.total_events``, wall-clock time of arrival).
Updates = list[tuple[int, float]]
#: Batches acknowledged: (events acknowledged so far, wall-clock time of the answer).
Acks = list[tuple[int, float]]


@attrs.frozen
class WsBenchConfig:
    """What ``--mode ws`` runs."""

    url: str
    ws_url: str
    clients: int
    rate: float
    batch_size: int
    duration: float
    users: int
    token: str
    processes: int = 1


def _ws_endpoint(url: str, token: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/api/analytics/ws?token={token}"


def update_delays(
    acks: Acks, clients: list[Updates], baseline: int, start_at: float
) -> list[float]:
    """Per update that shows new events (received from ``start_at`` on) and client: seconds
    from the acknowledgement of the oldest event it newly shows to its arrival."""
    counts = [n for n, _ in acks]
    delays = []
    for updates in clients:
        seen = None
        for total, received in updates:
            if seen is not None and total > seen and received >= start_at:
                index = bisect.bisect_left(counts, seen + 1 - baseline)
                if index < len(acks):
                    delays.append(max(0.0, received - acks[index][1]))
            seen = total if seen is None else max(seen, total)
    return delays


def event_delays(acks: Acks, clients: list[Updates], baseline: int) -> tuple[list[float], int]:
    """Per acknowledged batch and client: seconds from the acknowledgement to the arrival of the
    first update showing the batch (0 when one arrived before the answer); and how many (batch,
    client) pairs no update showed. A client's count starts with its first update: batches
    acknowledged before it (the client connected late) are not its to show."""
    delays, missed = [], 0
    for updates in clients:
        if not updates:
            continue
        shown, j = -1, 0  # the highest count shown up to update j
        for acked, at in acks:
            if at < updates[0][1]:
                continue
            while shown < baseline + acked and j < len(updates):
                shown = max(shown, updates[j][0])
                j += 1
            if shown < baseline + acked:
                missed += 1
            else:
                delays.append(max(0.0, updates[j - 1][1] - at))
    return delays, missed


async def _clients(
    config: WsBenchConfig, count: int, start_at: float, stop_at: float
) -> dict[str, Any]:
    """``count`` subscribed clients; returns the updates each received and how many connected,
    failed to connect, or were closed by the server."""
    url = _ws_endpoint(config.ws_url, config.token)
    received_by: list[Updates] = []
    connected, failed, closed = [0], [0], [0]
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)

    async def client() -> None:
        updates: Updates = []
        try:
            async with limiter:
                connection = open_websocket_url(url)
                ws = await connection.__aenter__()
            try:
                await ws.get_message()  # connection_established
                await ws.send_message('{"type":"subscribe_realtime"}')
                connected[0] += 1
                received_by.append(updates)
                # stop_at is wall-clock time: it is shared with the other processes
                with trio.move_on_after(max(0.0, stop_at + DRAIN - time.time())):
                    while True:
                        message = orjson.loads(await ws.get_message())
                        received = time.time()
                        if message.get("type") == "realtime_metrics":
                            updates.append((message["data"]["overview"]["total_events"], received))
            finally:
                await connection.__aexit__(None, None, None)
        except (OSError, HandshakeError, trio.BrokenResourceError):
            failed[0] += 1
        except ConnectionClosed:
            closed[0] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(client)
    return {
        "updates": received_by,
        "connected": connected[0],
        "failed": failed[0],
        "closed": closed[0],
    }


async def _ingest(
    config: WsBenchConfig, start_at: float, stop_at: float
) -> list[tuple[int, float]]:
    """Post batches at the configured rate; return (events acknowledged so far, when) per batch."""
    parts = urlsplit(config.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + "/api/analytics/events/batch"
    acks: list[tuple[int, float]] = []
    acked = [0]
    per_second = config.rate / config.batch_size
    senders = max(1, min(16, int(per_second)))
    interval = senders / per_second

    async def sender(index: int) -> None:
        rng, client = random.Random(), Client(host, port)
        next_send = trio.current_time() + interval * index / senders
        try:
            while True:
                await trio.sleep_until(next_send)
                next_send += interval
                body = batch_body(rng, config.users, config.batch_size)
                response = await client.request(encode_request("POST", parts.netloc, path, body))
                if response.status == 200:
                    acked[0] += orjson.loads(response.body).get("accepted", 0)
                    acks.append((acked[0], time.time()))
        finally:
            await client.aclose()

    await trio.sleep(max(0.0, start_at - time.time()))
    with trio.move_on_after(max(0.0, stop_at - time.time())):
        async with trio.open_nursery() as nursery:
            for index in range(senders):
                nursery.start_soon(sender, index)
    return acks


async def _realtime_total(config: WsBenchConfig) -> int:
    parts = urlsplit(config.url)
    client = Client(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        path = parts.path.rstrip("/") + "/api/analytics/realtime"
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {config.token}\r\n\r\n"
        ).encode()
        response = await client.request(head)
    finally:
        await client.aclose()
    if response.status != 200:
        raise BenchError(
            f"bench: GET /api/analytics/realtime answered {response.status}: "
            f"{response.body[:200]!r}"
        )
    return orjson.loads(response.body)["data"]["overview"]["total_events"]


def _child(
    config: WsBenchConfig, count: int, start_at: float, stop_at: float, results: Any
) -> None:
    try:
        results.put(trio.run(_clients, config, count, start_at, stop_at))
    except BaseException as exc:  # reported by the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


async def _main(
    config: WsBenchConfig, counts: list[int], results: Any, setup: float
) -> dict[str, Any]:
    baseline = await _realtime_total(config)
    start_at = time.time() + setup
    stop_at = start_at + config.duration
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(config, n, start_at, stop_at, results), daemon=True)
        for n in counts[1:]
    ]
    for child in children:
        child.start()
    outcome: dict[str, Any] = {}

    async def own_clients() -> None:
        outcome["clients"] = await _clients(config, counts[0], start_at, stop_at)

    async def load() -> None:
        outcome["acks"] = await _ingest(config, start_at, stop_at)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(own_clients)
        nursery.start_soon(load)
    parts = [outcome["clients"]]
    for _ in children:
        parts.append(await trio.to_thread.run_sync(results.get))
    for child in children:
        child.join(10)
    errors = [p["error"] for p in parts if "error" in p]
    if errors:
        raise BenchError(f"bench: a client process failed: {errors[0]}")
    return {"baseline": baseline, "start_at": start_at, "acks": outcome["acks"], "parts": parts}


def run_ws_bench(config: WsBenchConfig) -> dict[str, Any]:
    """Run the fan-out benchmark; return its figures (delays in ms).

    Raises:
        BenchError: the server's realtime figures cannot be read, or a client process failed.
    """
    processes = max(1, min(config.processes, config.clients))
    counts = [
        config.clients // processes + (i < config.clients % processes) for i in range(processes)
    ]
    # Time for every client to connect and subscribe first; client processes take seconds to
    # start (spawned, they import the bench anew).
    setup = (5.0 if processes > 1 else 1.0) + config.clients / 500
    raw = trio.run(_main, config, counts, multiprocessing.get_context("spawn").Queue(), setup)
    acks = raw["acks"]
    clients = [updates for part in raw["parts"] for updates in part["updates"]]
    delays = update_delays(acks, clients, raw["baseline"], raw["start_at"])
    per_event, missed = event_delays(acks, clients, raw["baseline"])
    went_back = sum(
        1
        for updates in clients
        for (before, _), (after, _) in zip(updates, updates[1:], strict=False)
        if after < before
    )
    late = sum(1 for updates in clients if updates and updates[0][1] > raw["start_at"])
    events = acks[-1][0] if acks else 0
    return {
        "mode": "ws",
        "clients": config.clients,
        "processes": processes,
        "connected": sum(p["connected"] for p in raw["parts"]),
        "failed_to_connect": sum(p["failed"] for p in raw["parts"]),
        "closed_by_server": sum(p["closed"] for p in raw["parts"]),
        "subscribed_late": late,
        "duration_s": config.duration,
        "events": events,
        "events_per_s": round(events / config.duration, 1),
        "updates_received": len(delays),
        "updates_per_client_per_s": round(
            len(delays) / max(1, config.clients) / config.duration, 3
        ),
        "delay_ms": latency_summary([d * 1000 for d in delays]),
        "event_delay_ms": latency_summary([d * 1000 for d in per_event]),
        "events_not_shown": missed,
        "window_went_back": went_back,
    }

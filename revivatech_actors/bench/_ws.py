"""``--mode ws``: WebSocket fan-out under ingest load.

``clients`` dashboard clients connect to ``/api/analytics/ws`` (``ws_url``, by default the
server of ``url``; another instance's URL measures the way across instances), subscribe to
realtime, and record when each ``realtime_metrics`` message arrives and how far its
``overview.total_events`` got. Meanwhile events are posted at ``rate`` events/s in batches of
``batch_size`` to ``url``, and each batch's acknowledgement time is logged.

Delay of an update = when a client received it − when the oldest event it newly reflects was
acknowledged (events are counted in the order they were acknowledged; the server's count before
the load starts is read first). That is the "event reached the dashboard" latency; its p99 over
every client and update is the headline. Clients may be spread over ``processes`` processes;
the ingest load runs in the first. The server must see no other traffic during the run.
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


async def _clients(
    config: WsBenchConfig, count: int, start_at: float, stop_at: float
) -> dict[str, Any]:
    """``count`` subscribed clients; returns their observations ``(first new event, received at)``
    and how many connected, failed to connect, or were closed by the server."""
    url = _ws_endpoint(config.ws_url, config.token)
    observations: list[tuple[int, float]] = []
    connected, failed, closed = [0], [0], [0]
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)

    async def client() -> None:
        try:
            async with limiter:
                connection = open_websocket_url(url)
                ws = await connection.__aenter__()
            try:
                await ws.get_message()  # connection_established
                await ws.send_message('{"type":"subscribe_realtime"}')
                seen = None
                connected[0] += 1
                # stop_at is wall-clock time: it is shared with the other processes
                with trio.move_on_after(max(0.0, stop_at - time.time())):
                    while True:
                        message = orjson.loads(await ws.get_message())
                        received = time.time()
                        if message.get("type") != "realtime_metrics":
                            continue
                        total = message["data"]["overview"]["total_events"]
                        if seen is not None and total > seen and received >= start_at:
                            observations.append((seen + 1, received))
                        seen = total if seen is None else max(seen, total)
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
        "observations": observations,
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
    return {"baseline": baseline, "acks": outcome["acks"], "parts": parts}


def run_ws_bench(config: WsBenchConfig) -> dict[str, Any]:
    """Run the fan-out benchmark; return its figures (delays in ms).

    Raises:
        BenchError: the server's realtime figures cannot be read, or a client process failed.
    """
    processes = max(1, min(config.processes, config.clients))
    counts = [
        config.clients // processes + (i < config.clients % processes) for i in range(processes)
    ]
    setup = 5.0 + config.clients / 500  # time for every client to connect and subscribe first
    raw = trio.run(_main, config, counts, multiprocessing.get_context("spawn").Queue(), setup)
    acked_counts = [n for n, _ in raw["acks"]]
    delays = []
    for part in raw["parts"]:
        for first_new, received in part["observations"]:
            index = bisect.bisect_left(acked_counts, first_new - raw["baseline"])
            if index < len(acked_counts):
                delays.append(max(0.0, received - raw["acks"][index][1]) * 1000)
    events = acked_counts[-1] if acked_counts else 0
    return {
        "mode": "ws",
        "clients": config.clients,
        "processes": processes,
        "connected": sum(p["connected"] for p in raw["parts"]),
        "failed_to_connect": sum(p["failed"] for p in raw["parts"]),
        "closed_by_server": sum(p["closed"] for p in raw["parts"]),
        "duration_s": config.duration,
        "events": events,
        "events_per_s": round(events / config.duration, 1),
        "updates_received": len(delays),
        "updates_per_client_per_s": round(
            len(delays) / max(1, config.clients) / config.duration, 3
        ),
        "delay_ms": latency_summary(delays),
    }

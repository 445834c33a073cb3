"""``--mode single`` and ``--mode batch``: keep-alive connections posting events, in one trio run.

Each of ``connections`` keep-alive HTTP/1.1 connections sends one request at a time to
``POST /api/analytics/events`` (single mode) or ``/api/analytics/events/batch`` (batch mode).

* closed loop (``rate`` 0): a connection sends its next request as soon as the previous answer
  arrived; latency is send-to-answer.
* open loop (``rate`` R): each connection sends on a fixed schedule at its share of ``R``;
  latency is measured from the *scheduled* send time, so a server that falls behind shows the
  queueing delay instead of hiding it (no coordinated omission).

The run lasts ``warmup`` + ``duration`` seconds; only answers that arrive inside the last
``duration`` seconds count, and requests still in flight at the end are dropped. ``requests``
and ``events`` count successful answers (HTTP 200/202) only; latency samples are those of the
successful answers. 503 (overload) is counted apart; other statuses are errors by status code.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from urllib.parse import urlsplit

import attrs
import orjson
import trio

from ._errors import BenchError
from ._http import Client, ProtocolError, Response, encode_request
from ._payloads import batch_body, single_body
from ._report import Figures, Tick

__all__ = ["BenchConfig", "run_load"]

SUCCESS = frozenset({200, 202})


@attrs.frozen
class BenchConfig:
    """What ``--mode single|batch`` runs; ``processes`` is honoured by the command, not here."""

    url: str = "http://127.0.0.1:3011"
    mode: str = "single"
    connections: int = 50
    duration: float = 10.0
    rate: float = 0.0
    batch_size: int = 100
    users: int = 10_000
    token: str | None = None
    warmup: float = 1.0
    processes: int = 1
    payload: str = "core"  # a key of _payloads.PAYLOADS

    def target(self) -> tuple[str, int, str, str]:
        """(host, port, Host header, request path) of the configured mode.

        Raises:
            BenchError: the URL is not ``http://host[:port][/prefix]``.
        """
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise BenchError(
                f"bench: unsupported URL {self.url!r} (only http://host[:port][/prefix])"
            )
        suffix = "/api/analytics/events" + ("/batch" if self.mode == "batch" else "")
        return parts.hostname, parts.port or 80, parts.netloc, parts.path.rstrip("/") + suffix


async def run_load(config: BenchConfig, progress: Callable[[Tick], None] | None = None) -> Figures:
    """Run the load described by ``config`` in this trio run and return the measured figures;
    ``progress`` is called once a second with the counts of that second."""
    host, port, host_header, path = config.target()
    figures = Figures(config.mode, config.connections, config.processes, config.duration)
    live = [0, 0, 0, 0]  # requests, events, 503s, errors since the start (for progress lines)
    start = trio.current_time()
    measure_from, deadline = start + config.warmup, start + config.warmup + config.duration
    interval = config.connections / config.rate if config.rate > 0 else 0.0

    def record(t0: float, t1: float, response: Response | None) -> None:
        counted = measure_from <= t1 <= deadline
        if response is None:
            live[3] += 1
            figures.connection_errors += counted
            return
        status = response.status
        ok, overloaded = status in SUCCESS, status == 503
        n = (config.batch_size if config.mode == "batch" else 1) if ok else 0
        live[0] += ok
        live[1] += n
        live[2] += overloaded
        live[3] += not ok and not overloaded
        figures.answered_total += ok or overloaded
        if not counted:
            return
        figures.status_counts[status] = figures.status_counts.get(status, 0) + 1
        if overloaded:
            figures.overloaded_503 += 1
        elif not ok:
            figures.errors += 1
        else:
            figures.requests += 1
            figures.events += n
            figures.latencies_ms.append((t1 - t0) * 1000.0)
            try:
                answer = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                return
            if not isinstance(answer, dict):
                return
            if config.mode == "batch":
                figures.accepted += int(answer.get("accepted") or 0)
                figures.duplicates += int(answer.get("duplicates") or 0)
                figures.rejected += int(answer.get("rejected") or 0)
            elif answer.get("duplicate"):
                figures.duplicates += 1
            else:
                figures.accepted += 1

    async def connection(index: int) -> None:
        rng = random.Random()
        client = Client(host, port)
        next_send = start + interval * index / config.connections
        try:
            while True:
                if interval:
                    await trio.sleep_until(next_send)
                    t0, next_send = next_send, next_send + interval
                else:
                    t0 = trio.current_time()
                if config.mode == "batch":
                    body = batch_body(rng, config.users, config.batch_size, config.payload)
                else:
                    body = single_body(rng, config.users, config.payload)
                payload = encode_request("POST", host_header, path, body, config.token)
                try:
                    response = await client.request(payload)
                except (OSError, trio.BrokenResourceError, ProtocolError):
                    record(t0, trio.current_time(), None)
                    await trio.sleep(0.1)  # do not spin while the server is down
                    continue
                record(t0, trio.current_time(), response)
        finally:
            await client.aclose()

    async def report(progress: Callable[[Tick], None]) -> None:
        last, second = list(live), 0
        while True:
            second += 1
            await trio.sleep_until(start + second)
            now = list(live)
            r, e, o, x = (a - b for a, b in zip(now, last, strict=True))
            progress((second, r, e, o, x))
            last = now

    with trio.move_on_at(deadline):  # the workers loop forever: the deadline ends the run
        async with trio.open_nursery() as workers:
            if progress is not None:
                workers.start_soon(report, progress)
            for index in range(config.connections):
                workers.start_soon(connection, index)
    return figures

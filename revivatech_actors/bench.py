"""``revivatech-actors bench``: a load generator that drives a running server over HTTP.

What is measured
----------------
Each of ``--connections`` keep-alive HTTP/1.1 connections sends one request at a time to
``POST /api/analytics/events`` (single mode) or ``/api/analytics/events/batch`` (batch mode).

* closed loop (``--rate 0``): a connection sends its next request as soon as the previous answer
  arrived; latency is send-to-answer.
* open loop (``--rate R``): each connection sends on a fixed schedule at its share of ``R``;
  latency is measured from the *scheduled* send time, so a server that falls behind shows the
  queueing delay instead of hiding it (no coordinated omission).

The run lasts ``--warmup`` + ``--duration`` seconds; only answers that arrive inside the last
``--duration`` seconds count, and requests still in flight at the end are dropped. ``requests``
and ``events`` count successful answers (HTTP 200/202) only; latency samples are those of the
successful answers. 503 (overload) is counted apart; other statuses are errors by status code.

The client is deliberately minimal (a hand-written HTTP/1.1 reader on ``trio`` TCP streams, request
bodies built by string templates) because server and load share two cores: every microsecond the
client spends is taken from the server being measured.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import queue as queue_module
import random
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import attrs
import orjson
import trio

__all__ = [
    "PAYLOADS", "BenchConfig", "BenchError", "Client", "Figures", "ProtocolError", "Response", "add_arguments",
    "batch_body", "encode_request", "event_json", "latency_summary", "percentile", "read_response",
    "run", "run_load", "single_body", "tracker_event_json",
]

SUCCESS = frozenset({200, 202})
#: 70% page_view, 20% service_viewed, 5% booking_started, 5% booking_completed.
EVENT_TYPES = ("page_view",) * 14 + ("service_viewed",) * 4 + ("booking_started", "booking_completed")
PAGES = ("", "services", "services/screen-repair", "services/battery", "pricing", "booking", "contact")
SESSIONS_PER_USER = 3
MAX_HEAD = 64 * 1024


class BenchError(Exception):
    """The run cannot start or produced nothing usable; the message names the URL."""


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands, or the connection broke mid-answer."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection; ``idle`` when no byte of an answer had arrived yet."""

    def __init__(self, idle: bool) -> None:
        super().__init__("connection closed before the answer" if idle else "connection closed mid-answer")
        self.idle = idle


# --- request bodies (pure) -------------------------------------------------------------------

def event_json(rng: random.Random, users: int) -> str:
    """One event as a JSON object string, for a user drawn uniformly from ``users`` fingerprints."""
    user = rng.randrange(users)
    return (
        f'{{"user_fingerprint":"bench-user-{user}","session_id":"bench-session-{user}-'
        f'{rng.randrange(SESSIONS_PER_USER)}","event_type":"{rng.choice(EVENT_TYPES)}",'
        f'"page_url":"https://revivatech.example/{rng.choice(PAGES)}","properties":{{"bench":true}}}}'
    )


def tracker_event_json(rng: random.Random, users: int) -> str:
    """One event as the RevivaTech frontend's tracker sends it: its own id, epoch milliseconds,
    event_name, event_data, referrer_url, UTM and device fields."""
    user = rng.randrange(users)
    millis = time.time_ns() // 1_000_000
    return (
        f'{{"id":"{millis}_{rng.getrandbits(64):x}","user_fingerprint":"bench-user-{user}",'
        f'"session_id":"bench-session-{user}-{rng.randrange(SESSIONS_PER_USER)}",'
        f'"event_type":"{rng.choice(EVENT_TYPES)}","event_name":"Bench Event",'
        f'"event_data":{{"bench":true,"element_selector":"#cta"}},'
        f'"page_url":"https://revivatech.example/{rng.choice(PAGES)}?utm_source=google",'
        f'"referrer_url":"https://www.google.com/","timestamp":{millis},"device_type":"mobile",'
        f'"browser":"Chrome","os":"Linux armv8l","screen_resolution":"412x915","viewport_size":"412x839",'
        f'"time_on_page":{rng.randrange(60_000)},"time_since_last_event":{rng.randrange(5_000)},'
        f'"utm_source":"google","utm_medium":"cpc","utm_campaign":"bench"}}'
    )


#: Event bodies by ``--payload``: the core fields only, or what the original tracker sends.
PAYLOADS = {"core": event_json, "tracker": tracker_event_json}


def single_body(rng: random.Random, users: int, payload: str = "core") -> bytes:
    return PAYLOADS[payload](rng, users).encode()


def batch_body(rng: random.Random, users: int, batch_size: int, payload: str = "core") -> bytes:
    make = PAYLOADS[payload]
    return ('{"events":[' + ",".join([make(rng, users) for _ in range(batch_size)]) + "]}").encode()


def encode_request(method: str, host: str, path: str, body: bytes, token: str | None = None) -> bytes:
    """The complete HTTP/1.1 request bytes, ready for one ``send_all``."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return (head + "\r\n").encode("latin-1") + body


# --- HTTP/1.1 answers ------------------------------------------------------------------------

@attrs.frozen
class Response:
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    body: bytes
    close: bool  # the server will close (or has closed) the connection after this answer


async def _fill(receive: Callable[[], Awaitable[bytes]], buf: bytearray, n: int) -> None:
    while len(buf) < n:
        data = await receive()
        if not data:
            raise ConnectionClosed(idle=False)
        buf += data


async def _read_line(receive: Callable[[], Awaitable[bytes]], buf: bytearray) -> bytes:
    while (end := buf.find(b"\r\n")) < 0:
        if len(buf) > MAX_HEAD:
            raise ProtocolError("line too long")
        await _fill(receive, buf, len(buf) + 1)
    line = bytes(buf[:end])
    del buf[: end + 2]
    return line


async def _read_chunked(receive: Callable[[], Awaitable[bytes]], buf: bytearray) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(receive, buf)
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            while await _read_line(receive, buf):  # trailers, up to the empty line
                pass
            return bytes(body)
        await _fill(receive, buf, size + 2)
        if buf[size : size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        body += buf[:size]
        del buf[: size + 2]


async def read_response(receive: Callable[[], Awaitable[bytes]], buf: bytearray) -> Response:
    """Read one answer. ``receive()`` returns the next bytes (``b""`` at EOF); ``buf`` holds bytes
    already received and keeps whatever follows this answer, for the next one on the connection."""
    while True:
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError("answer head larger than 64 KiB")
            data = await receive()
            if not data:
                raise ConnectionClosed(idle=not buf)
            buf += data
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:  # skip interim answers such as 100 Continue
            break
    connection = headers.get(b"connection", b"").lower()
    close = connection == b"close" or (parts[0] == b"HTTP/1.0" and connection != b"keep-alive")
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = await _read_chunked(receive, buf)
    elif (length := headers.get(b"content-length")) is not None:
        if not length.isdigit():
            raise ProtocolError(f"bad Content-Length: {length!r}")
        await _fill(receive, buf, int(length))
        body = bytes(buf[: int(length)])
        del buf[: int(length)]
    elif status in (204, 304):
        body = b""
    else:  # no framing: the body runs until the server closes
        while data := await receive():
            buf += data
        body, close = bytes(buf), True
        buf.clear()
    return Response(status, headers, body, close)


class Client:
    """One keep-alive HTTP/1.1 connection, opened lazily and reopened after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()

    async def _receive(self) -> bytes:
        assert self._stream is not None
        return await self._stream.receive_some(65536)

    async def request(self, payload: bytes) -> Response:
        """Send pre-encoded request bytes and read the answer. A reused connection that turns out
        to be closed before any answer byte is retried once on a fresh one; other failures raise
        ``OSError``, ``trio.BrokenResourceError`` or ``ProtocolError`` after closing the connection."""
        while True:
            fresh = self._stream is None
            if fresh:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._buf.clear()
            try:
                await self._stream.send_all(payload)
                response = await read_response(self._receive, self._buf)
            except (ConnectionClosed, trio.BrokenResourceError) as exc:
                await self.aclose()
                if fresh or (isinstance(exc, ConnectionClosed) and not exc.idle):
                    raise
                continue
            except BaseException:
                await self.aclose()
                raise
            if response.close:
                await self.aclose()
            return response

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with trio.CancelScope(shield=True):
                await stream.aclose()


# --- figures ---------------------------------------------------------------------------------

def percentile(sorted_values: array | list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of already sorted values; 0.0 when there are none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(samples: array | list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    figures = {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)}
    return {k: round(v, 3) for k, v in (figures | {"max": ordered[-1] if ordered else 0.0, "mean": mean}).items()}


@attrs.define
class Figures:
    """Counters and raw latency samples (ms) of the measured window; mergeable across processes."""

    mode: str
    connections: int
    processes: int = 1
    duration_s: float = 0.0
    requests: int = 0
    events: int = 0
    status_counts: dict[int, int] = attrs.field(factory=dict)
    overloaded_503: int = 0
    errors: int = 0
    connection_errors: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    latencies_ms: array = attrs.field(factory=lambda: array("d"))
    #: answers with 2xx or 503 over the whole run, warmup included (decides the exit code).
    answered_total: int = 0

    def merge(self, other: Figures) -> None:
        for name in ("requests", "events", "overloaded_503", "errors", "connection_errors",
                     "accepted", "duplicates", "rejected", "answered_total"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for status, n in other.status_counts.items():
            self.status_counts[status] = self.status_counts.get(status, 0) + n
        self.latencies_ms.extend(other.latencies_ms)
        self.duration_s = max(self.duration_s, other.duration_s)

    def as_dict(self) -> dict[str, object]:
        seconds = self.duration_s or 1.0
        return {
            "mode": self.mode, "connections": self.connections, "processes": self.processes,
            "duration_s": round(self.duration_s, 3), "requests": self.requests, "events": self.events,
            "requests_per_s": round(self.requests / seconds, 1), "events_per_s": round(self.events / seconds, 1),
            "latency_ms": latency_summary(self.latencies_ms),
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "overloaded_503": self.overloaded_503, "errors": self.errors,
            "connection_errors": self.connection_errors,
            "accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
        }


@attrs.frozen
class BenchConfig:
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
    payload: str = "core"  # a key of PAYLOADS

    def target(self) -> tuple[str, int, str, str]:
        """(host, port, Host header, request path) of the configured mode."""
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise BenchError(f"bench: unsupported URL {self.url!r} (only http://host[:port][/prefix])")
        suffix = "/api/analytics/events" + ("/batch" if self.mode == "batch" else "")
        return parts.hostname, parts.port or 80, parts.netloc, parts.path.rstrip("/") + suffix


#: one progress tick: (second, requests, events, 503s, errors) during that second.
Tick = tuple[int, int, int, int, int]


async def run_load(config: BenchConfig, progress: Callable[[Tick], None] | None = None) -> Figures:
    """Run the load described by ``config`` in this trio run and return the measured figures."""
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

    async def report() -> None:
        last, second = list(live), 0
        while True:
            second += 1
            await trio.sleep_until(start + second)
            now = list(live)
            assert progress is not None
            progress((second, *(a - b for a, b in zip(now, last))))
            last = now

    with trio.move_on_at(deadline):  # the workers loop forever: the deadline ends the run
        async with trio.open_nursery() as workers:
            if progress is not None:
                workers.start_soon(report)
            for index in range(config.connections):
                workers.start_soon(connection, index)
    return figures


# --- command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options, for ``python -m revivatech_actors.bench`` and the CLI subcommand."""
    add = parser.add_argument
    add("--url", default="http://127.0.0.1:3011", help="server base URL (default: %(default)s)")
    add("--mode", choices=("single", "batch", "ws"), default="single",
        help="one event or a batch per request; ws: WebSocket fan-out while batches are posted at --rate events/s")
    add("--connections", type=int, default=50, help="keep-alive connections (default: %(default)s)")
    add("--duration", type=float, default=10.0, help="measured seconds (default: %(default)s)")
    add("--rate", type=float, default=0.0, help="total requests/s, paced open-loop; 0 = as fast as possible")
    add("--batch-size", type=int, default=100, help="events per batch request (default: %(default)s)")
    add("--users", type=int, default=10_000, help="distinct user fingerprints (default: %(default)s)")
    add("--payload", choices=tuple(PAYLOADS), default="core",
        help="events of the core fields, or as the original RevivaTech tracker sends them (default: %(default)s)")
    add("--token", default=os.environ.get("REVIVATECH_BENCH_TOKEN"),
        help="admin token sent as Bearer (default: $REVIVATECH_BENCH_TOKEN)")
    add("--warmup", type=float, default=1.0, help="seconds before measuring, not counted (default: %(default)s)")
    add("--processes", type=int, default=1, help="client processes, connections shared out (default: %(default)s)")
    add("--clients", type=int, default=1000, help="ws mode: WebSocket clients subscribed to realtime (default: %(default)s)")
    add("--ws-url", default=None, help="ws mode: server the clients connect to (default: --url; another instance's "
                                       "URL measures the way across instances)")
    add("--json", action="store_true", help="print the figures as one JSON object")
    add("--quiet", action="store_true", help="no progress lines")

def _split(config: BenchConfig) -> list[BenchConfig]:
    """One config per process, connections (and the rate with them) shared out as evenly as possible."""
    n = max(1, min(config.processes, config.connections))
    counts = [config.connections // n + (i < config.connections % n) for i in range(n)]
    return [attrs.evolve(config, connections=c, rate=config.rate * c / config.connections) for c in counts]


def _child(config: BenchConfig, index: int, messages, start) -> None:
    gc.set_threshold(100_000, 50, 1000)
    messages.put(("ready", index, None))
    start.wait()
    try:
        figures = trio.run(run_load, config, lambda tick: messages.put(("tick", index, tick)))
        messages.put(("done", index, figures))
    except BaseException as exc:  # reported by the parent
        messages.put(("error", index, f"{type(exc).__name__}: {exc}"))


def _print_tick(tick: Tick) -> None:
    second, requests, events, overloaded, errors = tick
    print(f"{second:4d}s  {requests:7d} req/s  {events:8d} events/s  503s {overloaded:5d}  errors {errors:5d}",
          file=sys.stderr, flush=True)


def _run_processes(config: BenchConfig, show: Callable[[Tick], None] | None) -> Figures:
    configs = _split(config)
    context = multiprocessing.get_context("spawn")
    messages, start = context.Queue(), context.Event()
    children = [
        context.Process(target=_child, args=(c, i, messages, start), daemon=True) for i, c in enumerate(configs)
    ]
    for child in children:
        child.start()
    figures = Figures(config.mode, config.connections, len(children), config.duration)
    ready, done, ticks = 0, 0, {}
    try:
        while done < len(children):
            try:
                kind, index, payload = messages.get(timeout=config.warmup + config.duration + 30)
            except queue_module.Empty:
                raise BenchError("bench: a client process stopped answering") from None
            if kind == "ready":
                ready += 1
                if ready == len(children):
                    start.set()
            elif kind == "tick":
                acc = ticks.setdefault(payload[0], [0, 0, 0, 0, 0])
                acc[0] += 1
                for k in range(1, 5):
                    acc[k] += payload[k]
                if acc[0] == len(children) and show:
                    show((payload[0], *acc[1:]))
            elif kind == "error":
                raise BenchError(f"bench: client process {index} failed: {payload}")
            else:
                figures.merge(payload)
                done += 1
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
    return figures


async def _probe(host: str, port: int) -> None:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(host, port)
    await stream.aclose()


def _table(d: dict) -> str:
    lat = d["latency_ms"]
    rows = [
        ("mode", f"{d['mode']}"),
        ("connections", f"{d['connections']} in {d['processes']} process(es)"),
        ("measured", f"{d['duration_s']} s"),
        ("requests", f"{d['requests']}  ({d['requests_per_s']}/s)"),
        ("events", f"{d['events']}  ({d['events_per_s']}/s)"),
        ("latency ms", "  ".join(f"{k} {v}" for k, v in lat.items())),
        ("status", "  ".join(f"{k}: {v}" for k, v in d["status_counts"].items()) or "-"),
        ("overloaded 503", d["overloaded_503"]),
        ("errors", f"{d['errors']}  (connection errors {d['connection_errors']})"),
        ("accepted", f"{d['accepted']}  duplicates {d['duplicates']}  rejected {d['rejected']}"),
    ]
    return "\n".join(f"{name:<15} {value}" for name, value in rows)


def _run_ws(args: argparse.Namespace) -> int:
    from .bench_ws import WsBenchConfig, run_ws_bench

    if not args.token:
        print("bench: --mode ws needs the admin token (--token or REVIVATECH_BENCH_TOKEN)", file=sys.stderr)
        return 1
    config = WsBenchConfig(url=args.url.rstrip("/"), ws_url=(args.ws_url or args.url).rstrip("/"),
                           clients=max(1, args.clients), rate=args.rate or 5000.0, batch_size=max(1, args.batch_size),
                           duration=args.duration, users=max(1, args.users), token=args.token,
                           processes=max(1, args.processes))
    try:
        figures = run_ws_bench(config)
    except (BenchError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if figures["updates_received"] == 0:
        print(f"bench: no client received an update ({figures})", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(figures).decode())
    else:
        for name, value in figures.items():
            shown = "  ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
            print(f"{name:<26} {shown}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the figures; return the exit code."""
    if args.mode == "ws":
        return _run_ws(args)
    config = BenchConfig(url=args.url, mode=args.mode, connections=max(1, args.connections),
                         duration=args.duration, rate=args.rate, batch_size=max(1, args.batch_size),
                         users=max(1, args.users), token=args.token or None, warmup=max(0.0, args.warmup),
                         processes=max(1, args.processes), payload=args.payload)
    show = None if args.quiet or args.json else _print_tick
    try:
        host, port, _, _ = config.target()
        try:
            trio.run(_probe, host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise BenchError(f"bench: cannot reach {config.url}: {exc or 'connect timed out'}") from None
        if config.processes > 1:
            figures = _run_processes(config, show)
        else:
            gc.set_threshold(100_000, 50, 1000)  # the client's own GC pauses would show as latency
            figures = trio.run(run_load, config, show)
        if figures.answered_total == 0:
            raise BenchError(f"bench: every request to {config.url} failed "
                             f"({figures.errors} errors, {figures.connection_errors} connection errors; "
                             f"status counts {figures.status_counts})")
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 1
    limited = figures.status_counts.get(429, 0)
    if limited:  # one address floods far past a site's trackers: the figures measure the limiter
        print(f"bench: {limited} answers were 429 rate_limited: the server limits each client address"
              " (limits.ingest_rate); to measure ingest, start it with REVIVATECH_LIMITS_INGEST_RATE=''",
              file=sys.stderr)
    result = figures.as_dict()
    print(orjson.dumps(result).decode() if args.json else _table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="revivatech-actors bench", description="Drive a running server over HTTP; report throughput and latency."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

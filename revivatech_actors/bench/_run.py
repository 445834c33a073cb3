"""The ``bench`` command: its options, the modes it runs, its client processes, its output.

Prints the figures on stdout (a table, or one JSON object with ``--json``), progress lines on
stderr, and returns exit status 1 with one line on stderr when the run cannot start or nothing
was answered.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import queue as queue_module
import sys
from collections.abc import Callable
from typing import Any

import attrs
import orjson
import trio

from ._errors import BenchError
from ._load import BenchConfig, run_load
from ._payloads import PAYLOADS
from ._report import Figures, Tick, print_tick, table, ws_table
from ._ws import WsBenchConfig, run_ws_bench

__all__ = ["add_arguments", "main", "run", "split"]

#: Thresholds of the cyclic garbage collector in the client: its pauses would show as latency.
GC_THRESHOLDS = (100_000, 50, 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options, for ``python -m revivatech_actors.bench`` and the CLI subcommand."""
    add = parser.add_argument
    add("--url", default="http://127.0.0.1:3011", help="server base URL (default: %(default)s)")
    add(
        "--mode",
        choices=("single", "batch", "ws"),
        default="single",
        help="one event or a batch per request; ws: WebSocket fan-out while batches are posted "
        "at --rate events/s",
    )
    add("--connections", type=int, default=50, help="keep-alive connections (default: %(default)s)")
    add("--duration", type=float, default=10.0, help="measured seconds (default: %(default)s)")
    add(
        "--rate",
        type=float,
        default=0.0,
        help="total requests/s, paced open-loop; 0 = as fast as possible",
    )
    add(
        "--batch-size",
        type=int,
        default=100,
        help="events per batch request (default: %(default)s)",
    )
    add(
        "--users",
        type=int,
        default=10_000,
        help="distinct user fingerprints (default: %(default)s)",
    )
    add(
        "--payload",
        choices=tuple(PAYLOADS),
        default="core",
        help="events of the core fields, or as the original RevivaTech tracker sends them "
        "(default: %(default)s)",
    )
    add(
        "--token",
        default=os.environ.get("REVIVATECH_BENCH_TOKEN"),
        help="admin token sent as Bearer (default: $REVIVATECH_BENCH_TOKEN)",
    )
    add(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds before measuring, not counted (default: %(default)s)",
    )
    add(
        "--processes",
        type=int,
        default=1,
        help="client processes, connections shared out (default: %(default)s)",
    )
    add(
        "--clients",
        type=int,
        default=1000,
        help="ws mode: WebSocket clients subscribed to realtime (default: %(default)s)",
    )
    add(
        "--ws-url",
        default=None,
        help="ws mode: server the clients connect to (default: --url; another instance's "
        "URL measures the way across instances)",
    )
    add("--json", action="store_true", help="print the figures as one JSON object")
    add("--quiet", action="store_true", help="no progress lines")


def split(config: BenchConfig) -> list[BenchConfig]:
    """One config per process, connections (and the rate with them) shared out as evenly as
    possible."""
    n = max(1, min(config.processes, config.connections))
    counts = [config.connections // n + (i < config.connections % n) for i in range(n)]
    return [
        attrs.evolve(config, connections=c, rate=config.rate * c / config.connections)
        for c in counts
    ]


def _child(config: BenchConfig, index: int, messages: Any, start: Any) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    messages.put(("ready", index, None))
    start.wait()
    try:
        figures = trio.run(run_load, config, lambda tick: messages.put(("tick", index, tick)))
        messages.put(("done", index, figures))
    except BaseException as exc:  # reported by the parent
        messages.put(("error", index, f"{type(exc).__name__}: {exc}"))


def _run_processes(config: BenchConfig, show: Callable[[Tick], None] | None) -> Figures:
    configs = split(config)
    context = multiprocessing.get_context("spawn")
    messages, start = context.Queue(), context.Event()
    children = [
        context.Process(target=_child, args=(c, i, messages, start), daemon=True)
        for i, c in enumerate(configs)
    ]
    for child in children:
        child.start()
    figures = Figures(config.mode, config.connections, len(children), config.duration)
    ready, done = 0, 0
    ticks: dict[int, list[int]] = {}
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
                    show((payload[0], acc[1], acc[2], acc[3], acc[4]))
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


def _run_ws(args: argparse.Namespace) -> int:
    if not args.token:
        print(
            "bench: --mode ws needs the admin token (--token or REVIVATECH_BENCH_TOKEN)",
            file=sys.stderr,
        )
        return 1
    config = WsBenchConfig(
        url=args.url.rstrip("/"),
        ws_url=(args.ws_url or args.url).rstrip("/"),
        clients=max(1, args.clients),
        rate=args.rate or 5000.0,
        batch_size=max(1, args.batch_size),
        duration=args.duration,
        users=max(1, args.users),
        token=args.token,
        processes=max(1, args.processes),
    )
    try:
        figures = run_ws_bench(config)
    except (BenchError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if figures["updates_received"] == 0:
        print(f"bench: no client received an update ({figures})", file=sys.stderr)
        return 1
    print(orjson.dumps(figures).decode() if args.json else ws_table(figures))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the figures; return the exit code."""
    if args.mode == "ws":
        return _run_ws(args)
    config = BenchConfig(
        url=args.url,
        mode=args.mode,
        connections=max(1, args.connections),
        duration=args.duration,
        rate=args.rate,
        batch_size=max(1, args.batch_size),
        users=max(1, args.users),
        token=args.token or None,
        warmup=max(0.0, args.warmup),
        processes=max(1, args.processes),
        payload=args.payload,
    )
    show = None if args.quiet or args.json else print_tick
    try:
        host, port, _, _ = config.target()
        try:
            trio.run(_probe, host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise BenchError(
                f"bench: cannot reach {config.url}: {exc or 'connect timed out'}"
            ) from None
        if config.processes > 1:
            figures = _run_processes(config, show)
        else:
            gc.set_threshold(*GC_THRESHOLDS)
            figures = trio.run(run_load, config, show)
        if figures.answered_total == 0:
            raise BenchError(
                f"bench: every request to {config.url} failed "
                f"({figures.errors} errors, {figures.connection_errors} connection errors; "
                f"status counts {figures.status_counts})"
            )
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 1
    limited = figures.status_counts.get(429, 0)
    if limited:  # one address floods far past a site's trackers: the figures measure the limiter
        print(
            f"bench: {limited} answers were 429 rate_limited: the server limits each client "
            "address (limits.ingest_rate); to measure ingest, start it with "
            "REVIVATECH_LIMITS_INGEST_RATE=''",
            file=sys.stderr,
        )
    result = figures.as_dict()
    print(orjson.dumps(result).decode() if args.json else table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``revivatech-actors bench [options]``: parse ``argv`` (default: ``sys.argv[1:]``), run."""
    parser = argparse.ArgumentParser(
        prog="revivatech-actors bench",
        description="Drive a running server over HTTP; report throughput and latency.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))

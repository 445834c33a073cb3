"""How long a backtest with learning takes on a large history, and what it costs ingest meanwhile.

usage: python3 scripts/fit_bench.py [--visitors 100000] [--kind one_off] [--rounds 2]
           [--duration 20] [--rate 5000] [--database fitbench] [--skip-load]

1. Generates ``--visitors`` visitors of ``--kind`` (90 days; ``revivatech_actors.bench``'s
   population generator) and stores their events in a fresh PostgreSQL database (127.0.0.1,
   role postgres) through the storage API (not timed; ``--skip-load`` keeps the stored ones).
2. Times ``revivatech-actors evaluate --json`` on it (the fit's process, as the service runs it
   but at normal priority): wall seconds, and the report's own ``seconds``.
3. Starts ``serve`` on that database (Redis off, rate limits off) and, ``--rounds`` times, posts
   batches of 100 at ``--rate`` events/s for ``--duration`` seconds with ``bench --mode batch``:
   once alone and once while ``evaluate --nice 10`` runs (as the service runs it), the order
   alternated. Prints one JSON line per run with the bench's latency figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import psycopg
import trio

from revivatech_actors.bench._population import generate
from revivatech_actors.messages import Event
from revivatech_actors.storage import open_storage

PORT = 3399
TOKEN = "fit-bench-admin-token-0123456789"


def _event(e: dict) -> Event:
    at = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
    return Event(
        event_id=e["event_id"],
        user_fingerprint=e["user_fingerprint"],
        session_id=e["session_id"],
        event_type=e["event_type"],
        timestamp=at,
        received_at=at,
        page_url=e.get("page_url"),
        value=e.get("value"),
        properties={},
    )


async def _load(url: str, visitors: int, kind: str) -> int:
    population = generate(kind, visitors, now=datetime.now(UTC), seed=1)
    stored = 0
    async with open_storage(url) as storage:
        await storage.migrate()
        chunk: list[Event] = []
        for visitor in population.visitors:
            chunk += [_event(e) for e in visitor.events]
            if len(chunk) >= 10_000:
                await storage.commit_batch(chunk)
                stored, chunk = stored + len(chunk), []
        if chunk:
            await storage.commit_batch(chunk)
            stored += len(chunk)
    return stored


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVIVATECH_")}
    env.update(
        REVIVATECH_STORAGE_URL=url,
        REVIVATECH_AUTH_ADMIN_TOKENS=TOKEN,
        REVIVATECH_LIMITS_INGEST_RATE="",
        REVIVATECH_LIMITS_ADMIN_RATE="",
        REVIVATECH_SCORING_LEARN_INTERVAL="86400",  # the service's own backtest stays out of it
    )
    return env


def _evaluate(env: dict[str, str], *nice: str) -> subprocess.Popen:
    command = [sys.executable, "-P", "-m", "revivatech_actors", "evaluate", "--json", *nice]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _bench(env: dict[str, str], duration: float, rate: float) -> dict:
    command = [
        sys.executable, "-P", "-m", "revivatech_actors", "bench",
        "--url", f"http://127.0.0.1:{PORT}", "--mode", "batch", "--batch-size", "100",
        "--connections", "16", "--rate", str(rate / 100), "--duration", str(duration),
        "--warmup", "2", "--json", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--kind", default="one_off")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--database", default="fitbench")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    url = f"postgresql://postgres@127.0.0.1/{args.database}"
    if not args.skip_load:
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {args.database}")
            c.execute(f"CREATE DATABASE {args.database}")
        started = time.monotonic()
        stored = trio.run(_load, url, args.visitors, args.kind)
        print(json.dumps({"loaded": stored, "seconds": round(time.monotonic() - started, 1)}))
    env = _env(url)

    started = time.monotonic()
    fit = _evaluate(env)
    out, err = fit.communicate()
    if fit.returncode:
        sys.exit(f"evaluate failed: {err.decode()}")
    report = json.loads(out)
    print(
        json.dumps(
            {
                "fit": "evaluate",
                "wall_seconds": round(time.monotonic() - started, 1),
                "report_seconds": report["seconds"],
                "visitors": report["visitors"],
                "samples": report["samples"],
                "in_use": {m: c["version"] for m, c in report["models"].items()},
            }
        )
    )

    serve = subprocess.Popen(
        [sys.executable, "-P", "-m", "revivatech_actors", "serve", "--port", str(PORT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        for round_ in range(args.rounds):
            order = ("alone", "fitting") if round_ % 2 == 0 else ("fitting", "alone")
            for case in order:
                fitting = _evaluate(env, "--nice", "10") if case == "fitting" else None
                result = _bench(env, args.duration, args.rate)
                still = fitting is not None and fitting.poll() is None
                if fitting is not None:
                    fitting.wait()
                print(
                    json.dumps(
                        {
                            "round": round_ + 1,
                            "case": case,
                            "fit_ran_throughout": still if fitting is not None else None,
                            "events_per_s": result.get("events_per_s"),
                            "latency_ms": result.get("latency_ms"),
                        }
                    ),
                    flush=True,
                )
    finally:
        serve.terminate()
        serve.wait(30)


if __name__ == "__main__":
    main()

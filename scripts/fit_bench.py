"""How long a backtest with learning takes on a large history, and what it costs ingest meanwhile.

usage: python3 scripts/fit_bench.py [--visitors 100000] [--kind one_off] [--rounds 2]
           [--duration 20] [--rate 5000] [--database fitbench] [--skip-load]

1. Starts ``serve`` on a fresh PostgreSQL database (127.0.0.1, role postgres; Redis off, rate
   limits off), generates ``--visitors`` visitors of ``--kind`` (90 days;
   ``revivatech_actors.bench``'s population generator) and posts their events to it, then waits
   until it has derived and scored them (``--skip-load`` keeps the database as it is), then
   vacuums and analyzes it, so that autovacuum does not run in the middle of a measurement.
2. Times ``revivatech-actors evaluate --json`` on it (the fit's process, as the service runs it
   but at normal priority): wall seconds, and the report's own ``seconds``.
3. ``--rounds`` times, posts batches of 100 at ``--rate`` events/s for ``--duration`` seconds
   with ``bench --mode batch``: once alone and once while ``evaluate --nice 10 --work-share F``
   runs as the service runs it (``F``: ``--work-share``, by default the setting
   ``scoring.learn_work_share``; the fit is stopped when the bench ends), the order alternated.
   Prints one JSON line per run with the bench's latency figures, then the means over the
   rounds.
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
from revivatech_actors.config import load_settings

PORT = 3399
TOKEN = "fit-bench-admin-token-0123456789"
BATCH = "/api/analytics/events/batch"


async def _post_history(visitors: int, kind: str) -> int:
    """The generated history up to now, posted to the running ``serve`` in batches of 500 over
    8 connections: the service derives profiles and scores as it goes, as in production."""
    population = generate(kind, visitors, now=datetime.now(UTC), seed=1)
    events = [e for v in population.visitors for e in v.events]
    send, receive = trio.open_memory_channel[list](0)

    async def poster(channel: trio.MemoryReceiveChannel) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
            async for batch in channel:
                while True:
                    answer = await client.post(
                        "/api/analytics/events/batch", json={"events": batch}
                    )
                    if answer.status_code == 200:
                        break
                    await trio.sleep(0.5)  # 503 while busy: again, same ids

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(poster, receive.clone())
        async with send:
            for start in range(0, len(events), 500):
                await send.send(events[start : start + 500])
    return len(events)


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


def _settle(deadline: float) -> None:
    """Until ``serve`` is ready and has derived and scored what was loaded (a first start replays
    the whole log): the runs then measure ingest, not a catch-up."""
    base, headers = f"http://127.0.0.1:{PORT}", {"Authorization": f"Bearer {TOKEN}"}
    started = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                answer = httpx.get(base + "/api/analytics/actors", headers=headers).json()
                stats = answer["stats"]
                inboxes = [child.get("inbox") or {} for child in answer["data"]["children"]]
                if (
                    stats["profiles"]["unwrittenEvents"] == 0
                    and stats["scorer"]["waiting"] == 0
                    and all(inbox.get("depth", 0) == 0 for inbox in inboxes)
                ):
                    waited = round(time.monotonic() - started, 1)
                    print(json.dumps({"settled_after_seconds": waited}), flush=True)
                    return
        except httpx.TransportError:
            pass
        time.sleep(2)
    sys.exit("serve did not settle in time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--kind", default="one_off")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--database", default="fitbench")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--work-share", type=float, default=load_settings(None).scoring.learn_work_share
    )
    args = parser.parse_args()
    url = f"postgresql://postgres@127.0.0.1/{args.database}"
    if not args.skip_load:
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {args.database}")
    env = _env(url)
    serve = subprocess.Popen(
        [sys.executable, "-P", "-m", "revivatech_actors", "serve", "--port", str(PORT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _settle(time.monotonic() + 120)
        if not args.skip_load:
            started = time.monotonic()
            posted = trio.run(_post_history, args.visitors, args.kind)
            loaded = round(time.monotonic() - started, 1)
            print(json.dumps({"posted": posted, "seconds": loaded}), flush=True)
            _settle(time.monotonic() + 1800)
        with psycopg.connect(url, autocommit=True) as c:
            started = time.monotonic()
            c.execute("VACUUM (ANALYZE)")
            events = c.execute("SELECT count(*) FROM analytics_events").fetchone()
        vacuumed = round(time.monotonic() - started, 1)
        print(json.dumps({"vacuumed_seconds": vacuumed, "stored_events": events[0]}), flush=True)
        _measure(env, args)
    finally:
        serve.terminate()
        serve.wait(60)


def _measure(env: dict[str, str], args: argparse.Namespace) -> None:
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
        ),
        flush=True,
    )
    paced = ("--nice", "10", "--work-share", str(args.work_share))
    runs: dict[str, list[dict[str, float]]] = {"alone": [], "fitting": []}
    for round_ in range(args.rounds):
        order = ("alone", "fitting") if round_ % 2 == 0 else ("fitting", "alone")
        for case in order:
            fitting = _evaluate(env, *paced) if case == "fitting" else None
            result = _bench(env, args.duration, args.rate)
            if fitting is not None:
                if fitting.poll() is not None:
                    sys.exit("the fit ended before the bench: give it more visitors")
                fitting.terminate()
                fitting.wait()
            runs[case].append(result["latency_ms"])
            line = {"round": round_ + 1, "case": case, "events_per_s": result["events_per_s"]}
            print(json.dumps({**line, "latency_ms": result["latency_ms"]}), flush=True)
    means = {
        case: {key: round(sum(r[key] for r in rs) / len(rs), 3) for key in rs[0]}
        for case, rs in runs.items()
    }
    change = {
        key: f"{means['fitting'][key] / means['alone'][key] - 1:+.1%}" for key in means["alone"]
    }
    print(json.dumps({"work_share": args.work_share, "means": means, "change": change}))


if __name__ == "__main__":
    main()

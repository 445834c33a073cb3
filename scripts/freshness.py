"""Freshness: how long after a durable acknowledgement a visitor's insights show the event.

For each sample: read the visitor's insights, post one event (``ingest.ack = durable``: the 200
means it is committed), then read the insights every ``--poll`` seconds until ``totalEvents``
grew; the time from the 200 to that read is the sample. Run it alone, or beside a load
(``revivatech-actors bench ...`` in another shell) to see freshness under load.

    python scripts/freshness.py --url http://127.0.0.1:3011 --token $ADMIN_TOKEN --samples 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

import httpx
import trio


def percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return sorted_values[index]


async def sample(client: httpx.AsyncClient, visitor: str, poll: float, deadline: float) -> float:
    insights = f"/api/analytics/insights/{visitor}"
    before = await client.get(insights)
    seen = before.json()["data"]["profile"]["totalEvents"] if before.status_code == 200 else 0
    event = {
        "user_fingerprint": visitor,
        "session_id": f"{visitor}-s",
        "event_type": "page_view",
        "event_id": str(uuid.uuid4()),
        "page_url": "https://revivatech.example/freshness",
    }
    answer = await client.post("/api/analytics/events", json=event)
    acked = time.perf_counter()
    if answer.status_code != 200:
        raise RuntimeError(f"event not acknowledged: {answer.status_code} {answer.text}")
    while True:
        now = await client.get(insights)
        if now.status_code == 200 and now.json()["data"]["profile"]["totalEvents"] > seen:
            return time.perf_counter() - acked
        if time.perf_counter() - acked > deadline:
            raise RuntimeError(f"{visitor}: not visible after {deadline} s")
        await trio.sleep(poll)


async def main(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"}
    results: list[float] = []
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=30) as client:

        async def worker(index: int) -> None:
            for n in range(index, args.samples, args.concurrency):
                results.append(
                    await sample(client, f"fresh-{n % args.visitors}", args.poll, args.deadline)
                )

        async with trio.open_nursery() as nursery:
            for index in range(args.concurrency):
                nursery.start_soon(worker, index)
    values = sorted(results)
    ms = [v * 1000 for v in values]
    print(
        f"samples {len(ms)}  ack→visible ms: p50 {percentile(ms, 0.5):.1f}  "
        f"p95 {percentile(ms, 0.95):.1f}  p99 {percentile(ms, 0.99):.1f}  max {ms[-1]:.1f}  "
        f"mean {statistics.fmean(ms):.1f}  (poll {args.poll * 1000:g} ms)"
    )
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3011")
    parser.add_argument("--token", required=True, help="an admin token (auth.admin_tokens)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--visitors", type=int, default=50, help="distinct visitors sampled in turn"
    )
    parser.add_argument("--poll", type=float, default=0.002, help="seconds between insights reads")
    parser.add_argument(
        "--deadline", type=float, default=30.0, help="give up on a sample after this many seconds"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(main, parse(sys.argv[1:])))

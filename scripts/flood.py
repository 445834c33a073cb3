"""Flood a running server and watch it: resident memory and health latency, four times a second.

    revivatech-actors serve &                      # the server under test
    python scripts/flood.py --pid $! --duration 300 -- \
        --mode batch --batch-size 100 --connections 200

Runs ``revivatech-actors bench`` (the arguments after ``--``) for ``--duration`` seconds against
``--url`` while sampling, every ``--interval`` seconds, the server's RSS (from /proc) and the time
``GET /api/analytics/health`` takes.
Prints the bench figures, then RSS first/max/last and health latency p50/p99/max. Not a test:
a script for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import httpx


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the server process to watch")
    parser.add_argument("--url", default="http://127.0.0.1:3011")
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument(
        "bench_args", nargs=argparse.REMAINDER, help="-- then arguments for revivatech-actors bench"
    )
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    command = [
        "revivatech-actors",
        "bench",
        "--url",
        args.url,
        "--duration",
        str(args.duration),
        "--json",
        "--quiet",
        *bench_args,
    ]
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    rss: list[tuple[float, float]] = []
    health_ms: list[float] = []
    health_status: dict[int, int] = {}
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:
        while bench.poll() is None:
            rss.append((time.monotonic() - started, rss_mb(args.pid)))
            before = time.perf_counter()
            try:
                status = client.get(args.url + "/api/analytics/health").status_code
            except httpx.HTTPError:
                status = 0
            health_ms.append((time.perf_counter() - before) * 1000)
            health_status[status] = health_status.get(status, 0) + 1
            time.sleep(max(0.0, args.interval - (time.perf_counter() - before)))
    figures = json.loads(bench.stdout.read())
    health_ms.sort()
    summary = {
        "bench": figures,
        "rss_mb": {
            "first": round(rss[0][1], 1),
            "max": round(max(mb for _, mb in rss), 1),
            "last": round(rss[-1][1], 1),
            "samples": len(rss),
            "by_minute": [
                round(next(mb for at, mb in rss if at >= minute * 60), 1)
                for minute in range(int(rss[-1][0] // 60) + 1)
            ],
        },
        "health_ms": {
            "p50": round(health_ms[len(health_ms) // 2], 1),
            "p99": round(health_ms[min(len(health_ms) - 1, int(len(health_ms) * 0.99))], 1),
            "max": round(health_ms[-1], 1),
            "status_counts": health_status,
        },
    }
    json.dump(summary, sys.stdout, indent=2)
    print()
    return bench.returncode


if __name__ == "__main__":
    sys.exit(main())

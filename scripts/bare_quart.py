"""The baseline for single-event throughput: a bare QuartTrio handler that only parses the JSON
body and answers 202, on Hypercorn's trio worker in one process — the ceiling the real ingest path
is compared with (issue: at least 75 % of it, measured in the same run).

    python scripts/bare_quart.py --port 3998 [--gc-tuned] [--reuse-port]
    revivatech-actors bench --url http://127.0.0.1:3998 --mode single --connections 50 --duration 30

With ``--reuse-port`` the socket is shared (SO_REUSEPORT) as the workers of ``serve --workers N``
share theirs: start the script N times on one port for the N-process reference.

Not a test: a measurement script for docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.post("/api/analytics/events")
async def post_event():
    data = orjson.loads(await request.get_data(cache=False))
    return Response(
        orjson.dumps({"success": True, "echo": len(data)}),
        status=202,
        content_type="application/json",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3998)
    parser.add_argument(
        "--gc-tuned", action="store_true", help="use the GC thresholds `serve` uses"
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, as a worker of `serve --workers N` does",
    )
    args = parser.parse_args()
    if args.gc_tuned:
        from revivatech_actors.cli import GC_THRESHOLDS

        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    if args.reuse_port:
        from revivatech_actors.web.server import reuse_port_listener

        config.bind = [f"fd://{reuse_port_listener('127.0.0.1', args.port).detach()}"]
    config.backlog = 2048
    config.accesslog = None
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()

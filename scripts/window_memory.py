"""Memory of the realtime window (``domain.realtime.RealtimeWindow``) under a flood, with the
event strings as validation makes them (interned) or as fresh copies per event.

Feeds ``--rate`` events a second (simulated time, as fast as the CPU allows) from ``--users``
visitors with three sessions each, the way ``revivatech-actors bench`` spreads them, and prints
the process's resident size every 20 simulated seconds. The window keeps, per 10-second bucket,
the visitors and sessions that had it as their newest: with copies, each bucket holds its own
copy of every string, for as long as the window spans.

    python scripts/window_memory.py --seconds 200            # interned, as the service does
    python scripts/window_memory.py --seconds 200 --copies   # a fresh string per event
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime

from revivatech_actors.domain.realtime import RealtimeWindow
from revivatech_actors.domain.realtime import _StoredEvent as StoredEvent


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=200, help="simulated seconds of flood")
    parser.add_argument("--rate", type=int, default=20_000, help="events per simulated second")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=300, help="realtime.window in seconds")
    parser.add_argument(
        "--copies", action="store_true", help="a fresh string per event, not interned"
    )
    args = parser.parse_args()
    window = RealtimeWindow(
        args.window, page_types=frozenset({"page_view"}), conversion_types=frozenset()
    )
    rng = random.Random(1)
    start = time.time()
    for second in range(args.seconds + 1):
        now = start + second
        stamp = datetime.fromtimestamp(now, UTC)
        events = []
        for _ in range(args.rate):
            user = rng.randrange(args.users)
            # joined at run time, so every event has its own string objects, as JSON decoding gives
            fingerprint = "".join(("bench-user-", str(user)))
            session = "".join(("bench-session-", str(user), "-", str(rng.randrange(3))))
            if not args.copies:
                fingerprint, session = sys.intern(fingerprint), sys.intern(session)
            events.append(
                StoredEvent(fingerprint, session, "page_view", "https://revivatech.example/", stamp)
            )
        window.add_events(events, now)
        if second % 20 == 0:
            figures = window.figures(now)
            print(
                f"t={second:4d} s  RSS {rss_mb():6.0f} MB  visitors {figures.active_users:7d}  "
                f"sessions {figures.active_sessions:7d}",
                flush=True,
            )


if __name__ == "__main__":
    main()

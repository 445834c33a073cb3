"""The events' flush under GIL contention: ``write_batch`` of large batches on PostgreSQL, as one
statement (events alone) and through COPY in a transaction (a batch with a dead letter), each
with and without a busy Python thread beside it.

In the service the event loop's thread keeps the GIL busy while the batcher's worker thread
writes; each time that thread comes back from the network it waits for the GIL again (up to the
switch interval, 5 ms). The busy thread here stands for the event loop, so the figures show what
the round trips of a flush cost under load (docs/architecture.md, "Events' commit").

    python scripts/flush_gil.py --url postgresql://postgres@127.0.0.1/flush_bench --batches 40

The database is migrated if needed and its ``analytics_events`` grows by every batch written.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from datetime import UTC, datetime

import trio

from revivatech_actors.ids import new_event_ids
from revivatech_actors.messages import DeadLetter, Event
from revivatech_actors.storage import open_storage


def batch(size: int, users: int) -> list[Event]:
    now = datetime.now(UTC)
    return [
        Event(
            event_id,
            f"bench-user-{u}",
            f"bench-session-{u}-1",
            "page_view",
            now,
            now,
            page_url="https://revivatech.example/services",
            properties={"bench": True},
        )
        for event_id, u in zip(
            new_event_ids(size), (random.randrange(users) for _ in range(size)), strict=True
        )
    ]


class BusyThread:
    """A Python thread that holds the GIL whenever it may, while ``on`` is set."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, name="busy")

    def _spin(self) -> None:
        while not self.stop.is_set():
            if not self.on.wait(0.05):
                continue
            total = 0
            for i in range(10_000):
                total += i


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/flush_bench")
    parser.add_argument("--batch-size", type=int, default=1600)
    parser.add_argument("--batches", type=int, default=40, help="batches per measurement")
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    busy = BusyThread()
    busy.thread.start()
    try:
        async with open_storage(args.url) as storage:
            await storage.migrate()
            await storage.write_batch(batch(args.batch_size, args.users))  # connect, warm up
            for way in ("one statement", "COPY + transaction"):
                for contended in (False, True):
                    batches = [batch(args.batch_size, args.users) for _ in range(args.batches)]
                    if contended:
                        busy.on.set()
                    began = time.perf_counter()
                    for events in batches:
                        letters = []
                        if way != "one statement":
                            letters = [
                                DeadLetter(
                                    datetime.now(UTC),
                                    "validation",
                                    ({"field": "", "message": "bench"},),
                                    "{}",
                                    letter_id=str(uuid.uuid4()),
                                )
                            ]
                        await storage.write_batch(events, letters)
                    took = (time.perf_counter() - began) / len(batches)
                    busy.on.clear()
                    print(
                        f"{way:20s} busy thread: {'yes' if contended else 'no ':3s}  "
                        f"{1000 * took:6.1f} ms per {args.batch_size}-event flush "
                        f"({1e6 * took / args.batch_size:5.1f} µs/event)",
                        flush=True,
                    )
    finally:
        busy.stop.set()
        busy.thread.join()


if __name__ == "__main__":
    trio.run(main)

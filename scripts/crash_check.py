#!/usr/bin/env python3
"""Crash check for issue 15: do visitor profiles equal the stored events after a SIGKILL?

Events are durable: every acknowledged event is in ``analytics_events`` after a crash. This
script checks the state derived from them. It runs a real ``python -m revivatech_actors serve``
on a PostgreSQL database and, ``--kills`` times:

1. floods it over HTTP, ``--mode batch`` (requests of ``--batch-size`` = 100 events over 12
   connections) or ``--mode single`` (one event per request over 32 connections). The events
   belong to ``--visitors`` = 200 new visitors, four sessions each; about 73 % are page views,
   15 % ``booking_started``, 12 % ``booking_completed`` with a value;
2. SIGKILLs the process at a random moment between ``--min-seconds`` and ``--seconds`` into the
   flood, requests in flight;
3. starts a new ``serve`` on the same database and waits for ``/readyz``;
4. from that moment on, every 0.1 s, reads the database directly (psycopg, not the service):
   ``stored`` = ``count(*)`` of ``analytics_events`` and ``counted`` = ``sum(total_events)`` of
   ``user_behavior_profiles``. The kill *converges* at the first moment when ``counted ==
   stored`` and the sampled visitors' profiles equal a recount of their stored events: events,
   distinct sessions, bookings started, bookings completed, booking value (float tolerance). The
   sample is ``--sample`` = 20 visitors: half from this kill's flood, half from the whole
   database. It gives up ``--timeout`` = 20 s after readiness: the issue's bound.

The restarted ``serve`` is the one flooded by the next kill, so the database accumulates: kill
*k* restarts on the events and profiles of all the kills before it (a kill that did not converge
leaves its gap for the later ones to close, or to report again). ``--fresh`` gives each kill a
new database instead.

Output, per kill (its first line wrapped here)::

    kill 3/10 [batch] flooded 2.41 s over 12 connections: 45,300 acked, 1,200 cut by the kill,
      0 overloaded (503)
      restart ready 0.88 s after the kill; stored events 146,500
      profiles' sum at ready+t: 0.0 s 130,112 | 0.4 s 139,020 | 1.3 s 146,500
      converged in 1.31 s; recount of 20 sampled visitors: all equal
      38 profile(s) written but not scored at ready; every profile scored at ready+2.10 s

``acked`` are events answered ``stored``; ``cut`` those whose request was in flight at the kill
(each may or may not be stored); ``stored events`` is what the database holds (all kills so far).
The ``profiles' sum`` line lists the sum of the profiles' event counts at each moment it changed,
in seconds after readiness (thinned to about a dozen entries). ``converged in`` is the figure
issue 15 bounds at 20 s. A kill that fails says ``NOT CONVERGED``, how many events the profiles
miss (negative: counted twice) and which sampled visitors differ in what. A summary table and
min/median/max convergence time end the run. After converging, each kill also waits until every
profile is scored (``version = scored_version``, migration 0008): the line after ``converged in``
gives the profiles written but not scored at readiness and when none was left; a kill whose
profiles are not all scored within ``--timeout`` fails too. In the summary, ``at ready`` is the
profiles' sum at the first reading after readiness and ``missing`` is stored minus counted at the
end of the kill's check (0 when it converged; when accumulating, a later kill's figure includes
the earlier kills' gaps, and its NOT CONVERGED line says how much of it is new).

``--signal TERM`` is a control of the check itself: a graceful stop writes every profile before
exiting, so every kill must converge at once, on today's code as on the fix.

Exit status: 0 when every kill converged within ``--timeout``; 1 when any did not; 2 when the
check could not run (database, serve that does not start, too little load).

The database named by ``--storage-url`` is created by the script and dropped at the end (keep it
with ``--keep``). An existing database is refused unless ``--recreate`` is given, which drops it
first: never point this at data you want. The ``serve`` processes run the package in ``--code``
(default: the repository this script is in), put first on their ``PYTHONPATH``; ``--env
KEY=VALUE`` adds settings (e.g. ``--env REVIVATECH_PROFILES_FLUSH_INTERVAL=0.2``), otherwise they
run on the defaults. Their logs go to ``--log-dir`` (default: a temporary folder, printed).

Example::

    python3 scripts/crash_check.py \\
        --storage-url postgresql://postgres@127.0.0.1:5432/rvt_crash_check \\
        --kills 10 --mode batch
    python3 scripts/crash_check.py --kills 10 --mode single --recreate
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/rvt_crash_check"
CONNECTIONS = {"batch": 12, "single": 32}
POLL = 0.1

TOTALS_SQL = """
SELECT (SELECT count(*) FROM analytics_events),
       (SELECT coalesce(sum(total_events), 0) FROM user_behavior_profiles)
"""
RECOUNT_SQL = """
SELECT user_fingerprint, count(*), count(DISTINCT session_id),
       count(*) FILTER (WHERE event_type = 'booking_started'),
       count(*) FILTER (WHERE event_type = 'booking_completed'),
       coalesce(sum(value) FILTER (WHERE event_type = 'booking_completed'), 0)
FROM analytics_events WHERE user_fingerprint = ANY(%s) GROUP BY user_fingerprint
"""
PROFILES_SQL = """
SELECT user_fingerprint, total_events, total_sessions, bookings_started, total_bookings, total_value
FROM user_behavior_profiles WHERE user_fingerprint = ANY(%s)
"""
FIELDS = ("total_events", "total_sessions", "bookings_started", "total_bookings", "total_value")


class SetupError(Exception):
    """The check cannot run (exit 2)."""


# ------------------------------------------------------------------------------------- database


def admin_conninfo(url: str) -> tuple[str, str]:
    """(the server's ``postgres`` database to create and drop from, the database's name)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if not url.startswith(("postgresql://", "postgres://")):
        raise SetupError(
            f"--storage-url must be a postgresql:// URL (PostgreSQL only), got {url!r}"
        )
    name = conninfo_to_dict(url).get("dbname")
    if not name or name == "postgres":
        raise SetupError(
            f"--storage-url must name a database of its own (it is created and dropped): {url!r}"
        )
    return make_conninfo(url, dbname="postgres"), name


def database_exists(url: str) -> bool:
    import psycopg

    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def create_database(url: str, *, drop_first: bool) -> None:
    import psycopg

    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if drop_first:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def totals(url: str) -> tuple[int, int]:
    ((stored, counted),) = query(url, TOTALS_SQL)
    return int(stored), int(counted)


def recount_mismatches(url: str, fingerprints: list[str]) -> list[str]:
    """One line per sampled visitor whose profile differs from the recount of its stored events."""
    recounted = {row[0]: row[1:] for row in query(url, RECOUNT_SQL, (fingerprints,))}
    profiled = {row[0]: row[1:] for row in query(url, PROFILES_SQL, (fingerprints,))}
    lines = []
    for fp in fingerprints:
        want, got = recounted.get(fp, (0, 0, 0, 0, 0.0)), profiled.get(fp)
        if got is None:
            lines.append(f"{fp}: no profile row (recount {dict(zip(FIELDS, want, strict=True))})")
            continue
        diffs = []
        for field, w, g in zip(FIELDS, want, got, strict=True):
            same = (
                math.isclose(float(w), float(g), rel_tol=1e-9, abs_tol=1e-6)
                if field == "total_value"
                else int(w) == int(g)
            )
            if not same:
                diffs.append(
                    f"{field} {g:.2f} (recount {w:.2f})"
                    if field == "total_value"
                    else f"{field} {g} (recount {w})"
                )
        if diffs:
            lines.append(f"{fp}: " + ", ".join(diffs))
    return lines


# ---------------------------------------------------------------------------------------- serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """``python -m revivatech_actors serve`` on a free port, its output in a log file."""

    def __init__(self, env: dict[str, str], log_dir: Path, label: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"serve-{label}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        command = [sys.executable, "-m", "revivatech_actors", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=log_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(
                    f"serve exited with {self.process.returncode} before it was ready; "
                    f"see {self.log_path}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise SetupError(f"serve was not ready within {timeout:g} s; see {self.log_path}")

    def kill(self, signum: int = signal.SIGKILL) -> int:
        self.process.send_signal(signum)
        return self.process.wait(40)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


# ---------------------------------------------------------------------------------------- flood


def flood_event(rng: random.Random, visitors: list[str]) -> dict:
    fp = rng.choice(visitors)
    event = {
        "event_id": str(uuid.uuid4()),
        "user_fingerprint": fp,
        "session_id": f"{fp}/s{rng.randrange(4)}",
        "event_type": "page_view",
        "page_url": f"https://revivatech.example/repair/{rng.randrange(50)}",
    }
    draw = rng.random()
    if draw < 0.15:
        event["event_type"] = "booking_started"
    elif draw < 0.27:
        event["event_type"] = "booking_completed"
        event["value"] = round(rng.uniform(20, 400), 2)
    return event


async def flood_then_kill(
    server: Serve,
    mode: str,
    connections: int,
    batch_size: int,
    visitors: list[str],
    kill_after: float,
    seed: int,
    signum: int,
) -> tuple[Counter, int]:
    """Flood ``server`` and send it ``signum`` ``kill_after`` s in: (event tallies, the exit
    code)."""
    import orjson
    import trio

    from revivatech_actors.bench import Client, ProtocolError, encode_request

    tally: Counter = Counter()
    stop = trio.Event()
    host = f"127.0.0.1:{server.port}"

    async def worker(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        client = Client("127.0.0.1", server.port)
        try:
            while not stop.is_set():
                if mode == "batch":
                    events = [flood_event(rng, visitors) for _ in range(batch_size)]
                    request = encode_request(
                        "POST",
                        host,
                        "/api/analytics/events/batch",
                        orjson.dumps({"events": events}),
                    )
                else:
                    events = [flood_event(rng, visitors)]
                    request = encode_request(
                        "POST", host, "/api/analytics/events", orjson.dumps(events[0])
                    )
                try:
                    answer = await client.request(request)
                except (OSError, trio.BrokenResourceError, ProtocolError):
                    tally["cut"] += len(events)
                    continue
                if answer.status == 503:
                    tally["overloaded"] += len(events)
                elif answer.status != 200:
                    tally[f"HTTP {answer.status}"] += len(events)
                elif mode == "batch":
                    tally.update(
                        result["status"] for result in orjson.loads(answer.body)["results"]
                    )
                else:
                    tally[
                        "duplicate" if orjson.loads(answer.body).get("duplicate") else "stored"
                    ] += 1
        finally:
            await client.aclose()

    async with trio.open_nursery() as nursery:
        for number in range(connections):
            nursery.start_soon(worker, number)
        await trio.sleep(kill_after)
        stop.set()
        code = await trio.to_thread.run_sync(server.kill, signum)
    return tally, code


# ---------------------------------------------------------------------------------------- check


def thin(seen: list[tuple[float, int]], most: int = 12) -> list[tuple[float, int]]:
    if len(seen) <= most:
        return seen
    step = (len(seen) - 1) / (most - 1)
    return [seen[round(i * step)] for i in range(most)]


def unscored(url: str) -> int:
    """Profiles written since their scores were last recorded (migration 0008)."""
    ((count,),) = query(
        url, "SELECT count(*) FROM user_behavior_profiles WHERE version > scored_version"
    )
    return int(count)


def watch(url: str, sample: list[str], since: float, timeout: float) -> dict:
    """Poll the database from ``since`` until the profiles equal the stored events (sum and
    sampled recount), then until every profile is scored, or ``timeout`` s have passed."""
    seen: list[tuple[float, int]] = []
    converged = scored = None
    mismatches: list[str] = []
    unscored_at_ready = unscored(url)
    while True:
        stored, counted = totals(url)
        now = time.monotonic()
        if not seen or seen[-1][1] != counted:
            seen.append((now - since, counted))
        if counted == stored:
            mismatches = recount_mismatches(url, sample)
            if not mismatches:
                converged = now - since
                break
        if now - since >= timeout:
            mismatches = recount_mismatches(url, sample)
            break
        time.sleep(POLL)
    if seen[-1][0] < now - since:
        seen.append((now - since, counted))
    while converged is not None:
        if unscored(url) == 0:
            scored = time.monotonic() - since
            break
        if time.monotonic() - since >= timeout:
            break
        time.sleep(POLL)
    return {
        "stored": stored,
        "counted": counted,
        "seen": seen,
        "converged": converged,
        "mismatches": mismatches,
        "unscored_at_ready": unscored_at_ready,
        "scored": scored,
    }


def pick_sample(url: str, rng: random.Random, flooded: list[str], size: int) -> list[str]:
    """Half of ``size`` from the visitors of this kill's flood, the rest from the whole database."""
    everyone = [
        fp for (fp,) in query(url, "SELECT DISTINCT user_fingerprint FROM analytics_events")
    ]
    ours = sorted(set(everyone) & set(flooded))
    sample = rng.sample(ours, min(size // 2, len(ours)))
    others = sorted(set(everyone) - set(sample))
    return sample + rng.sample(others, min(size - len(sample), len(others)))


def run(args: argparse.Namespace) -> int:
    import trio

    sys.path.insert(0, str(args.code))
    rng = random.Random(args.seed)
    env = {key: value for key, value in os.environ.items() if not key.startswith("REVIVATECH_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(args.code), os.environ.get("PYTHONPATH", "")) if p
    )
    env["REVIVATECH_STORAGE_URL"] = args.storage_url
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("REVIVATECH_"):
            raise SetupError(f"--env takes REVIVATECH_KEY=VALUE, got {item!r}")
        env[key] = value
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="crash-check-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    signum = getattr(signal, f"SIG{args.signal}")
    modes = ["batch", "single"] if args.mode == "both" else [args.mode]
    connections = {mode: args.connections or CONNECTIONS[mode] for mode in modes}

    if database_exists(args.storage_url) and not args.recreate:
        raise SetupError(f"the database of {args.storage_url} exists; --recreate drops it first")
    create_database(args.storage_url, drop_first=True)
    extra = " ".join(args.env) or "none"
    print(
        f"crash check: {args.kills} kill(s) per mode of {', '.join(modes)}; "
        f"database {args.storage_url}"
        f" ({'fresh per kill' if args.fresh else 'accumulating'}); code {args.code}; "
        f"extra settings: {extra};"
        f" seed {args.seed}; signal SIG{args.signal}; serve logs in {log_dir}",
        flush=True,
    )

    rows = []
    gap_before = 0  # events the profiles missed after the previous kill's check
    server: Serve | None = None
    try:
        number = 0
        for mode in modes:
            for kill in range(1, args.kills + 1):
                number += 1
                if server is None:
                    server = Serve(env, log_dir, f"{number:02d}-start")
                    server.wait_ready()
                kill_after = rng.uniform(args.min_seconds, args.seconds)
                visitors = [
                    f"fp-k{number:02d}-{uuid.uuid4().hex[:6]}-{n:03d}" for n in range(args.visitors)
                ]
                tally, code = trio.run(
                    flood_then_kill,
                    server,
                    mode,
                    connections[mode],
                    args.batch_size,
                    visitors,
                    kill_after,
                    rng.randrange(1 << 30),
                    signum,
                )
                killed_at = time.monotonic()
                server.close()
                acked = tally.get("stored", 0)
                print(
                    f"kill {kill}/{args.kills} [{mode}] flooded {kill_after:.2f} s over"
                    f" {connections[mode]} connections: {acked:,} acked, "
                    f"{tally.get('cut', 0):,} cut by the kill,"
                    f" {tally.get('overloaded', 0):,} overloaded (503)"
                    + "".join(
                        f", {n:,} {k}"
                        for k, n in tally.items()
                        if k not in ("stored", "cut", "overloaded")
                    )
                    + f"; exit {code}",
                    flush=True,
                )
                if acked == 0:
                    raise SetupError(
                        f"no event was acknowledged before the kill; see {server.log_path}"
                    )
                server = Serve(env, log_dir, f"{number:02d}-restart")
                server.wait_ready()
                ready_at = time.monotonic()
                sample = pick_sample(args.storage_url, rng, visitors, args.sample)
                result = watch(args.storage_url, sample, ready_at, args.timeout)
                print(
                    f"  restart ready {ready_at - killed_at:.2f} s after the kill;"
                    f" stored events {result['stored']:,}"
                )
                print(
                    "  profiles' sum at ready+t: "
                    + " | ".join(f"{t:.1f} s {n:,}" for t, n in thin(result["seen"]))
                )
                if result["converged"] is not None:
                    print(
                        f"  converged in {result['converged']:.2f} s;"
                        f" recount of {len(sample)} sampled visitors: all equal"
                    )
                    scored = (
                        "NOT within the timeout"
                        if result["scored"] is None
                        else f"{result['scored']:.2f} s"
                    )
                    print(
                        f"  {result['unscored_at_ready']:,} profile(s) written but not scored "
                        "at ready;"
                        f" every profile scored at ready+{scored}"
                    )
                else:
                    missing = result["stored"] - result["counted"]
                    earlier = (
                        f", {missing - gap_before:+,} of them new in this kill"
                        if gap_before
                        else ""
                    )
                    print(
                        f"  NOT CONVERGED within {args.timeout:g} s: "
                        f"profiles count {result['counted']:,} of"
                        f" {result['stored']:,} stored "
                        f"({missing:+,} missing from profiles{earlier})"
                    )
                    print(
                        f"  recount of {len(sample)} sampled visitors: "
                        f"{len(result['mismatches'])} differ"
                        + "".join(f"\n    {line}" for line in result["mismatches"][:5])
                    )
                sys.stdout.flush()
                gap_before = result["stored"] - result["counted"]
                rows.append(
                    {
                        "kill": number,
                        "mode": mode,
                        "killed_at": kill_after,
                        "acked": acked,
                        "stored": result["stored"],
                        "at_ready": result["seen"][0][1],
                        "converged": result["converged"],
                        "missing": result["stored"] - result["counted"],
                        "unscored": result["unscored_at_ready"],
                        "scored": result["scored"],
                        "recount": f"{len(sample) - len(result['mismatches'])}/{len(sample)} equal",
                    }
                )
                if args.fresh and not (mode == modes[-1] and kill == args.kills):
                    server.close()
                    server = None
                    gap_before = 0
                    create_database(args.storage_url, drop_first=True)
    finally:
        if server is not None:
            server.close()
        if not args.keep:
            drop_database(args.storage_url)

    print("\nsummary")
    print(
        f"{'kill':>4}  {'mode':6} {'killed s':>8} {'acked':>9} {'stored':>9} "
        f"{'at ready':>9} {'missing':>8}"
        f" {'converged s':>11} {'unscored':>8} {'scored s':>8}  recount"
    )
    for row in rows:
        converged = f"{row['converged']:.2f}" if row["converged"] is not None else "NO"
        scored = f"{row['scored']:.2f}" if row["scored"] is not None else "NO"
        print(
            f"{row['kill']:>4}  {row['mode']:6} {row['killed_at']:8.2f} {row['acked']:9,} "
            f"{row['stored']:9,}"
            f" {row['at_ready']:9,} {row['missing']:+8,} {converged:>11} "
            f"{row['unscored']:8,} {scored:>8}"
            f"  {row['recount']}"
        )
    times = [row["converged"] for row in rows if row["converged"] is not None]
    scoring = [row["scored"] for row in rows if row["scored"] is not None]
    failed = len(rows) - len(scoring)  # scored implies converged
    figures = (
        f"; converged in min {min(times):.2f} s, median {statistics.median(times):.2f} s,"
        f" max {max(times):.2f} s"
        if times
        else ""
    )
    scored = (
        f"; every profile scored in min {min(scoring):.2f} s, "
        f"median {statistics.median(scoring):.2f} s,"
        f" max {max(scoring):.2f} s"
        if scoring
        else ""
    )
    print(f"{len(times)} of {len(rows)} kills converged within {args.timeout:g} s{figures}")
    print(
        f"{len(scoring)} of {len(rows)} had every profile scored within {args.timeout:g} s{scored}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="What each output line means and the exit status: "
        "the docstring at the top of this file.",
    )
    parser.add_argument(
        "--storage-url",
        default=DEFAULT_URL,
        help=f"PostgreSQL database to create, use and drop (default {DEFAULT_URL})",
    )
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs per mode (default 10)")
    parser.add_argument(
        "--mode",
        choices=["batch", "single", "both"],
        default="batch",
        help="batch: 100 events per request; single: one per request; both: --kills of each",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="latest kill moment, s into the flood (default 3)",
    )
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="earliest kill moment (default 1)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds after readiness to converge (default 20)",
    )
    parser.add_argument(
        "--visitors", type=int, default=200, help="new visitors per flood (default 200)"
    )
    parser.add_argument(
        "--sample", type=int, default=20, help="visitors recounted per kill (default 20)"
    )
    parser.add_argument(
        "--connections", type=int, default=0, help="connections (default 12 batch, 32 single)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="events per batch request (default 100)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: random, printed)"
    )
    parser.add_argument("--fresh", action="store_true", help="a new database for every kill")
    parser.add_argument(
        "--recreate", action="store_true", help="drop the database first if it exists"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="REVIVATECH_KEY=VALUE",
        help="a setting for the serve processes (repeatable)",
    )
    parser.add_argument(
        "--signal",
        choices=["KILL", "TERM"],
        default="KILL",
        help="KILL (the check) or TERM (a control: a graceful stop writes every profile)",
    )
    parser.add_argument(
        "--code", type=Path, default=REPOSITORY, help=f"the package's tree (default {REPOSITORY})"
    )
    parser.add_argument(
        "--log-dir", default=None, help="folder for the serve logs (default: a new temporary one)"
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if not 0 < args.min_seconds <= args.seconds:
        parser.error("need 0 < --min-seconds <= --seconds")
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    import psycopg

    try:
        return run(args)
    except (SetupError, psycopg.OperationalError) as exc:
        print(f"crash check could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

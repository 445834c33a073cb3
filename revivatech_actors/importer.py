"""``revivatech-actors import-original``: the original service's history, stored as events.

The original's ``analytics_events`` and ``customer_journeys`` rows (``storage.original`` reads
them) are mapped to the request bodies its clients would have sent live and validated by the same
rules (``domain.original``), then handed to this service's own pipeline, run in-process without
the web server: ingest → batcher (stores them; a repeated id is a duplicate) → profiles and
scorer (profiles, sessions, journeys and scores derived exactly as for live events). Rows that
fail validation are skipped, counted by reason and kept as dead letters, as ingest does.

Three tasks, in one nursery, with at most ``IN_FLIGHT_CHUNKS`` chunks between the first and the
last:

* the reader merges both tables in time order (a visitor's journey lists its events and steps as
  they happened) and cuts the stream into chunks of ``--chunk-size`` rows;
* the submitter maps a chunk and submits it to ingest (waiting for room, like a client would);
* the completer waits until the chunk is committed, counts what became of each row and saves the
  checkpoint: the last position read in each table and the counts so far, in a small JSON state
  file (written atomically). A run that is interrupted resumes from there; one that ends removes
  it, so the next run reads everything again and finds it all stored (duplicates) — and anything
  the original stored since.

Stopping: the first SIGINT / SIGTERM stops reading; the chunks already submitted are committed
and checkpointed, then the service stops in order (profiles write every delta they hold), within
``shutdown.timeout``. A second signal, or that deadline, exits at once with code 1. A process
killed outright (SIGKILL, power loss) resumes just as well for events: the next run stores
what the checkpoint had not covered, the rest comes back duplicate. What it cannot recover is the
profile deltas the dead process had not written yet (the events are stored, profiles miss them),
as for ``serve`` (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

import attrs
import trio

from .actors.ingest import Overloaded
from .config import Settings
from .domain.original import (
    EVENT_COLUMNS,
    EVENTS_TABLE,
    JOURNEY_COLUMNS,
    JOURNEYS_TABLE,
    TABLES,
    ImportedRow,
    TableCounts,
    import_row,
    progress_line,
    skip_reason,
    utc_time,
)
from .domain.secrets import mask_password
from .messages import DeadLetter, Status, Submission
from .service import Service, watch_signals
from .storage.original import OriginalSource, Position, SourceError
from .supervisor import SupervisorGaveUp

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ImportFailed",
    "ImportOptions",
    "ImportState",
    "default_state_path",
    "run_import",
]

logger = logging.getLogger(__name__)

#: Rows per chunk: one read from the source, one checkpoint. Large enough that the batcher writes
#: full batches and the checkpoint's fsync is rare; small enough that an interruption repeats
#: little.
DEFAULT_CHUNK_SIZE = 2000
#: Chunks read ahead or submitted and not yet committed: the source's read of the next chunk and
#: its mapping overlap the commit of the last one.
IN_FLIGHT_CHUNKS = 2
#: Seconds between two redraws of the progress bar on a terminal, and between two progress lines
#: otherwise (a log file should not get a line per chunk).
REDRAW_INTERVAL = 0.2
LINE_INTERVAL = 5.0
#: Version of the state file's layout.
STATE_VERSION = 1
_COLUMNS = {EVENTS_TABLE: EVENT_COLUMNS, JOURNEYS_TABLE: JOURNEY_COLUMNS}


class ImportFailed(Exception):
    """The import cannot go on; the message says why (never with a password)."""


@attrs.frozen
class ImportOptions:
    """What ``import-original`` was asked to do (the command line, parsed)."""

    source_url: str
    chunk_size: int = DEFAULT_CHUNK_SIZE
    state_path: Path | None = None  # None: default_state_path()
    restart: bool = False  # ignore a checkpoint left by an interrupted run
    zone: tzinfo = UTC  # of the source's TIMESTAMP WITHOUT TIME ZONE columns
    progress: bool = True


def default_state_path(source_url: str, destination_url: str) -> Path:
    """``revivatech-import-<hash>.json`` in the working folder, one per source and destination
    (the hash is of the URLs with their passwords masked)."""
    digest = hashlib.sha256(
        f"{mask_password(source_url)}\n{mask_password(destination_url)}".encode()
    ).hexdigest()
    return Path(f"revivatech-import-{digest[:12]}.json")


@attrs.define
class ImportState:
    """The checkpoint: for each table the position of the last row whose chunk committed, and
    the counts of every run of this import so far."""

    source: str  # masked URLs: the file says which import it belongs to, never a password
    destination: str
    positions: dict[str, Position] = attrs.Factory(dict)
    counts: dict[str, TableCounts] = attrs.Factory(
        lambda: {table: TableCounts() for table in TABLES}
    )
    runs: int = 0
    #: False while a run is going on: found False, the last run was killed before its stop wrote
    #: the profile deltas it held (see the module docstring).
    stopped_cleanly: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "source": self.source,
            "destination": self.destination,
            "runs": self.runs,
            "stopped_cleanly": self.stopped_cleanly,
            "positions": {t: p.as_json() for t, p in self.positions.items()},
            "counts": {t: c.as_json() for t, c in self.counts.items()},
        }

    @classmethod
    def load(cls, path: Path) -> ImportState | None:
        """The state in ``path``; None when there is no such file. Raises ImportFailed when it
        cannot be read."""
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            return cls(
                source=data["source"],
                destination=data["destination"],
                runs=int(data.get("runs", 0)),
                stopped_cleanly=bool(data.get("stopped_cleanly", True)),
                positions={t: Position.from_json(p) for t, p in data.get("positions", {}).items()},
                counts={
                    t: TableCounts.from_json(data.get("counts", {}).get(t, {})) for t in TABLES
                },
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = (
                f"cannot read the state file {path}: {exc} "
                "(remove it, or pass --restart, to start over)"
            )
            raise ImportFailed(msg) from None

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old checkpoint or the new one, never half of one."""
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w") as file:
            json.dump(self.as_json(), file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)


@attrs.define(eq=False)
class _Chunk:
    """Rows on their way: mapped, submitted, then counted once committed."""

    rows: list[ImportedRow]
    positions: dict[str, Position]  # the last row of each table in this chunk
    submissions: list[tuple[Submission, list[str]]] = attrs.Factory(list)  # with each event's table
    letters: Submission | None = None


@attrs.define(eq=False)
class _Run:
    settings: Settings
    options: ImportOptions
    state: ImportState
    state_path: Path
    source: OriginalSource
    tables: list[str]
    total: int
    out: TextIO
    err: TextIO
    service: Service | None = None
    done_before: int = 0  # rows counted by earlier runs of this import
    done: int = 0  # rows counted by this run
    started: float = attrs.Factory(time.monotonic)
    stopping: bool = False
    complete: bool = False
    failure: str | None = None
    reader_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    pipeline_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)

    # ------------------------------------------------------------------ the pipeline

    async def pipeline(self) -> None:
        """Read, submit and complete every chunk (or until :meth:`stop` / :meth:`fail`)."""
        with self.pipeline_scope:
            async with trio.open_nursery() as nursery:
                if self.options.progress:
                    nursery.start_soon(self.show_progress)
                async with trio.open_nursery() as stages:
                    to_submit, chunks = trio.open_memory_channel[list](IN_FLIGHT_CHUNKS - 1)
                    to_complete, submitted = trio.open_memory_channel[_Chunk](IN_FLIGHT_CHUNKS - 1)
                    stages.start_soon(self.read_chunks, to_submit)
                    stages.start_soon(self.submit_chunks, chunks, to_complete)
                    stages.start_soon(self.complete_chunks, submitted)
                nursery.cancel_scope.cancel()  # the progress loop: endless by itself

    def stop(self) -> None:
        """Read no more; what was submitted is still committed and checkpointed."""
        self.stopping = True
        self.reader_scope.cancel()

    def fail(self, reason: str) -> None:
        """Give up at once: what was submitted is still stored by the service as it stops, but
        not checkpointed (the next run finds it stored)."""
        if self.failure is None:
            self.failure = reason
        self.stopping = True
        self.pipeline_scope.cancel()

    async def read_chunks(
        self, send: trio.MemorySendChannel[list[tuple[str, dict[str, Any]]]]
    ) -> None:
        """Both tables merged in time order (rows of equal time: events first), in chunks."""
        async with send:
            with self.reader_scope:
                try:
                    chunk: list[tuple[str, dict[str, Any]]] = []
                    async for item in self._merged():
                        chunk.append(item)
                        if len(chunk) == self.options.chunk_size:
                            await send.send(chunk)
                            chunk = []
                    if chunk:
                        await send.send(chunk)
                except SourceError as exc:
                    self.fail(f"reading the source failed: {exc}")
                    return
                self.complete = True

    async def _merged(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        size = self.options.chunk_size
        buffers: dict[str, list[dict[str, Any]]] = {}
        for table in self.tables:
            await self.source.open_cursor(table, _COLUMNS[table], self.state.positions.get(table))
            buffers[table] = []
        exhausted: set[str] = set()
        while True:
            best = best_key = None
            for rank, table in enumerate(self.tables):
                buffer = buffers[table]
                if not buffer and table not in exhausted:
                    buffer.extend(
                        reversed(await self.source.fetch(table, size))
                    )  # popped from the end
                    if not buffer:
                        exhausted.add(table)
                if buffer:
                    at = utc_time(buffer[-1]["created_at"], self.options.zone)
                    key = (at is not None, at or datetime.min.replace(tzinfo=UTC), rank)
                    if best_key is None or key < best_key:
                        best, best_key = table, key
            if best is None:
                return
            yield best, buffers[best].pop()

    async def submit_chunks(
        self,
        chunks: trio.MemoryReceiveChannel[list[tuple[str, dict[str, Any]]]],
        send: trio.MemorySendChannel[_Chunk],
    ) -> None:
        assert self.service is not None
        client_ip = self.settings.ingest.client_ip
        async with send, chunks:
            async for raw in chunks:
                if self.stopping:
                    break  # read, never submitted: the next run reads these rows again
                rows = [
                    import_row(table, row, zone=self.options.zone, client_ip=client_ip)
                    for table, row in raw
                ]
                positions = {
                    table: Position(row["created_at"], str(row["id"])) for table, row in raw
                }
                chunk = _Chunk(rows, positions)
                for submission in _submissions(chunk):
                    await self._submit(submission)
                await send.send(chunk)

    async def _submit(self, submission: Submission) -> None:
        assert self.service is not None
        while True:
            try:
                await self.service.ingest.submit(submission)
                return
            except Overloaded:
                # The budget stayed full for ingest.enqueue_timeout: the batcher is behind (or
                # the database away, and the batcher retrying). Wait on, as a durable client
                # would: the service is stopped only after the pipeline ends, and a signal's
                # deadline ends a wait that never does.
                continue

    async def complete_chunks(self, chunks: trio.MemoryReceiveChannel[_Chunk]) -> None:
        async with chunks:
            async for chunk in chunks:
                submissions = [s for s, _ in chunk.submissions] + (
                    [chunk.letters] if chunk.letters else []
                )
                for submission in submissions:
                    await submission.done.wait()
                    if submission.failure is not None:
                        self.fail(f"the event pipeline failed: {submission.failure}")
                        return
                self._count(chunk)
                self.state.positions.update(chunk.positions)
                self.state.stopped_cleanly = False
                await trio.to_thread.run_sync(self.state.save, self.state_path)
                self.done += len(chunk.rows)

    def _count(self, chunk: _Chunk) -> None:
        counts = self.state.counts
        for row in chunk.rows:
            counts[row.table].read += 1
            if row.valid is None:
                counts[row.table].skipped[skip_reason(row.errors)] += 1
        for submission, tables in chunk.submissions:
            for table, outcome in zip(tables, submission.outcomes, strict=True):
                assert outcome is not None
                if outcome.status is Status.STORED:
                    counts[table].stored += 1
                elif outcome.status is Status.DUPLICATE:
                    counts[table].duplicates += 1
                else:
                    counts[table].skipped[f"refused by the database: {outcome.reason}"] += 1

    # ------------------------------------------------------------------ progress

    async def show_progress(self) -> None:
        tty = self.err.isatty()
        interval = REDRAW_INTERVAL if tty else LINE_INTERVAL
        while True:
            await trio.sleep(interval)
            self.draw(final=False)

    def draw(self, *, final: bool) -> None:
        if not self.options.progress:
            return
        line = progress_line(
            self.done_before + self.done, self.total, time.monotonic() - self.started
        )
        if self.err.isatty():
            self.err.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.err.write(line + "\n")
        self.err.flush()

    # ------------------------------------------------------------------ the summary

    def summary(self) -> str:
        state = self.state
        status = (
            "complete"
            if self.complete
            else f"{'failed' if self.failure else 'interrupted'}: "
            "run the same command again to resume"
        )
        runs = f" ({state.runs} runs)" if state.runs > 1 else ""
        lines = [
            f"import-original {status}{runs}",
            f"  from {self.source.url_for_display}",
            f"  to   {mask_password(self.settings.storage.url)}",
            f"  {'table':<20}{'read':>10}{'stored':>10}{'duplicates':>12}{'skipped':>10}",
        ]
        for table in TABLES:
            c = state.counts[table]
            note = "" if table in self.tables else "  (no such table in the source)"
            lines.append(
                f"  {table:<20}{c.read:>10,}{c.stored:>10,}"
                f"{c.duplicates:>12,}{c.skipped_total:>10,}{note}"
            )
        reasons = [
            (table, reason, n)
            for table in TABLES
            for reason, n in state.counts[table].skipped.most_common()
        ]
        if reasons:
            lines.append("  skipped, by reason (each kept in rejected_events):")
            lines.extend(f"    {table}: {n:,} × {reason}" for table, reason, n in reasons)
        seconds = time.monotonic() - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        lines.append(f"  this run: {self.done:,} rows in {seconds:.1f} s ({rate:,.0f} rows/s)")
        if not self.complete and self.state_path.exists():
            lines.append(f"  checkpoint: {self.state_path}")
        return "\n".join(lines)


def _submissions(chunk: _Chunk) -> list[Submission]:
    """The chunk's valid rows as submissions, in order, one per run of rows kept with the same
    client address (a submission has one); its invalid rows as dead letters, in one more."""
    received_at = datetime.now(UTC)
    letters: list[DeadLetter] = []
    runs: list[tuple[str | None, list[ImportedRow]]] = []
    for row in chunk.rows:
        if row.valid is None:
            letters.append(
                DeadLetter(
                    received_at=received_at,
                    source="validation",
                    reasons=tuple(error.as_dict() for error in row.errors),
                    payload=row.payload,
                )
            )
        elif runs and runs[-1][0] == row.ip_address:
            runs[-1][1].append(row)
        else:
            runs.append((row.ip_address, [row]))
    chunk.submissions = [
        (
            Submission(
                received_at, [row.valid for row in rows if row.valid is not None], ip_address=ip
            ),
            [row.table for row in rows],
        )
        for ip, rows in runs
    ]
    if letters:
        chunk.letters = Submission(received_at, [], letters)
    return [s for s, _ in chunk.submissions] + ([chunk.letters] if chunk.letters else [])


async def run_import(
    settings: Settings,
    options: ImportOptions,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Import; print progress on ``err`` and the summary on ``out``. Returns the exit code: 0 when
    every row was read and committed, 1 when interrupted or failed (the checkpoint stays).

    Raises:
        ImportFailed: before anything was imported (a state file of another import, say).
    """
    state_path = options.state_path or default_state_path(options.source_url, settings.storage.url)
    source_shown, destination_shown = (
        mask_password(options.source_url),
        mask_password(settings.storage.url),
    )
    state = None if options.restart else ImportState.load(state_path)
    if state is not None and (state.source, state.destination) != (source_shown, destination_shown):
        msg = (
            f"the state file {state_path} belongs to the import from {state.source} "
            f"to {state.destination}; "
            "pass --state FILE for this one, or --restart to start it over"
        )
        raise ImportFailed(msg)
    resumed = state is not None
    state = state or ImportState(source_shown, destination_shown)
    state.runs += 1
    source = OriginalSource(options.source_url, connect_timeout=settings.storage.connect_timeout)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            found = await source.open(TABLES)
        except SourceError as exc:
            print(f"revivatech-actors: import-original: cannot read the source: {exc}", file=err)
            return 1
        try:
            tables = [table for table in TABLES if table in found]
            remaining = 0
            for table in tables:
                remaining += await source.count(table, state.positions.get(table))
            done_before = sum(state.counts[table].read for table in TABLES)
            run = _Run(
                settings,
                options,
                state,
                state_path,
                source,
                tables,
                done_before + remaining,
                out,
                err,
                done_before=done_before,
            )
            if resumed:
                print(
                    f"resuming from {state_path}: {done_before:,} rows done, {remaining:,} to go",
                    file=err,
                )
                if not state.stopped_cleanly:
                    print(
                        "warning: the last run was killed before it stopped: the rows it stored "
                        "after its last checkpoint come back as duplicates, and their part in the "
                        "profiles may be missing (docs/operations.md)",
                        file=err,
                    )
            code = await _run_pipeline(run, signals)
        except SourceError as exc:
            print(f"revivatech-actors: import-original: reading the source failed: {exc}", file=err)
            return 1
        finally:
            await source.close()
    if run.complete and code == 0:
        state_path.unlink(missing_ok=True)  # done: the next run checks everything again
    elif state_path.exists():  # the service stopped in order: every profile delta is written
        state.stopped_cleanly = True
        await trio.to_thread.run_sync(state.save, state_path)
    print(run.summary(), file=out, flush=True)
    return code


async def _run_pipeline(run: _Run, signals: Any) -> int:
    settings = run.settings
    deadline = settings.shutdown.timeout
    service = run.service = Service.build(settings, (), web=False)

    def stop(name: str) -> None:
        print(
            f"\n{name}: stopping once the rows already submitted are stored (again: exit at once)",
            file=run.err,
            flush=True,
        )
        run.stop()

    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(
                watch_signals,
                signals,
                stop,
                deadline,
                f"the import did not stop within shutdown.timeout = {deadline:g} s",
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                try:
                    await run.pipeline()
                finally:
                    service.request_stop()  # in order: the batcher writes all, then profiles do
            outer.cancel_scope.cancel()
    except* SupervisorGaveUp as group:
        gave_up: BaseException = group
        while isinstance(gave_up, BaseExceptionGroup):
            gave_up = gave_up.exceptions[0]
        run.failure = str(gave_up)
    run.complete = run.complete and not run.stopping and run.failure is None
    run.draw(final=True)
    if run.failure is not None:
        print(f"revivatech-actors: import-original failed: {run.failure}", file=run.err, flush=True)
        return 1
    return 0 if run.complete else 1

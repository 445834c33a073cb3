"""``serve --workers N``: a small parent process keeping N worker processes on one port.

Each worker is a whole service — its own ``trio.run``, its own actor tree, the same settings — and
listens on ``web.host:web.port`` through a socket of its own with ``SO_REUSEPORT``, so the kernel
spreads new connections between the workers. Workers share nothing in memory: they meet in the
database and in Redis, as separate instances do.

The parent (:class:`WorkerPool`) never builds the service. It starts each worker as
``python -m revivatech_actors serve ... --worker I``: a fresh interpreter that inherits nothing
but the environment and its standard streams (no forked trio state, threads or database
connections), that an operator recognises in ``ps``, and that trio's process API lets the parent
wait for like any task. (``multiprocessing``'s spawn context would start the same fresh
interpreter, plus a pickled entry point and a resource tracker, and gain nothing here.)

* A worker gets its own process group, so a terminal's Ctrl-C reaches the parent only; the parent
  forwards SIGTERM / SIGINT to every worker and waits while each stops in order. A second
  signal, or the workers outliving ``shutdown.timeout`` + :data:`STOP_MARGIN`, sends SIGKILL.
* A worker that exits while nobody asked it to (crash, supervisor gave up, killed by an operator)
  is logged with its exit code or signal and started again after a backoff: its capacity comes
  back. More than :data:`MAX_EXITS` such exits within :data:`EXITS_WINDOW` seconds stop every
  worker (exit code 1), and a worker refusing its configuration (exit code 2) stops them at once.
* A worker's stdin is a pipe from the parent that is never written to. When the parent dies,
  however it dies, the pipe reaches end of file and the worker stops as on SIGTERM
  (:func:`run_as_worker`): no orphan keeps serving the port.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs
import trio

from .start_checks import EXIT_CONFIG  # a worker that exits with it would refuse again if restarted

__all__ = [
    "ExitWindow",
    "WorkerPool",
    "describe_exit",
    "next_delay",
    "reuse_port_problem",
    "run_as_worker",
    "serve_workers",
]

logger = logging.getLogger(__name__)

#: Unrequested worker exits tolerated within EXITS_WINDOW seconds; one more stops every worker.
#: A worker starts in about a second and its own supervisor gives up only after several crashes,
#: so this many exits in a minute means restarting does not help.
MAX_EXITS = 5
EXITS_WINDOW = 60.0
#: Seconds before a worker that exited is started again; doubled after each exit that followed a
#: short run, up to RESTART_DELAY_MAX. Short enough that an operator's SIGKILL costs a worker's
#: capacity for about two seconds (this delay plus the start).
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 10.0
#: A worker that ran at least this long before exiting is restarted after RESTART_DELAY again.
STABLE_RUN = EXITS_WINDOW
#: Seconds past ``shutdown.timeout`` the parent waits for stopping workers before SIGKILL. Each
#: worker ends itself at ``shutdown.timeout`` (forced exit); this covers its leaving.
STOP_MARGIN = 5.0


def describe_exit(returncode: int) -> str:
    """``"exited with code 1"`` / ``"was killed by SIGKILL"`` for a Popen-style return code."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


def next_delay(previous: float | None, ran_for: float) -> float:
    """Seconds to wait before starting again a worker that ran ``ran_for`` seconds and exited;
    ``previous`` is the delay before its last start (None for the first start)."""
    if previous is None or ran_for >= STABLE_RUN:
        return RESTART_DELAY
    return min(previous * 2, RESTART_DELAY_MAX)


@attrs.define
class ExitWindow:
    """Counts unrequested worker exits over a sliding window of ``seconds``."""

    limit: int = MAX_EXITS
    seconds: float = EXITS_WINDOW
    _times: collections.deque[float] = attrs.field(init=False, factory=collections.deque)

    def record(self, now: float) -> bool:
        """Note an exit at ``now``; True when there were more than ``limit`` within ``seconds``."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()
        return len(self._times) > self.limit


def reuse_port_problem() -> str | None:
    """Why this platform cannot run workers side by side on one port, or None. (Whether the port
    itself is free is start_checks.check_listen's question.)"""
    if not hasattr(socket, "SO_REUSEPORT"):
        return "web.workers > 1 needs SO_REUSEPORT, which this platform does not have"
    return None


@attrs.define(eq=False)
class WorkerPool:
    """Keeps ``count`` worker processes running until :meth:`stop`; see the module's docstring.

    ``command(index)`` is the command line of worker ``index`` (1 to ``count``); every worker gets
    ``env``. :meth:`run` returns the exit code for the parent: 0 when every worker stopped with
    0 after :meth:`stop`, 2 when a worker refused its configuration, else 1.
    """

    command: Callable[[int], Sequence[str]]
    count: int
    env: Mapping[str, str]
    #: Seconds from :meth:`stop` until the workers still running are killed.
    stop_deadline: float
    #: Called with the pid of every worker that ended, however it ended (before any restart).
    on_exit: Callable[[int], None] | None = None
    exits: ExitWindow = attrs.Factory(ExitWindow)
    _processes: dict[int, trio.Process] = attrs.field(init=False, factory=dict)
    _final: dict[int, int] = attrs.field(init=False, factory=dict)
    _stop_signal: int | None = attrs.field(init=False, default=None)
    _stopping: trio.Event = attrs.field(init=False, factory=trio.Event)
    _killed: bool = attrs.field(init=False, default=False)
    _exit_code: int | None = attrs.field(
        init=False, default=None
    )  # decided before the workers ended

    def pids(self) -> dict[int, int]:
        """The running workers' process ids by index."""
        return {index: process.pid for index, process in self._processes.items()}

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Send ``signum`` to every worker (each stops in order) and start no more. Idempotent."""
        if self._stop_signal is not None:
            return
        self._stop_signal = signum
        self._stopping.set()
        for process in self._processes.values():
            process.send_signal(signum)

    def kill(self, reason: str) -> None:
        """SIGKILL every worker now; :meth:`run` then returns 1."""
        logger.critical("forced exit: %s; killing %d worker(s)", reason, len(self._processes))
        self._killed = True
        self._exit_code = 1
        self.stop(signal.SIGKILL)
        for process in self._processes.values():
            process.kill()

    async def run(self) -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._kill_when_overdue)
            async with trio.open_nursery() as workers:
                for index in range(1, self.count + 1):
                    workers.start_soon(self._keep_running, index)
            nursery.cancel_scope.cancel()
        if self._exit_code is not None:
            return self._exit_code
        return 0 if all(code == 0 for code in self._final.values()) else 1

    async def _kill_when_overdue(self) -> None:
        await self._stopping.wait()
        await trio.sleep(self.stop_deadline)
        self.kill(f"workers still running {self.stop_deadline:g} s after the stop began")

    def _give_up(self, code: int) -> None:
        if self._exit_code is None:
            self._exit_code = code
        self.stop(signal.SIGTERM)

    async def _keep_running(self, index: int) -> None:
        delay: float | None = None
        while True:
            process = await trio.lowlevel.open_process(
                list(self.command(index)),
                env=dict(self.env),
                # stdin is never written: its end of file tells the worker the parent is gone.
                stdin=subprocess.PIPE,
                process_group=0,  # a terminal's Ctrl-C reaches the parent only, which forwards it
            )
            self._processes[index] = process
            if self._killed:
                process.kill()
            elif self._stop_signal is not None:  # the stop came while this one was being started
                process.send_signal(self._stop_signal)
            logger.info("worker %d started (pid %d)", index, process.pid)
            started = trio.current_time()
            try:
                code = await process.wait()
            finally:
                del self._processes[index]
                # stdin=PIPE: an FdStream, which trio types as an optional SendStream
                process.stdin.close()  # type: ignore[union-attr]
                if self.on_exit is not None:
                    self.on_exit(process.pid)
            if self._stop_signal is not None:
                if self._stop_signal != signal.SIGKILL and code == -self._stop_signal:
                    # The forwarded signal came before its handlers: it had served nothing yet.
                    code = 0
                level = logging.INFO if code == 0 else logging.ERROR
                logger.log(level, "worker %d (pid %d) %s", index, process.pid, describe_exit(code))
                self._final[index] = code
                return
            what = f"worker {index} (pid {process.pid}) {describe_exit(code)}"
            if code == EXIT_CONFIG:
                logger.critical("%s: its configuration cannot be used; stopping every worker", what)
                self._give_up(EXIT_CONFIG)
                return
            if self.exits.record(trio.current_time()):
                logger.critical(
                    "%s: more than %d worker exits within %g s; stopping every worker",
                    what,
                    self.exits.limit,
                    self.exits.seconds,
                )
                self._give_up(1)
                return
            delay = next_delay(delay, trio.current_time() - started)
            logger.error("%s; starting another in %g s", what, delay)
            with trio.move_on_after(delay):
                await self._stopping.wait()
            if self._stop_signal is not None:
                return


async def serve_workers(pool: WorkerPool) -> int:
    """Run ``pool`` until SIGINT or SIGTERM, forwarded to every worker; a second signal kills them.
    Returns the parent's exit code (:meth:`WorkerPool.run`)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    logger.warning(
                        "%s received: stopping %d worker(s)",
                        signal.Signals(signum).name,
                        pool.count,
                    )
                    pool.stop(signum)
                    break
                async for signum in signals:
                    pool.kill(f"second signal ({signal.Signals(signum).name})")
                    break

            nursery.start_soon(watch)
            code = await pool.run()
            nursery.cancel_scope.cancel()
    logger.log(
        logging.INFO if code == 0 else logging.ERROR, "every worker stopped; exit code %d", code
    )
    return code


async def run_as_worker(serve: Callable[[], Awaitable[int]]) -> int:
    """Run ``serve()`` (the service until a signal; returns the exit code), and stop it as on
    SIGTERM if the parent goes away: a worker's stdin is a pipe from the parent, which reaches end
    of file when the parent's process ends. A stdin that is not a pipe (a worker started by hand)
    is not watched."""
    try:
        watched = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:  # no stdin at all
        watched = False
    async with trio.open_nursery() as nursery:
        if watched:
            nursery.start_soon(_stop_when_parent_gone, 0)
        code = await serve()
        nursery.cancel_scope.cancel()
    return code


async def _stop_when_parent_gone(fd: int) -> None:
    while True:
        await trio.lowlevel.wait_readable(fd)
        if not os.read(fd, 4096):
            break
    logger.warning("the parent process is gone: stopping as on SIGTERM")
    os.kill(os.getpid(), signal.SIGTERM)  # the service's own signal handling stops it in order

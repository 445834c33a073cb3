"""Tests for revivatech_actors.workers (the parent of `serve --workers N`) and the web server's
SO_REUSEPORT listener: the pure rules, then the pool with real child processes — small Python
programs standing in for workers, so each case takes well under a second or two."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys

import httpx
import pytest
import trio
from quart_trio import QuartTrio

from revivatech_actors.web.server import WebServer, reuse_port_listener
from revivatech_actors.workers import (
    RESTART_DELAY,
    RESTART_DELAY_MAX,
    STABLE_RUN,
    ExitWindow,
    WorkerPool,
    describe_exit,
    next_delay,
)

from .conftest import free_port
from .helpers import process_alive

# --- pure rules ---------------------------------------------------------------------------------


def test_describe_exit():
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "was killed by SIGTERM"


def test_restart_delay_doubles_after_short_runs_and_resets_after_a_stable_one():
    assert next_delay(None, 0.1) == RESTART_DELAY
    assert next_delay(RESTART_DELAY, 1.0) == 2 * RESTART_DELAY
    assert next_delay(RESTART_DELAY_MAX, 1.0) == RESTART_DELAY_MAX
    assert next_delay(RESTART_DELAY_MAX, STABLE_RUN) == RESTART_DELAY


def test_exit_window_gives_up_past_its_limit_within_its_seconds():
    window = ExitWindow(limit=2, seconds=10)
    assert not window.record(0) and not window.record(1)
    assert window.record(2)  # a third exit within 10 s
    assert not ExitWindow(limit=2, seconds=10).record(0)
    spread = ExitWindow(limit=2, seconds=10)
    assert not any(spread.record(t) for t in (0, 6, 12, 18))  # never more than 2 within 10 s


# --- the pool, with real child processes ---------------------------------------------------------

#: A stand-in worker: marks itself ready by creating ``<folder>/ready-<pid>``, then exits with
#: ``on_term`` at SIGTERM (or ignores SIGTERM when it is "ignore"). ``first_exit`` N: the first
#: start for a folder exits N at once.
WORKER = """
import os, pathlib, signal, sys, time
folder, on_term, first_exit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if first_exit != "-":
    marker = folder / "started-once"
    if first_exit == "always" or not marker.exists():
        marker.touch()
        sys.exit(int(os.environ.get("EXIT_CODE", "3")))
on_sigterm = signal.SIG_IGN if on_term == "ignore" else lambda *_: sys.exit(int(on_term))
signal.signal(signal.SIGTERM, on_sigterm)
(folder / f"ready-{os.getpid()}").touch()
while True:
    time.sleep(1)
"""


def pool_of(
    tmp_path,
    count: int,
    *,
    on_term: str = "0",
    first_exit: str = "-",
    env: dict | None = None,
    stop_deadline: float = 10.0,
    exits: ExitWindow | None = None,
) -> WorkerPool:
    def command(index: int) -> list[str]:
        folder = tmp_path / f"w{index}"
        folder.mkdir(exist_ok=True)
        return [sys.executable, "-I", "-S", "-c", WORKER, str(folder), on_term, first_exit]

    return WorkerPool(
        command, count, env or {}, stop_deadline=stop_deadline, exits=exits or ExitWindow()
    )


async def ready_pids(tmp_path, count: int, timeout: float = 5.0) -> set[int]:
    """The pids of ``count`` ready stand-in workers (the newest per index)."""
    with trio.fail_after(timeout):
        while True:
            pids = {int(path.name.split("-")[1]) for path in tmp_path.glob("w*/ready-*")}
            if len(pids) >= count:
                return pids
            await trio.sleep(0.02)


async def test_stop_forwards_the_signal_and_the_pool_exits_zero_when_every_worker_did(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, "revivatech_actors.workers")
    pool = pool_of(tmp_path, 2)
    result = []

    async def run() -> None:
        result.append(await pool.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        pids = await ready_pids(tmp_path, 2)
        assert set(pool.pids().values()) == pids
        pool.stop(signal.SIGTERM)
    assert result == [0]
    assert not any(process_alive(pid) for pid in pids)
    assert sum("exited with code 0" in r.message for r in caplog.records) == 2


async def test_a_worker_that_exits_non_zero_at_the_stop_makes_the_pool_exit_one(tmp_path):
    pool = pool_of(tmp_path, 1, on_term="1")
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            assert await pool.run() == 1

        nursery.start_soon(run)
        await ready_pids(tmp_path, 1)
        pool.stop()


async def test_a_worker_ended_by_the_forwarded_signal_before_its_handlers_stopped_cleanly(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, "revivatech_actors.workers")
    pool = WorkerPool(
        lambda index: [sys.executable, "-I", "-S", "-c", "import time; time.sleep(30)"],
        1,
        {},
        stop_deadline=5,
    )
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            assert await pool.run() == 0

        nursery.start_soon(run)
        with trio.fail_after(5):
            while not pool.pids():
                await trio.sleep(0.01)
        pool.stop(signal.SIGTERM)  # no handler: the default action ends it
    assert any("exited with code 0" in r.message for r in caplog.records)


async def test_a_worker_that_dies_is_logged_and_started_again(tmp_path, caplog):
    caplog.set_level(logging.INFO, "revivatech_actors.workers")
    pool = pool_of(tmp_path, 1, first_exit="once")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.run)
        (pid,) = await ready_pids(tmp_path, 1)  # the second start: the first exited 3 at once
        assert pool.pids() == {1: pid}
        assert any(
            "exited with code 3; starting another in 0.5 s" in r.message for r in caplog.records
        )

        (tmp_path / "w1" / f"ready-{pid}").unlink()
        os.kill(pid, signal.SIGKILL)  # as an operator would
        (replacement,) = await ready_pids(tmp_path, 1)
        assert replacement != pid and pool.pids() == {1: replacement}
        assert any(
            f"(pid {pid}) was killed by SIGKILL; starting another" in r.message
            for r in caplog.records
        )
        pool.stop()


async def test_too_many_exits_within_the_window_stop_every_worker_with_exit_one(tmp_path, caplog):
    caplog.set_level(logging.INFO, "revivatech_actors.workers")
    pool = pool_of(tmp_path, 2, first_exit="always", exits=ExitWindow(limit=1, seconds=60))
    with trio.fail_after(5):
        assert await pool.run() == 1
    assert any(
        "more than 1 worker exits within 60 s; stopping every worker" in r.message
        for r in caplog.records
    )


async def test_a_worker_refusing_its_configuration_stops_the_pool_with_exit_two(tmp_path):
    pool = pool_of(tmp_path, 2, first_exit="always", env={"EXIT_CODE": "2"})
    with trio.fail_after(5):
        assert await pool.run() == 2


async def test_workers_that_outlive_the_stop_deadline_are_killed(tmp_path, caplog):
    pool = pool_of(tmp_path, 2, on_term="ignore", stop_deadline=0.3)
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            assert await pool.run() == 1

        nursery.start_soon(run)
        pids = await ready_pids(tmp_path, 2)
        pool.stop()
    assert not any(process_alive(pid) for pid in pids)
    assert any(
        "forced exit: workers still running 0.3 s after the stop began" in r.message
        for r in caplog.records
    )


async def test_kill_ends_every_worker_at_once(tmp_path):
    pool = pool_of(tmp_path, 2, on_term="ignore")
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            assert await pool.run() == 1

        nursery.start_soon(run)
        pids = await ready_pids(tmp_path, 2)
        pool.stop()
        pool.kill("second signal (SIGINT)")
    assert not any(process_alive(pid) for pid in pids)


# --- the web server's shared listener -----------------------------------------------------------


def test_reuse_port_listeners_share_one_address():
    port = free_port()
    first = reuse_port_listener("127.0.0.1", port)
    second = reuse_port_listener("127.0.0.1", port)
    try:
        assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
        with (
            socket.socket() as plain,
            pytest.raises(OSError),
        ):  # one without SO_REUSEPORT is refused
            plain.bind(("127.0.0.1", port))
    finally:
        first.close()
        second.close()


async def test_a_reuse_port_web_server_stops_listening_when_it_stops():
    app = QuartTrio(__name__)

    @app.get("/")
    async def index():
        return "ok"

    port = free_port()
    server = WebServer(app, "127.0.0.1", port, graceful_timeout=0.5, reuse_port=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert server.bound == [f"http://127.0.0.1:{port}"]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        server.request_stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))

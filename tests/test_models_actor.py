"""The models actor: it backtests when the newest stored backtest is ``interval`` old or there is
none, leaves it to a fresh one stored by another instance, and retries a failed run later; and
the service's run, ``revivatech-actors evaluate --record`` in a process of its own, its scan
paced to a share of the wall time."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import trio

from revivatech_actors.actors.models import BacktestFailed, ModelsActor
from revivatech_actors.backtest_process import backtest_in_subprocess
from revivatech_actors.config import load_settings
from revivatech_actors.evaluation import WorkPacer
from revivatech_actors.storage import open_storage

from .helpers import make_event


def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'models.db'}"


async def migrated(url: str) -> None:
    async with open_storage(url) as storage:
        await storage.migrate()


async def test_it_backtests_when_due_and_leaves_a_fresh_one_alone(tmp_path):
    url = sqlite_url(tmp_path)
    await migrated(url)
    runs: list[float] = []
    async with open_storage(url) as recorder:

        async def backtest() -> None:
            runs.append(trio.current_time())
            await recorder.record_evaluation(datetime.now(UTC), {"models": {}})

        actor = ModelsActor(
            open_storage(url), backtest, interval=0.6, first_delay=0, jitter=lambda: 0
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            await trio.sleep(1.5)
            nursery.cancel_scope.cancel()
    assert len(runs) == 3  # at 0 (none stored), then each time the newest is 0.6 s old
    assert all(0.5 < b - a < 0.8 for a, b in zip(runs, runs[1:], strict=False)), runs
    assert actor.stats_json()["runs"] == 3 and actor.stats_json()["lastError"] is None

    # stored 0.1 s ago by another instance: nothing to do until it is interval old
    async with open_storage(url) as other:
        await other.record_evaluation(datetime.now(UTC) - timedelta(seconds=0.1), {"models": {}})
    runs.clear()
    actor = ModelsActor(open_storage(url), backtest, interval=5, first_delay=0, jitter=lambda: 0)
    async with open_storage(url) as recorder, trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert runs == []


async def test_a_failed_backtest_is_counted_and_tried_again_later(tmp_path):
    url = sqlite_url(tmp_path)
    await migrated(url)
    tries: list[float] = []

    async def failing() -> None:
        tries.append(trio.current_time())
        raise BacktestFailed("evaluate exited with 1: boom")

    actor = ModelsActor(open_storage(url), failing, first_delay=0, retry_delay=0.3)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(0.75)
        nursery.cancel_scope.cancel()
    assert len(tries) == 3
    stats = actor.stats_json()
    assert stats["failures"] == 3 and stats["lastError"] == "evaluate exited with 1: boom"


async def test_the_service_s_backtest_runs_evaluate_in_a_process_and_stores_its_figures(tmp_path):
    url = sqlite_url(tmp_path)
    await migrated(url)
    t0 = datetime(2026, 9, 1, tzinfo=UTC)
    events = [  # 40 visitors over 30 days; the even ones book on their last day
        make_event(
            n,
            user_fingerprint=f"v{n % 40}",
            session_id=f"s{n}",
            event_type="booking_completed" if n % 2 == 0 and n >= 360 else "page_view",
            timestamp=t0 + timedelta(hours=2 * n),
            value=30.0,
        )
        for n in range(400)
    ]
    async with open_storage(url) as storage:
        await storage.commit_batch(events)
    settings = load_settings(None, overrides={"storage.url": url})
    await backtest_in_subprocess(settings)
    async with open_storage(url) as storage:
        stored = await storage.latest_evaluation()
    assert stored is not None
    _, report = stored
    assert report["visitors"] == 40 and report["samples"] > 0 and len(report["cutoffs"]) >= 1
    assert set(report["models"]) == {"lead_scoring", "churn_prediction"}


async def test_a_backtest_that_cannot_run_says_why(tmp_path):
    settings = load_settings(None, overrides={"storage.url": f"sqlite:///{tmp_path}/no/such.db"})
    try:
        await backtest_in_subprocess(settings)
    except BacktestFailed as exc:
        assert str(exc).startswith("evaluate exited with 2: ") and "does not exist" in str(exc)
    else:
        raise AssertionError("no BacktestFailed")


def test_a_paced_loop_works_its_share_of_the_wall_time():
    def wall_for(pacer: WorkPacer, work: float) -> float:
        """Wall seconds for ``work`` seconds of busy steps of 2 ms, ticking between them."""
        started = time.monotonic()
        worked = 0.0
        while worked < work:
            step = time.monotonic()
            while time.monotonic() - step < 0.002:
                pass
            worked += time.monotonic() - step
            pacer.tick()
        return time.monotonic() - started

    assert wall_for(WorkPacer(0.25, slice_seconds=0.01), 0.1) >= 0.1 / 0.25 * 0.9
    assert wall_for(WorkPacer(1.0, slice_seconds=0.01), 0.1) < 0.1 / 0.25 * 0.9  # never sleeps


def test_evaluate_refuses_a_work_share_outside_0_to_1():
    done = subprocess.run(
        [sys.executable, "-m", "revivatech_actors", "evaluate", "--work-share", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "--work-share: must be a number > 0 and <= 1, not 0" in (
        done.stderr
    )

"""How the service runs its backtests: ``revivatech-actors evaluate --record`` in a process of its
own at a low priority, so that neither reading the whole history nor the arithmetic takes the
event loop's time or the ingest path's connections. Imports nothing heavy: ``serve`` loads it."""

from __future__ import annotations

import shutil
import sys
import tempfile

import trio

from .actors.models import BacktestFailed
from .config import Settings, render_toml, settings_as_dict

__all__ = ["CHILD_NICENESS", "backtest_in_subprocess"]

#: How much lower than the service's the priority of its backtests' process is (``nice``).
CHILD_NICENESS = 10
#: The settings a backtest's process reads (it is given these, and the defaults for the rest).
_CHILD_SECTIONS = ("storage", "scoring", "log")


async def backtest_in_subprocess(settings: Settings) -> None:
    """``revivatech-actors evaluate --record --nice 10 --work-share <scoring.learn_work_share>``
    with ``settings``' storage and scoring (in a private file for the child's lifetime): the
    service's backtests, in a process of their own so that neither the scan nor the arithmetic
    takes the event loop's time, paced so that they take little of the machine's.

    Raises:
        BacktestFailed: the command did not succeed; the message ends with its last line.
    """
    sections = settings_as_dict(settings, mask_secrets=False)
    text = render_toml({name: sections[name] for name in _CHILD_SECTIONS})
    folder = await trio.to_thread.run_sync(tempfile.mkdtemp)  # private: 0700
    try:
        path = trio.Path(folder) / "settings.toml"
        await path.write_text(text)
        command = [sys.executable, "-m", "revivatech_actors", "evaluate", "--record"]
        command += ["--nice", str(CHILD_NICENESS), "--config", str(path)]
        command += ["--work-share", str(settings.scoring.learn_work_share)]
        done = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    finally:
        await trio.to_thread.run_sync(shutil.rmtree, folder, True)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        msg = f"evaluate exited with {done.returncode}: {lines[-1]}"
        raise BacktestFailed(msg)

"""The loop monitor: measures how late the event loop wakes a sleeping task.

Every request, actor and WebSocket shares one trio loop, so its lag is the floor under every
latency the service has. Health reports it and turns ``degraded`` when it grows too large.
"""

from __future__ import annotations

import collections

import attrs
import trio

from ..supervisor import Activity

__all__ = ["LoopMonitor"]

#: How often to sample. Short enough to catch a stall, long enough to cost nothing.
SAMPLE_INTERVAL = 0.25
#: Samples kept for the reported maximum (20 s at the interval above).
WINDOW = 80


@attrs.define(eq=False)
class LoopMonitor:
    interval: float = SAMPLE_INTERVAL
    activity: Activity = attrs.Factory(Activity)
    _samples: collections.deque[float] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=WINDOW)
    )

    @property
    def lag_ms(self) -> float | None:
        """The largest lag seen over the recent window, in milliseconds; None before the first
        sample."""
        return round(max(self._samples) * 1000, 3) if self._samples else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            asleep_at = trio.current_time()
            await trio.sleep(self.interval)
            self._samples.append(max(0.0, trio.current_time() - asleep_at - self.interval))
            self.activity.record()

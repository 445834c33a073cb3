"""When profiles are written (``actors.profiles._pacing``): pure decisions, no clock."""

from __future__ import annotations

import pytest

from revivatech_actors.actors.profiles._pacing import (
    COSTED_WRITE,
    REPLAY_BACKLOG,
    Pacing,
    is_urgent,
    rest_after,
)

NOW = 1000.0


@pytest.mark.parametrize(
    ("waiting", "seconds_per_visitor", "idle", "due"),
    [
        (0, 0.001, 100.0, False),  # nothing to write
        (1, 0.0, 0.0, True),  # cost unknown yet: write every interval
        (500, 60e-6, 1.0, True),  # 30 ms of work after 1 s: within 10 %
        (95_000, 100e-6, 1.0, False),  # 9.5 s of work: wait...
        (95_000, 100e-6, 85.5, True),  # ... until it is 10 % of the time since the last write
    ],
)
def test_a_write_is_due_when_its_expected_cost_is_within_the_share(
    waiting, seconds_per_visitor, idle, due
):
    pacing = Pacing(seconds_per_visitor=seconds_per_visitor, last_batch_at=NOW)  # events come in

    def write_due(positions_moved: bool = False) -> bool:
        return pacing.write_due(
            now=NOW,
            idle=idle,
            waiting=waiting,
            positions_moved=positions_moved,
            flush_interval=1.0,
            max_write_share=0.1,
        )

    assert write_due() is due
    assert write_due(positions_moved=True) is (due or waiting == 0)  # positions alone: due
    pacing.last_batch_at -= 2.0  # none for two flush intervals: nothing to hold up
    assert pacing.ingest_idle(NOW, 1.0)
    assert write_due() is (waiting > 0)


def test_only_a_large_write_sets_the_cost_per_visitor():
    pacing = Pacing()
    pacing.measured(COSTED_WRITE - 1, 1.0)  # its fixed overhead would count as rows
    assert pacing.seconds_per_visitor == 0.0
    pacing.measured(COSTED_WRITE * 2, 0.2)
    assert pacing.seconds_per_visitor == pytest.approx(0.2 / (COSTED_WRITE * 2))


@pytest.mark.parametrize(
    ("stopping", "unwritten", "replayed", "urgent"),
    [
        (False, 10, 0, False),
        (True, 0, 0, True),  # stopping
        (False, 11, 0, True),  # over the memory bound
        (False, 0, REPLAY_BACKLOG + 1, True),  # behind the log
        (False, 10, REPLAY_BACKLOG, False),  # at the bounds: not yet
    ],
)
def test_a_write_is_urgent_when_stopping_over_memory_or_behind_the_log(
    stopping, unwritten, replayed, urgent
):
    assert (
        is_urgent(
            stopping=stopping,
            unwritten_events=unwritten,
            max_unwritten_events=10,
            replayed_unwritten=replayed,
        )
        is urgent
    )


def test_rests_keep_a_write_within_its_share():
    assert rest_after(0.01, 0.1) == pytest.approx(0.09)  # busy 10 % of the time
    assert rest_after(0.0, 0.1) == 0.0

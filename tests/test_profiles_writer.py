"""Chunks of a profile write (``actors.profiles._writer``); the writes themselves are tested
through the actor (test_profiles.py)."""

from __future__ import annotations

from revivatech_actors.actors.profiles import CHUNK_EVENTS
from revivatech_actors.actors.profiles._writer import chunks


def test_write_chunks_hold_whole_partitions_bounded_by_visitors_and_events():
    assert list(chunks({3: (2, 2), 0: (2, 2), 1: (2, 2), 2: (1, 1)}, 3)) == [[0], [1, 2], [3]]
    # a partition larger than a chunk is one alone
    assert list(chunks({0: (10, 10), 1: (1, 1)}, 3)) == [[0], [1]]
    assert list(chunks({5: (0, 0), 6: (0, 0)}, 3)) == [[5, 6]]  # positions alone
    big = CHUNK_EVENTS // 2
    assert list(chunks({0: (1, big), 1: (1, big), 2: (1, 1)}, 2000)) == [[0, 1], [2]]
    assert list(chunks({}, 3)) == []

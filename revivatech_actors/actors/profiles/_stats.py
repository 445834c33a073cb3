"""The profiles actor's counters, and the document operators read them in."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ProfileStats", "stats_document"]


@attrs.define
class ProfileStats:
    """Counters for operators and the benchmark (``GET /api/analytics/actors``). They count
    since the process started: a restart of the actor keeps them."""

    activations: int = 0
    passivations: int = 0
    writes: int = 0
    failed_writes: int = 0
    profiles_written: int = 0
    last_write_seconds: float = 0.0
    last_write_profiles: int = 0
    applied_events: int = 0  # each stored event once, whichever way it came
    replayed_events: int = 0  # of those, applied from the log, not handed over by this process
    partitions_taken: int = 0
    partitions_lost: int = 0


def stats_document(
    stats: ProfileStats,
    *,
    active: int,
    max_active: int,
    retiring: int,
    unwritten_events: int,
    max_unwritten_events: int,
    partitions: int,
    partitions_total: int,
    instances: int,
) -> dict[str, Any]:
    """``stats`` and the actor's current state as ``stats.profiles`` of the actors document
    (its keys are part of the HTTP API)."""
    s = stats
    return {
        "active": active,
        "maxActive": max_active,
        "retiring": retiring,
        "activations": s.activations,
        "passivations": s.passivations,
        "writes": s.writes,
        "failedWrites": s.failed_writes,
        "profilesWritten": s.profiles_written,
        "lastWriteSeconds": round(s.last_write_seconds, 3),
        "lastWriteProfiles": s.last_write_profiles,
        "unwrittenEvents": unwritten_events,
        "maxUnwrittenEvents": max_unwritten_events,
        "partitions": partitions,
        "partitionsTotal": partitions_total,
        "instances": instances,
        "appliedEvents": s.applied_events,
        "replayedEvents": s.replayed_events,
        "partitionsTaken": s.partitions_taken,
        "partitionsLost": s.partitions_lost,
    }

"""The profiles actor (see ``_actor``)."""

from ._actor import (
    CHUNK_EVENTS,
    URGENT_WRITE_CHUNK,
    ProfilesActor,
    ProfileStats,
    VisitorActor,
    _chunks,
    live_state,
)

__all__ = [
    "CHUNK_EVENTS",
    "URGENT_WRITE_CHUNK",
    "ProfileStats",
    "ProfilesActor",
    "VisitorActor",
    "_chunks",
    "live_state",
]

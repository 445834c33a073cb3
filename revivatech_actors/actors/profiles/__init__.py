"""The profiles actor: visitors' profiles derived from the stored events, exactly once.

:class:`ProfilesActor` is the actor others construct; its parts live in private modules, one
reason to change each:

- ``_actor``: the actor's tasks, and when each part acts;
- ``_leases``: which partitions this process owns (lease rounds);
- ``_routing``: which visitor actor each stored event goes to, passivation;
- ``_visitor``: one visitor's events until they are written;
- ``_catch_up``: reading the log for what the owned partitions have not applied;
- ``_pacing``: when to write;
- ``_writer``: the writes, chunk by chunk;
- ``_reads``: a visitor's live profile, journeys and insights;
- ``_stats``: the counters operators read.
"""

from ._actor import ProfilesActor
from ._reads import live_state
from ._stats import ProfileStats
from ._visitor import VisitorActor
from ._writer import CHUNK_EVENTS, URGENT_WRITE_CHUNK, WRITE_CHUNK

__all__ = [
    "CHUNK_EVENTS",
    "URGENT_WRITE_CHUNK",
    "WRITE_CHUNK",
    "ProfileStats",
    "ProfilesActor",
    "VisitorActor",
    "live_state",
]

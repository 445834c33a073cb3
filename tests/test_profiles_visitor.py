"""One visitor actor (``actors.profiles._visitor``): its events pending, in flight, written."""

from __future__ import annotations

from revivatech_actors.actors.profiles import VisitorActor
from revivatech_actors.domain.profiles import delta_from_events, touch_of

from .helpers import make_event


def visit(visitor: str, n: int):
    return make_event(n, user_fingerprint=visitor, session_id=f"{visitor}-s")


def test_a_visitor_actor_keeps_its_events_pending_until_written():
    actor = VisitorActor("v", 3)
    assert actor.receive(touch_of(visit("v", 0)), now=1.0) is True  # the first pending event
    assert actor.receive(touch_of(visit("v", 5)), now=2.0) is False
    in_flight = actor.begin_write()
    assert actor.pending is None and len(in_flight) == 2 and actor.dirty
    # arrives while the write is in flight
    assert actor.receive(touch_of(visit("v", 9)), now=3.0) is True
    actor.resume()  # the write was refused: its events go first into the next
    assert [t.timestamp for t in actor.pending] == [visit("v", n).timestamp for n in (0, 5, 9)]
    actor.written(delta_from_events("v", actor.begin_write()))
    assert not actor.dirty and actor.last_message == 3.0
    assert actor.known_days == (visit("v", 0).timestamp.date(),)


def test_days_already_written_are_not_kept_twice():
    actor = VisitorActor("v", 0)
    actor.receive(touch_of(visit("v", 0)), now=1.0)
    actor.written(delta_from_events("v", actor.begin_write()))
    actor.receive(touch_of(visit("v", 1)), now=2.0)  # the same day
    actor.written(delta_from_events("v", actor.begin_write()))
    assert actor.known_days == (visit("v", 0).timestamp.date(),)

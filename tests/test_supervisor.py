"""The supervisor's OTP rules, on trio's MockClock (``autojump_clock``): no test sleeps for real."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
import trio

from revivatech_actors.supervisor import (
    Activity,
    ChildSpec,
    InjectedCrash,
    Restart,
    State,
    Supervisor,
    SupervisorGaveUp,
    UnknownActor,
)


class Boom(Exception):
    pass


class Recorder:
    """Collects (time, event) pairs so tests can assert on order and timing."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []

    def note(self, event: str) -> None:
        self.events.append((trio.current_time(), event))

    def names(self) -> list[str]:
        return [event for _, event in self.events]

    def times(self, event: str) -> list[float]:
        return [at for at, name in self.events if name == event]


def idle_actor(name: str, rec: Recorder, *, ready_after: float = 0.0):
    async def run(*, task_status=trio.TASK_STATUS_IGNORED):
        rec.note(f"{name}:starting")
        await trio.sleep(ready_after)
        task_status.started()
        rec.note(f"{name}:running")
        try:
            await trio.sleep_forever()
        finally:
            rec.note(f"{name}:stopped")

    return run


def crashing_actor(name: str, rec: Recorder, *, after: float = 1.0, times: int | None = None):
    """Crashes ``after`` seconds once running, ``times`` times (forever when None)."""
    crashes = 0

    async def run(*, task_status=trio.TASK_STATUS_IGNORED):
        nonlocal crashes
        task_status.started()
        rec.note(f"{name}:running")
        if times is None or crashes < times:
            await trio.sleep(after)
            crashes += 1
            rec.note(f"{name}:crash")
            raise Boom(f"{name} crash {crashes}")
        await trio.sleep_forever()

    return run


def make_supervisor(*specs: ChildSpec, **kwargs) -> Supervisor:
    kwargs.setdefault("rng", random.Random(7))
    kwargs.setdefault("jitter", 0.0)
    return Supervisor("root", specs, **kwargs)


def state_of(sup: Supervisor, name: str) -> State:
    return next(node.state for node in sup.status().walk() if node.name == name)


def node(sup: Supervisor, name: str):
    return next(n for n in sup.status().walk() if n.name == name)


async def test_children_start_in_order_and_only_once_ready(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("a", idle_actor("a", rec, ready_after=2)),
        ChildSpec("b", idle_actor("b", rec, ready_after=3)),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        # b was not even started until a reported ready at t=2; the supervisor is ready at t=5.
        assert rec.events == [
            (0, "a:starting"),
            (2, "a:running"),
            (2, "b:starting"),
            (5, "b:running"),
        ]
        assert trio.current_time() == 5
        assert state_of(sup, "a") is State.RUNNING and state_of(sup, "root") is State.RUNNING
        sup.request_stop()
    assert rec.names()[-2:] == ["b:stopped", "a:stopped"]
    assert state_of(sup, "a") is State.STOPPED and state_of(sup, "b") is State.STOPPED


async def test_crash_restarts_only_the_crashed_child_and_records_the_error(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("steady", idle_actor("steady", rec)),
        ChildSpec("flaky", crashing_actor("flaky", rec, after=1, times=2)),
        backoff_initial=0.5,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(10)
        flaky = node(sup, "flaky")
        assert flaky.restarts == 2
        assert flaky.state is State.RUNNING
        assert flaky.last_error.type == "Boom" and flaky.last_error.message == "flaky crash 2"
        # the sibling never noticed
        assert rec.names().count("steady:running") == 1 and "steady:stopped" not in rec.names()
        assert node(sup, "steady").restarts == 0
        sup.request_stop()


async def test_backoff_doubles_per_recent_restart_and_is_capped(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("flaky", crashing_actor("flaky", rec, after=0, times=5)),
        backoff_initial=1.0,
        backoff_max=5.0,
        max_restarts=10,
        max_seconds=100,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(60)
        sup.request_stop()
    starts = rec.times("flaky:running")
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_jitter_keeps_delays_within_bounds(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("flaky", crashing_actor("flaky", rec, after=0, times=3)),
        backoff_initial=1.0,
        backoff_max=100.0,
        jitter=0.25,
        rng=random.Random(1),
        max_restarts=10,
        max_seconds=100,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(60)
        sup.request_stop()
    starts = rec.times("flaky:running")
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    for gap, nominal in zip(gaps, [1.0, 2.0, 4.0], strict=True):
        assert nominal * 0.75 <= gap <= nominal * 1.25
    assert len(set(gaps)) == 3 and gaps != [1.0, 2.0, 4.0]  # really jittered


async def test_intensity_exceeded_gives_up_after_stopping_children_in_order(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("steady", idle_actor("steady", rec)),
        ChildSpec("doomed", crashing_actor("doomed", rec, after=1)),
        max_restarts=3,
        max_seconds=60,
        backoff_initial=0.1,
    )
    with pytest.raises(
        SupervisorGaveUp, match=r"more than 3 restarts within 60 s; last: 'doomed'"
    ) as caught:
        await sup.run()  # returns only by giving up: nobody asks it to stop
    assert rec.names().count("doomed:crash") == 4  # 3 restarts allowed, the 4th crash ends it
    assert isinstance(caught.value.__cause__, BaseException)
    assert "steady:stopped" in rec.names()
    assert state_of(sup, "root") is State.FAILED
    assert state_of(sup, "doomed") is State.FAILED


async def test_restarts_spread_out_over_time_do_not_exceed_intensity(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("slow_crasher", crashing_actor("slow_crasher", rec, after=20)),
        max_restarts=2,
        max_seconds=30,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(200)  # ~10 crashes, never more than 2 within 30 s
        assert node(sup, "slow_crasher").restarts >= 9
        sup.request_stop()


async def test_restart_types(autojump_clock):
    rec = Recorder()

    def finishing(name):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            rec.note(f"{name}:running")
            await trio.sleep(1)

        return run

    sup = make_supervisor(
        ChildSpec("perm_exit", finishing("perm_exit"), restart=Restart.PERMANENT),
        ChildSpec("trans_exit", finishing("trans_exit"), restart=Restart.TRANSIENT),
        ChildSpec(
            "trans_crash", crashing_actor("trans_crash", rec, times=1), restart=Restart.TRANSIENT
        ),
        ChildSpec("temp_crash", crashing_actor("temp_crash", rec), restart=Restart.TEMPORARY),
        max_restarts=100,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(5.5)
        assert rec.names().count("perm_exit:running") > 1
        assert rec.names().count("trans_exit:running") == 1
        assert node(sup, "trans_exit").state is State.STOPPED
        assert rec.names().count("trans_crash:running") == 2
        assert node(sup, "trans_crash").state is State.RUNNING
        assert rec.names().count("temp_crash:running") == 1
        assert node(sup, "temp_crash").state is State.FAILED
        assert node(sup, "temp_crash").last_error.type == "Boom"
        sup.request_stop()


async def test_stop_runs_in_reverse_order_and_waits_for_each_child(autojump_clock):
    rec = Recorder()

    def slow_stopper(name, cleanup):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(cleanup)
                rec.note(f"{name}:stopped")

        return run

    sup = make_supervisor(
        ChildSpec("first", slow_stopper("first", 1)),
        ChildSpec("second", slow_stopper("second", 2)),
        ChildSpec("third", slow_stopper("third", 3)),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.request_stop()
    assert rec.events == [(3, "third:stopped"), (5, "second:stopped"), (6, "first:stopped")]


async def test_graceful_stop_hook_is_used_before_cancelling(autojump_clock):
    rec = Recorder()
    closed = trio.Event()

    async def drains(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await closed.wait()
        await trio.sleep(1)  # finishes its work, then returns by itself
        rec.note("drained")

    sup = make_supervisor(ChildSpec("drainer", drains, stop=closed.set, shutdown_timeout=5))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.request_stop()
    assert rec.events == [(1, "drained")]
    assert state_of(sup, "drainer") is State.STOPPED


async def test_child_ignoring_cancellation_is_abandoned_at_its_deadline(autojump_clock):
    rec = Recorder()

    async def stubborn(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1000)
            rec.note("stubborn:finally-done")

    sup = make_supervisor(
        ChildSpec("early", idle_actor("early", rec)),
        ChildSpec("stubborn", stubborn, shutdown_timeout=4),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.request_stop()
        await trio.sleep(4.01)
        # the stubborn child was given up on at its deadline and the next child stopped at once
        assert rec.times("early:stopped") == [4]
        stubborn_node = node(sup, "stubborn")
        assert stubborn_node.state is State.FAILED
        assert stubborn_node.last_error.type == "ShutdownTimeout"
    # the nursery still waited for it: nothing leaks out of structured concurrency
    assert rec.times("stubborn:finally-done") == [1000]
    assert node(sup, "stubborn").state is State.FAILED


async def test_stop_during_restart_backoff_is_immediate(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("flaky", crashing_actor("flaky", rec, after=1)), backoff_initial=50
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(2)
        assert node(sup, "flaky").state is State.RESTARTING
        sup.request_stop()
    assert trio.current_time() == 2
    assert node(sup, "flaky").state is State.STOPPED


async def test_stop_requested_while_a_child_is_still_starting(autojump_clock):
    rec = Recorder()
    sup = make_supervisor(
        ChildSpec("a", idle_actor("a", rec)),
        ChildSpec("slow", idle_actor("slow", rec, ready_after=100)),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        sup.request_stop()
    assert trio.current_time() == 1
    assert "slow:running" not in rec.names()
    assert rec.names()[-1] == "a:stopped"


async def test_status_record_reports_inbox_and_activity(autojump_clock):
    send, receive = trio.open_memory_channel(8)
    activity = Activity()

    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        for _ in range(3):  # handles three, then stops reading: the rest stays in the inbox
            await receive.receive()
            activity.record()
        await trio.sleep_forever()

    sup = make_supervisor(ChildSpec("worker", worker, inbox=receive, activity=activity))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for i in range(3):
            await send.send(i)
        await trio.sleep(0.1)
        for i in range(5):
            send.send_nowait(i)
        status = node(sup, "worker")
        assert status.inbox.depth == 5 and status.inbox.capacity == 8
        assert status.handled == 3
        assert status.last_activity is not None
        sup.request_stop()


async def test_nested_supervisor_forms_a_tree_and_stops_in_order(autojump_clock):
    rec = Recorder()
    inner = Supervisor("inner", [ChildSpec("leaf", idle_actor("leaf", rec))])
    sup = make_supervisor(ChildSpec("before", idle_actor("before", rec)), inner.as_child())
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        tree = sup.status()
        assert [c.name for c in tree.children] == ["before", "inner"]
        assert tree.children[1].kind == "supervisor"
        assert [c.name for c in tree.children[1].children] == ["leaf"]
        assert tree.children[1].children[0].state is State.RUNNING
        sup.request_stop()
    assert rec.names()[-2:] == ["leaf:stopped", "before:stopped"]


async def test_inject_crash_restarts_the_named_actor_deep_in_the_tree(autojump_clock):
    rec = Recorder()
    inner = Supervisor("inner", [ChildSpec("leaf", idle_actor("leaf", rec))], backoff_initial=0.1)
    sup = make_supervisor(inner.as_child())
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.inject_crash("leaf")
        await trio.sleep(1)
        leaf = node(sup, "leaf")
        assert leaf.restarts == 1 and leaf.state is State.RUNNING
        assert leaf.last_error.type == "InjectedCrash"
        assert "operator" in leaf.last_error.message
        assert rec.names().count("leaf:running") == 2
        with pytest.raises(UnknownActor):
            sup.inject_crash("nobody")
        sup.request_stop()
    with pytest.raises(RuntimeError, match="not running"):
        sup.inject_crash("leaf")
    assert InjectedCrash.__name__ == "InjectedCrash"


async def test_crash_during_start_is_retried_before_the_next_child_starts(autojump_clock):
    rec = Recorder()
    attempts = 0

    async def fails_twice_then_starts(*, task_status=trio.TASK_STATUS_IGNORED):
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise Boom("not yet")
        task_status.started()
        rec.note("late:running")
        await trio.sleep_forever()

    sup = make_supervisor(
        ChildSpec("late", fails_twice_then_starts),
        ChildSpec("after", idle_actor("after", rec)),
        backoff_initial=1,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert rec.names()[:2] == ["late:running", "after:starting"]
        assert node(sup, "late").restarts == 2
        sup.request_stop()


def test_duplicate_child_names_are_refused():
    async def run(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()

    with pytest.raises(ValueError, match="unique"):
        Supervisor("root", [ChildSpec("x", run), ChildSpec("x", run)])


async def test_a_child_ending_during_shutdown_is_not_restarted(autojump_clock):
    rec = Recorder()
    upstream_closed = trio.Event()

    async def consumer(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await upstream_closed.wait()  # its inbox closes when the producer stops
        rec.note("consumer:ended")

    async def producer(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            upstream_closed.set()

    sup = make_supervisor(
        ChildSpec("consumer", consumer),
        ChildSpec("producer", producer),
        max_restarts=0,  # a single restart would make it give up
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.request_stop()
    assert rec.names() == ["consumer:ended"]
    assert node(sup, "consumer").restarts == 0 and node(sup, "consumer").state is State.STOPPED
    assert state_of(sup, "root") is State.STOPPED


async def test_a_nested_supervisor_that_gave_up_is_restarted_fresh_by_its_parent(autojump_clock):
    rec = Recorder()
    inner = Supervisor(
        "inner",
        [ChildSpec("doomed", crashing_actor("doomed", rec, after=1, times=3))],
        max_restarts=1,
        max_seconds=60,
        backoff_initial=0.1,
        jitter=0.0,
    )
    sup = make_supervisor(inner.as_child(), max_restarts=5, backoff_initial=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(30)
        # inner gave up after its 2nd crash; the parent restarted it, and its fresh child crashed
        # once more, then ran: three crashes in all, and the tree is running again
        assert rec.names().count("doomed:crash") == 3
        assert node(sup, "inner").restarts == 1 and node(sup, "inner").state is State.RUNNING
        assert node(sup, "inner").last_error.type == "SupervisorGaveUp"
        assert node(sup, "doomed").state is State.RUNNING
        sup.request_stop()
    assert node(sup, "inner").state is State.STOPPED

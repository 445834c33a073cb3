"""Erlang/OTP-style supervision of trio tasks.

A :class:`Supervisor` runs its children, each described by a :class:`ChildSpec`, in a nursery it
owns, with the ``one_for_one`` strategy:

* children start in order, each with ``nursery.start``: the next child starts only once the
  previous one called ``task_status.started()``, so an actor counts as running only when it is
  ready;
* a child that crashes is restarted alone (its siblings are never cancelled), after an
  exponential backoff with jitter; ``permanent`` children are always restarted, ``transient``
  ones only after a crash, ``temporary`` ones never;
* more than ``max_restarts`` restarts within ``max_seconds`` make the supervisor give up: it stops
  its children in order and raises :class:`SupervisorGaveUp`, which its own parent treats as a
  crash — up to the root, where the process exits non-zero;
* :meth:`Supervisor.request_stop` stops the children in the reverse of their start order, each
  within its own deadline; a child that outlives its deadline is cancelled, and one that ignores
  even that is abandoned (and reported ``failed``) so the others still stop in time.

Every child has a status record (state, restarts, last error, inbox depth and capacity, messages
handled, last activity), read through :meth:`Supervisor.status` as an :class:`ActorStatus` tree.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

import attrs
import trio

__all__ = [
    "Activity",
    "ActorStatus",
    "ChildSpec",
    "ErrorRecord",
    "InboxStats",
    "InjectedCrash",
    "Restart",
    "State",
    "Supervisor",
    "SupervisorGaveUp",
    "UnknownActor",
]

logger = logging.getLogger(__name__)

#: After a child's graceful deadline has passed, it is cancelled and given this long to unwind
#: before the supervisor abandons it and moves on to the next child.
CANCEL_GRACE = 0.5


class Restart(enum.Enum):
    """When a child that ended is started again."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a crash
    TEMPORARY = "temporary"  # never


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class SupervisorGaveUp(Exception):
    """Raised by :meth:`Supervisor.run` when restart intensity was exceeded."""


class InjectedCrash(Exception):
    """The error a child is made to crash with by :meth:`Supervisor.inject_crash`."""


class UnknownActor(LookupError):
    """No child of that name in the supervision tree."""


class _HasStatistics(Protocol):
    def statistics(self) -> Any: ...


@attrs.frozen
class ErrorRecord:
    type: str
    message: str
    time: float  # wall clock, seconds since the epoch

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorRecord:
        leaf = _single_leaf(exc)
        return cls(type=type(leaf).__name__, message=str(leaf), time=time.time())


@attrs.frozen
class InboxStats:
    depth: int
    capacity: float  # math.inf for an unbounded channel (never used by actors, but representable)


@attrs.define
class Activity:
    """Counters an actor keeps about itself; the supervisor reads them for its status record."""

    handled: int = 0
    last_activity: float | None = None  # wall clock

    def record(self, count: int = 1) -> None:
        """Note that ``count`` messages were handled just now."""
        self.handled += count
        self.last_activity = time.time()


@attrs.frozen
class ChildSpec:
    """How to run, restart and stop one child.

    ``run`` is an async callable taking ``task_status`` as a keyword; it calls
    ``task_status.started()`` once it is ready to serve. ``stop``, when given, asks the child to
    finish gracefully (for example by closing its inbox); without it, stopping cancels the child.
    ``shutdown_timeout`` bounds the graceful part of stopping.
    """

    name: str
    run: Callable[..., Awaitable[object]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0
    stop: Callable[[], None] | None = None
    inbox: _HasStatistics | None = None
    activity: Activity | None = None
    subtree: Supervisor | None = None


@attrs.frozen
class ActorStatus:
    """A point-in-time view of one node of the supervision tree."""

    name: str
    kind: str  # "actor" or "supervisor"
    state: State
    restart: Restart
    restarts: int
    last_error: ErrorRecord | None
    inbox: InboxStats | None
    handled: int
    last_activity: float | None
    started_at: float | None
    children: tuple[ActorStatus, ...] = ()

    def walk(self):
        """Yield this node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@attrs.define(eq=False)
class _Child:
    spec: ChildSpec
    state: State = State.STARTING
    restarts: int = 0
    last_error: ErrorRecord | None = None
    started_at: float | None = None
    stopping: bool = False
    scope: trio.CancelScope | None = None
    nursery: trio.Nursery | None = None
    restart_times: deque[float] = attrs.Factory(deque)
    done: trio.Event = attrs.Factory(trio.Event)
    launched: bool = False  # its supervising task began (children after a failed start never do)

    def status(self) -> ActorStatus:
        spec = self.spec
        inbox = None
        if spec.inbox is not None:
            stats = spec.inbox.statistics()
            inbox = InboxStats(depth=stats.current_buffer_used, capacity=stats.max_buffer_size)
        activity = spec.activity or Activity()
        children: tuple[ActorStatus, ...] = ()
        if spec.subtree is not None:
            children = tuple(child.status() for child in spec.subtree._children)
        return ActorStatus(
            name=spec.name,
            kind="supervisor" if spec.subtree is not None else "actor",
            state=self.state,
            restart=spec.restart,
            restarts=self.restarts,
            last_error=self.last_error,
            inbox=inbox,
            handled=activity.handled,
            last_activity=activity.last_activity,
            started_at=self.started_at,
            children=children,
        )


def _child_specs(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    # attrs types a converter's argument from its signature: tuple's own is generic
    return tuple(children)


@attrs.define(eq=False)
class Supervisor:
    """Runs ``children`` one_for_one; see the module docstring for the rules.

    Args:
        name: shown in the status tree and in log lines.
        children: started in this order, stopped in the reverse order.
        max_restarts, max_seconds: restart intensity; more restarts than ``max_restarts`` (of all
            children together) within ``max_seconds`` make the supervisor give up.
        backoff_initial, backoff_max: the delay before a child's first restart, doubled for each
            further restart of that child within ``max_seconds``, capped at ``backoff_max``.
        jitter: each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` so
            that children crashing together do not restart in lockstep.
    """

    name: str
    children: Sequence[ChildSpec] = attrs.field(converter=_child_specs)
    max_restarts: int = 5
    max_seconds: float = 30.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    jitter: float = 0.2
    rng: random.Random = attrs.Factory(random.Random)
    _children: list[_Child] = attrs.field(init=False)
    _state: State = attrs.field(init=False, default=State.STARTING)
    _stop_requested: trio.Event = attrs.field(init=False, factory=trio.Event)
    _startup_scope: trio.CancelScope | None = attrs.field(init=False, default=None)
    _restart_times: deque[float] = attrs.field(init=False, factory=deque)
    _failure: SupervisorGaveUp | None = attrs.field(init=False, default=None)
    _started_at: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        names = [spec.name for spec in self.children]
        if len(set(names)) != len(names):
            msg = f"supervisor {self.name!r}: child names must be unique, got {names}"
            raise ValueError(msg)
        self._children = [_Child(spec) for spec in self.children]

    # -- public API -------------------------------------------------------------------------

    def as_child(
        self, *, restart: Restart = Restart.PERMANENT, shutdown_timeout: float = 30.0
    ) -> ChildSpec:
        """A spec that runs this supervisor under another one; stopping it stops it in order."""
        return ChildSpec(
            name=self.name,
            run=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            stop=self.request_stop,
            subtree=self,
        )

    def status(self) -> ActorStatus:
        """The whole tree below (and including) this supervisor."""
        return ActorStatus(
            name=self.name,
            kind="supervisor",
            state=self._state,
            restart=Restart.PERMANENT,
            restarts=0,
            last_error=ErrorRecord.from_exception(self._failure) if self._failure else None,
            inbox=None,
            handled=0,
            last_activity=None,
            started_at=self._started_at,
            children=tuple(child.status() for child in self._children),
        )

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop every child in reverse start order and return. Idempotent."""
        self._stop_requested.set()
        if self._startup_scope is not None:
            self._startup_scope.cancel()

    def inject_crash(self, name: str) -> None:
        """Make the running child ``name`` (searched in the whole tree) crash with
        :class:`InjectedCrash`, exactly as if its own code had raised it.

        Raises:
            UnknownActor: no child of that name.
            RuntimeError: the child is not running right now.
        """
        child = self._find(name)
        if child is None:
            raise UnknownActor(name)
        if child.state is not State.RUNNING or child.nursery is None:
            msg = f"actor {name!r} is {child.state.value}, not running"
            raise RuntimeError(msg)

        async def crash() -> None:
            msg = f"crash injected into {name!r} by an operator"
            raise InjectedCrash(msg)

        child.nursery.start_soon(crash)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, report started, supervise until stopped.

        Returns after :meth:`request_stop` once every child has stopped or been abandoned.

        Raises:
            SupervisorGaveUp: restart intensity was exceeded (after stopping the children).
        """
        self._begin_run()
        try:
            async with trio.open_nursery() as nursery:
                try:
                    with trio.CancelScope() as self._startup_scope:
                        for child in self._children:
                            await nursery.start(self._supervise, child)
                            if self._stop_requested.is_set():
                                break
                    self._startup_scope = None
                    if not self._stop_requested.is_set():
                        self._state = State.RUNNING
                        self._started_at = time.time()
                        task_status.started()
                        await self._stop_requested.wait()
                finally:
                    # Ordered stop runs even if we are being cancelled ourselves; each child's
                    # wait is bounded, so the shield cannot hang us forever.
                    with trio.CancelScope(shield=True):
                        self._state = State.STOPPING
                        for child in reversed(self._children):
                            await self._stop_child(child)
                    nursery.cancel_scope.cancel()
        finally:
            self._state = State.FAILED if self._failure else State.STOPPED
        if self._failure is not None:
            raise self._failure

    # -- internals --------------------------------------------------------------------------

    def _begin_run(self) -> None:
        """Fresh state for a run: a supervisor restarted by its own parent starts its children
        anew (as OTP does), with no memory of the stop or failure that ended the last run."""
        self._state = State.STARTING
        if self._stop_requested.is_set() or self._failure is not None:
            self._stop_requested = trio.Event()
            self._failure = None
            self._restart_times.clear()
            self._children = [_Child(spec) for spec in self.children]

    def _find(self, name: str) -> _Child | None:
        for child in self._children:
            if child.spec.name == name:
                return child
            if child.spec.subtree is not None:
                found = child.spec.subtree._find(name)
                if found is not None:
                    return found
        return None

    async def _supervise(self, child: _Child, *, task_status: trio.TaskStatus[None]) -> None:
        """Run one child, restarting it by its policy, until it is stopped or given up on."""
        spec = child.spec
        reported = False
        child.launched = True
        try:
            while True:
                crash: Exception | None = None
                child.state = State.STARTING
                try:
                    # The scope is outside the except clause on purpose: an error raised while
                    # the child unwinds from a cancellation arrives grouped with Cancelled, and
                    # only the scope's exit turns that into a plain (catchable) Exception.
                    with trio.CancelScope() as child.scope:
                        async with trio.open_nursery() as child.nursery:
                            await child.nursery.start(spec.run)
                            child.state = State.RUNNING
                            child.started_at = time.time()
                            if not reported:
                                task_status.started()
                                reported = True
                except Exception as exc:
                    crash = exc
                child.nursery = None
                if crash is not None:
                    child.last_error = ErrorRecord.from_exception(crash)
                if child.stopping or self._stop_requested.is_set():
                    # Nothing is restarted once the supervisor stops: a child may end on its own
                    # because a sibling stopped before it (a closed inbox), and that is no crash.
                    if crash is not None:
                        logger.error(
                            "%s/%s failed while stopping", self.name, spec.name, exc_info=crash
                        )
                    if child.state is not State.FAILED:  # an abandoned child stays failed
                        child.state = State.FAILED if crash is not None else State.STOPPED
                    return
                if spec.restart is Restart.TEMPORARY or (
                    spec.restart is Restart.TRANSIENT and crash is None
                ):
                    if crash is not None:
                        logger.error(
                            "%s/%s crashed (temporary: not restarted)",
                            self.name,
                            spec.name,
                            exc_info=crash,
                        )
                    else:
                        logger.info("%s/%s finished", self.name, spec.name)
                    child.state = State.FAILED if crash is not None else State.STOPPED
                    return
                if not self._note_restart(child, crash):
                    child.state = State.FAILED
                    return
                delay = self._backoff(child)
                if crash is not None:
                    logger.error(
                        "%s/%s crashed; restart %d in %.2f s",
                        self.name,
                        spec.name,
                        child.restarts + 1,
                        delay,
                        exc_info=crash,
                    )
                else:
                    logger.warning(
                        "%s/%s exited; restart %d in %.2f s",
                        self.name,
                        spec.name,
                        child.restarts + 1,
                        delay,
                    )
                child.state = State.RESTARTING
                child.restarts += 1
                with trio.CancelScope() as child.scope:
                    await trio.sleep(delay)
                if child.stopping:
                    child.state = State.STOPPED
                    return
        finally:
            child.scope = None
            child.nursery = None
            child.done.set()
            if not reported:
                # Never leave our parent waiting in nursery.start(): a child that could not
                # start (given up on, or stopped during startup) still ends its start phase.
                task_status.started()

    def _note_restart(self, child: _Child, crash: Exception | None) -> bool:
        """Count one restart against the intensity limit; give up when it is exceeded."""
        now = trio.current_time()
        for times in (self._restart_times, child.restart_times):
            times.append(now)
            while times and times[0] < now - self.max_seconds:
                times.popleft()
        if len(self._restart_times) <= self.max_restarts:
            return True
        reason = (
            f"{type(_single_leaf(crash)).__name__}: {_single_leaf(crash)}"
            if crash
            else "exited normally"
        )
        msg = (
            f"supervisor {self.name!r} gave up: more than {self.max_restarts} restarts within "
            f"{self.max_seconds:g} s; last: {child.spec.name!r} ({reason})"
        )
        logger.critical(msg, exc_info=crash)
        self._failure = SupervisorGaveUp(msg)
        self._failure.__cause__ = crash
        self.request_stop()
        return False

    def _backoff(self, child: _Child) -> float:
        """Delay before restarting ``child``: exponential in its recent restarts, jittered."""
        recent = len(child.restart_times)  # includes the restart about to happen
        base = self.backoff_initial * 2 ** (recent - 1)
        return min(self.backoff_max, base * self.rng.uniform(1 - self.jitter, 1 + self.jitter))

    async def _stop_child(self, child: _Child) -> None:
        """Stop one child within its deadline; abandon it (state ``failed``) if it will not."""
        spec = child.spec
        child.stopping = True
        if child.done.is_set():
            logger.info(
                "%s/%s stopped (it had already finished: %s)",
                self.name,
                spec.name,
                child.state.value,
            )
            return
        if not child.launched:  # the start ended before reaching it: nothing to stop
            child.state = State.STOPPED
            return
        began = trio.current_time()
        stop = spec.stop if child.state is State.RUNNING else None
        graceful = stop is not None
        child.state = State.STOPPING
        if stop is not None:
            stop()
        elif child.scope is not None:
            child.scope.cancel()
        with trio.move_on_after(spec.shutdown_timeout):
            await child.done.wait()
        if not child.done.is_set() and graceful and child.scope is not None:
            logger.warning(
                "%s/%s did not stop within %g s; cancelling it",
                self.name,
                spec.name,
                spec.shutdown_timeout,
            )
            child.scope.cancel()
            with trio.move_on_after(CANCEL_GRACE):
                await child.done.wait()
        if child.done.is_set():
            logger.info(
                "%s/%s stopped in %.3f s", self.name, spec.name, trio.current_time() - began
            )
            return
        logger.error(
            "%s/%s ignored cancellation past its deadline; abandoned", self.name, spec.name
        )
        child.last_error = ErrorRecord(
            type="ShutdownTimeout",
            message=f"did not stop within {spec.shutdown_timeout:g} s",
            time=time.time(),
        )
        child.state = State.FAILED


def _single_leaf(exc: BaseException | None) -> BaseException | None:
    """The one exception inside (possibly nested) single-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc

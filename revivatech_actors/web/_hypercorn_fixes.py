"""Everything that reaches into the internals of Hypercorn 0.18 (trio worker), h11 and wsproto.

No other module of the service touches them; :func:`apply` installs what is below (idempotent),
and the web server calls it when it starts, not at import. tests/test_hypercorn_fixes.py pins
the source of every Hypercorn class patched or read here: a new Hypercorn that changes one fails
that test, which says which fix to re-check.

Per connection (``TCPServer``):

* **Errors stay in their connection.** Hypercorn lets an exception escape a connection's task
  (e.g. h11's LocalProtocolError when a WebSocket client sends a frame before the handshake's
  answer), and it then stops the whole server with every other connection on it. The connection
  task is wrapped: an error ends that connection only.
* **Aborting a connection** by its peer address (:func:`abort_connection`): Hypercorn shields
  each socket write from cancellation, so a peer that stops reading blocks its sender for good;
  closing the socket is the only way to free it.
* **The limits of** :mod:`.connection_limits`, on a server whose config carries a guard
  (:func:`guard_config`): the cap on open connections, and a read loop that times each phase of
  a request itself (headers, body) and the keep-alive wait between requests. Hypercorn's own
  keep-alive timer is a task started after each answer; under Quart-Trio that start is
  cancelled with the request's task, so idle connections never timed out and held up a
  graceful stop. Without a guard, Hypercorn's read loop runs as it is.
* **Idle keep-alive connections on an unguarded server**: the idle-state change
  (``Updated(idle=True)``) runs shielded, so the start of Hypercorn's keep-alive task is not
  cancelled with the request's task.

Per request and WebSocket:

* a request h11 cannot parse is answered with a JSON body naming the problem (431 or 400)
  instead of Hypercorn's empty one;
* on a guarded server, the switch to HTTP/2 on cleartext is not taken (the connection's
  deadlines would not hold there);
* a WebSocket message too large is closed with 1009 and a reason naming the setting;
* a WebSocket's ping task, which sleeps ``websocket_ping_interval`` between pings and looks
  whether its stream closed only when it wakes, is cancelled when its stream closes, so a
  client that left does not hold up a stop for up to that interval.

**Writing a WebSocket message at once** (:class:`DirectWriter`): sending one message through
the ASGI layers, wsproto and a shielded ``send_all`` costs tens of microseconds and a task
switch, and the live feed sends the same snapshot to thousands of clients. On a plain-TCP
HTTP/1.1 WebSocket whose connection is not being written to, the writer puts the message's
frame (made once for all clients) straight into the socket without waiting. What the kernel
does not take at once is the connection's *pending* bytes: every later write on the connection
(Hypercorn's pongs, pings and close frames included) sends them first, so frames never
interleave. The frame is never compressed, which permessage-deflate allows per message
(RFC 7692); the connection's compression context is untouched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import TrioSingleTask, WorkerContext
from hypercorn.utils import parse_socket_addr
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection
from wsproto.frame_protocol import CloseReason, FrameProtocol

from .connection_limits import (
    ConnectionGuard,
    ConnectionLimits,
    Phase,
    message_too_big_reason,
    parse_error_response,
    phase_deadline,
    timeout_response,
)

__all__ = ["REACHED", "DirectWriter", "abort_connection", "apply", "direct_writer", "guard_config"]

logger = logging.getLogger(__name__)

_APPLIED = "_revivatech_fixed"  # marks TCPServer once apply() ran
_GUARD = "revivatech_connection_guard"  # a guarded server's ConnectionGuard, on its config
_WAKE = "_revivatech_wake"  # the read loop's wake-up scope, on its TCPServer
_PINGS = "_revivatech_pings"  # a WebSocket's ping task's scope, on its WSStream
_CLOSED = "_revivatech_closed"  # a WebSocket's closed flag, on its WSStream
_PENDING = "_revivatech_pending"  # bytes a DirectWriter could not write at once, on its TCPServer

#: The Hypercorn classes whose methods are replaced here, or whose internals are used: the
#: connection (TCPServer) and what its read loop reaches through it (ProtocolWrapper.protocol,
#: TaskGroup._nursery, TrioSingleTask.stop, WorkerContext.terminated).
REACHED = (
    TCPServer,
    H11Protocol,
    WSStream,
    ProtocolWrapper,
    TaskGroup,
    TrioSingleTask,
    WorkerContext,
)

# Hypercorn's own functions, taken before apply() replaces them.
_hypercorn_run: Any = TCPServer.run
_hypercorn_read_data: Any = TCPServer._read_data
_hypercorn_protocol_send: Any = TCPServer.protocol_send
_hypercorn_check_protocol: Any = H11Protocol._check_protocol
_hypercorn_send_wsproto_event: Any = WSStream._send_wsproto_event
_hypercorn_send_pings: Any = WSStream._send_pings

#: Open connections by peer address (the ASGI scope's ``client``), for :func:`abort_connection`.
_OPEN_CONNECTIONS: dict[tuple[str, int], TCPServer] = {}


def guard_config(config: HypercornConfig, limits: ConnectionLimits) -> ConnectionGuard:
    """Attach ``limits`` to a Hypercorn config (and set its header size limit): every connection
    of a server started with ``config`` is held to them. Returns the guard (its open count)."""
    guard = ConnectionGuard(limits)
    config.h11_max_incomplete_size = limits.max_header_size
    setattr(config, _GUARD, guard)
    return guard


def _guard(server: TCPServer) -> ConnectionGuard | None:
    return getattr(server.config, _GUARD, None)


async def abort_connection(client: tuple[str, int] | list | None) -> bool:
    """Close the TCP connection of the peer ``client`` (the ASGI scope's ``client``) at once,
    whatever is being written to it; False if there is no such connection."""
    connection = _OPEN_CONNECTIONS.get(tuple(client)) if client else None
    if connection is None:
        return False
    await connection.stream.aclose()
    return True


class DirectWriter:
    """Writes text messages to one WebSocket connection from the calling task, without waiting
    (see the module docstring); made by :func:`direct_writer`."""

    __slots__ = ("_server", "_stream")

    def __init__(self, server: TCPServer, stream: WSStream) -> None:
        self._server = server
        self._stream = stream

    def write_now(self, text: str) -> int | None:
        """Write the message ``text`` now: None if that cannot be done (a write is under way or
        pending, or the WebSocket is closing), and nothing was written; else how many of its
        bytes are pending (0: it was written whole), which :meth:`flush` sends."""
        server, stream = self._server, self._stream
        if (
            server.send_lock.locked()
            or _PENDING in server.__dict__
            or stream.closed
            or stream.connection.state is not ConnectionState.OPEN
        ):
            return None
        frame = _text_frame(text)
        fileno = server.stream.socket.fileno()
        if fileno < 0:  # closed under us: the ordinary path finds out and ends the connection
            return None
        try:
            written = os.write(fileno, frame)
        except BlockingIOError:
            written = 0
        except OSError:
            return None
        if written < len(frame):
            server.__dict__[_PENDING] = memoryview(frame)[written:]
        return len(frame) - written

    async def flush(self) -> None:
        """Send the connection's pending bytes, if any (whoever writes next does it too)."""
        await _flush_pending(self._server)


def direct_writer(client: tuple[str, int] | list | None) -> DirectWriter | None:
    """A :class:`DirectWriter` for the accepted WebSocket of the peer ``client`` (the ASGI
    scope's ``client``); None unless it is a WebSocket over plain TCP and HTTP/1.1."""
    server = _OPEN_CONNECTIONS.get(tuple(client)) if client else None
    if server is None or not isinstance(server.stream, trio.SocketStream):
        return None  # TLS: the bytes must go through the SSL stream
    protocol = getattr(server.protocol, "protocol", None)
    stream = getattr(protocol, "stream", None)
    if not isinstance(protocol, H11Protocol) or not isinstance(stream, WSStream):
        return None  # HTTP/2: frames go inside the connection's own
    return DirectWriter(server, stream)


@functools.lru_cache(maxsize=4)
def _text_frame(text: str) -> bytes:
    """The uncompressed, unfragmented server frame of ``text``; the last few are kept, as one
    snapshot goes to every client."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))


async def _flush_pending(server: TCPServer) -> None:
    if _PENDING not in server.__dict__:
        return
    async with server.send_lock:
        pending = server.__dict__.pop(_PENDING, None)
        if pending is None:
            return
        try:
            with trio.CancelScope(shield=True):  # as Hypercorn sends: a frame is never cut
                await server.stream.send_all(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await server.protocol.handle(Closed())


# ---------------------------------------------------------------------- TCPServer (per connection)


async def _run(self: TCPServer) -> None:
    """Hypercorn's connection task, admitted by the guard, registered by peer address, and with
    its errors kept inside it."""
    guard = _guard(self)
    if guard is not None and not guard.admit():
        await self.stream.aclose()
        return
    try:
        key = parse_socket_addr(self.stream.socket.family, self.stream.socket.getpeername())
    except OSError:
        key = None
    if key is not None:
        _OPEN_CONNECTIONS[key] = self
    try:
        await _hypercorn_run(self)
    except* Exception as group:  # the connection is closed by now (TCPServer.run's finally)
        logger.warning("a connection failed and was closed: %r", group.exceptions[0])
    finally:
        if guard is not None:
            guard.release()
        if key is not None and _OPEN_CONNECTIONS.get(key) is self:
            del _OPEN_CONNECTIONS[key]


def _phase(server: TCPServer) -> Phase:
    protocol = getattr(getattr(server, "protocol", None), "protocol", None)
    connection = getattr(protocol, "connection", None)
    if not isinstance(connection, h11.Connection):  # HTTP/2, or a WebSocket past its upgrade
        return Phase.OTHER
    state = connection.their_state
    if state is h11.IDLE:
        return Phase.HEADERS if connection.trailing_data[0] else Phase.IDLE
    if state is h11.SEND_BODY:
        return Phase.BODY
    return Phase.OTHER


async def _read_data(self: TCPServer) -> None:
    """Hypercorn's read loop (``TCPServer._read_data``) timing every phase itself: the header
    and body deadlines, and the keep-alive timer between requests. One watcher per connection
    wakes the loop at a stop."""
    guard = _guard(self)
    if guard is None:
        return await _hypercorn_read_data(self)
    limits = guard.limits
    keep_alive = self.config.keep_alive_timeout
    read_timeout = self.config.read_timeout or math.inf
    terminated = self.context.terminated
    await self.idle_task.stop()  # Hypercorn's keep-alive timer: this loop keeps time instead
    nursery = self._task_group._nursery
    assert nursery is not None  # entered by TCPServer.run before it reads
    watcher = await nursery.start(_wake_at_stop, self)
    # The first request's headers are timed from the connection's opening.
    phase, since, fresh = Phase.HEADERS, trio.current_time(), True
    try:
        while True:
            now = _phase(self)
            if now is not phase and not (fresh and now is Phase.IDLE):
                phase, since = now, trio.current_time()
            if terminated.is_set() and phase in (Phase.IDLE, Phase.HEADERS):
                break  # stopping: a connection with no request in hand closes now
            due = phase_deadline(phase, since, limits, keep_alive)
            data = None
            with trio.move_on_at(min(due, trio.current_time() + read_timeout)) as scope:
                with trio.CancelScope() as wake:
                    self.__dict__[_WAKE] = wake
                    try:
                        data = await self.stream.receive_some(MAX_RECV)
                    except (trio.ClosedResourceError, trio.BrokenResourceError):
                        break
                    finally:
                        self.__dict__[_WAKE] = None
            if wake.cancelled_caught:  # an answer ended, or the server stops: look again
                continue
            if scope.cancelled_caught:
                if trio.current_time() >= due and phase in (Phase.HEADERS, Phase.BODY):
                    await _time_out(self, phase, limits)
                # else the keep-alive timer, or Hypercorn's read timeout: closed, as Hypercorn does
                break
            assert data is not None  # neither scope was cancelled: receive_some answered
            if data:
                if not fresh and _phase(self) is Phase.IDLE:  # a new request begins: from now
                    phase, since = Phase.HEADERS, trio.current_time()
                fresh = False
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())
    finally:
        watcher.cancel()


async def _wake_at_stop(server: TCPServer, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
    with trio.CancelScope() as scope:
        task_status.started(scope)
        await server.context.terminated.wait()
        wake = server.__dict__.get(_WAKE)
        if wake is not None:
            wake.cancel()


async def _protocol_send(self: TCPServer, event: Any) -> None:
    """Hypercorn's protocol events to the connection. On a guarded server idleness is the read
    loop's business (no task started and stopped per request); on another, the idle-state
    change runs shielded, so that the request task's cancellation does not cancel it (taking a
    lock and starting a task: brief). Bytes a :class:`DirectWriter` left pending go first."""
    if isinstance(event, RawData):
        await _flush_pending(self)
    if isinstance(event, Updated):
        if _guard(self) is not None:
            if event.idle:  # an answer ended: the read loop looks at its phase again
                wake = self.__dict__.get(_WAKE)
                if wake is not None:
                    wake.cancel()
            return
        with trio.CancelScope(shield=True):
            await _hypercorn_protocol_send(self, event)
    else:
        await _hypercorn_protocol_send(self, event)


async def _time_out(server: TCPServer, phase: Phase, limits: ConnectionLimits) -> None:
    """Answer 408 when nothing of an answer was sent yet (else the connection just closes)."""
    connection = server.protocol.protocol.connection
    logger.debug(
        "closing a connection whose client was too slow sending a request's %s", phase.value
    )
    # Timed phases are HTTP/1.1 ones (see _phase): the connection is h11's.
    answer = isinstance(connection, h11.Connection) and connection.our_state in (
        h11.IDLE,
        h11.SEND_RESPONSE,
    )
    # The request's stream is closed first: the app learns its client is gone, and whatever it
    # would still answer is dropped rather than sent after this 408.
    await server.protocol.handle(Closed())
    if answer:
        async with server.send_lock:
            with (
                trio.CancelScope(shield=True),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await server.stream.send_all(timeout_response(phase, limits))


# ------------------------------------------------------------------------ H11Protocol, WSStream


async def _send_error_response(self: H11Protocol, status_code: int) -> None:
    """Hypercorn's answer to a request h11 cannot parse, with a JSON body naming the problem."""
    data = parse_error_response(status_code, self.config.h11_max_incomplete_size)
    await self.send(RawData(data=data))


async def _check_protocol(self: H11Protocol, event: h11.Request) -> None:
    """Hypercorn's switch to HTTP/2 on cleartext, skipped on a guarded server."""
    if getattr(self.config, _GUARD, None) is None:
        await _hypercorn_check_protocol(self, event)


async def _send_wsproto_event(self: WSStream, event: Any) -> None:
    """Hypercorn's WebSocket send, with a reason naming the limit on its 1009 close."""
    if (
        isinstance(event, CloseConnection)
        and event.code == CloseReason.MESSAGE_TOO_BIG
        and not event.reason
    ):
        reason = message_too_big_reason(self.config.websocket_max_message_size)
        event = CloseConnection(code=event.code, reason=reason)
    await _hypercorn_send_wsproto_event(self, event)


def _is_closed(self: WSStream) -> bool:
    return self.__dict__.get(_CLOSED, False)


def _set_closed(self: WSStream, value: bool) -> None:
    self.__dict__[_CLOSED] = value
    pings = self.__dict__.get(_PINGS)
    if value and pings is not None:
        pings.cancel()


async def _pings_until_closed(self: WSStream) -> None:
    with trio.CancelScope() as scope:
        self.__dict__[_PINGS] = scope
        if not self.closed:
            await _hypercorn_send_pings(self)


def apply() -> None:
    """Install every fix of the module docstring, once (later calls do nothing). Servers without
    a guard keep Hypercorn's behaviour, but for the fixes that hold for every server: errors
    kept in their connection, abortable connections, JSON bodies of parse errors, the 1009
    reason, shielded idle-state changes and pings ended with their stream."""
    if getattr(TCPServer, _APPLIED, False):
        return
    TCPServer.run = _run  # type: ignore[method-assign]
    TCPServer._read_data = _read_data  # type: ignore[method-assign]
    TCPServer.protocol_send = _protocol_send  # type: ignore[method-assign]
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]
    WSStream._send_wsproto_event = _send_wsproto_event  # type: ignore[method-assign]
    # Hypercorn sets ``closed`` in several places; a property sees every one of them.
    WSStream.closed = property(_is_closed, _set_closed)  # type: ignore[assignment]
    WSStream._send_pings = _pings_until_closed  # type: ignore[method-assign]
    setattr(TCPServer, _APPLIED, True)

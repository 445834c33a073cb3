"""Limits on each client connection of the HTTP server: deadlines for slow clients, a cap on
open connections, and JSON answers to requests the HTTP parser refuses.

Hypercorn (0.18, trio worker) bounds neither how long a request's body may trickle in nor how
many connections are open, and a connection's headers are bounded only by its keep-alive timer.
:func:`install` extends its per-connection server (``TCPServer``) so that, for a server whose
Hypercorn config carries a :class:`ConnectionGuard` (:func:`guard_config`):

* past ``max_connections`` open connections, a new one is closed at once (the established ones
  are served as before);
* an HTTP/1.1 request must send its request line and headers within ``header_timeout`` (counted
  from the connection's opening, or from the first byte of a later request on a kept-alive
  connection) and its body within ``body_timeout`` of its headers; otherwise it is answered 408
  with a JSON body naming the setting, when no answer has begun, and its connection is closed;
* a request line plus headers beyond ``max_header_size`` bytes, or a request that is not HTTP,
  is answered with a JSON body (431 or 400) instead of Hypercorn's empty one;
* a WebSocket message too large (Hypercorn's ``websocket_max_message_size``) is closed with
  1009 and a reason naming ``broadcast.max_message_size``;
* HTTP/2 over cleartext (an ``Upgrade: h2c`` request, or the HTTP/2 preface) is not taken up:
  the request is served as HTTP/1.1, or refused, so that no client escapes these deadlines.
  (Browsers speak HTTP/2 only over TLS, which the service does not terminate.)

A kept-alive connection waiting for its next request is closed after Hypercorn's
``keep_alive_timeout``, and at once when the server stops: this loop keeps that timer too (no
task started per request); a WebSocket past its upgrade is not timed here (it has its pings, see
``broadcast.ping_interval``).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import resource
from typing import Any

import attrs
import h11
import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from wsproto.events import CloseConnection
from wsproto.frame_protocol import CloseReason

__all__ = ["ConnectionGuard", "ConnectionLimits", "Phase", "guard_config", "header_block_size", "install",
           "open_file_target", "phase_deadline", "raise_open_file_limit"]

logger = logging.getLogger(__name__)

#: Seconds between two log lines about connections refused past the cap (a flood is one line).
REFUSAL_LOG_INTERVAL = 10.0
_GUARD = "revivatech_connection_guard"
_WAKE = "_revivatech_wake"  # the read loop's wake-up scope, on its TCPServer
#: Open files the process needs beside its client connections (storage, Redis, logs, the
#: listening sockets, threads' pipes), with room to spare.
RESERVED_FILES = 256


@attrs.frozen
class ConnectionLimits:
    """The ``[web]`` limits on client connections (seconds and bytes)."""

    header_timeout: float
    body_timeout: float
    max_connections: int
    max_header_size: int


@attrs.define(eq=False)
class ConnectionGuard:
    """One server's limits and its count of open connections."""

    limits: ConnectionLimits
    open: int = 0
    refused: int = 0  # since the last log line about refusals
    logged_at: float = -math.inf


class Phase(enum.Enum):
    """Where a connection's client is in sending its current request."""

    IDLE = "idle"  # between requests, nothing of the next one received: the keep-alive timer
    HEADERS = "headers"  # the request line and headers are not complete
    BODY = "body"  # the headers are complete, the body is not
    OTHER = "other"  # the request is complete (its answer is pending), a WebSocket, or HTTP/2


def phase_deadline(phase: Phase, since: float, limits: ConnectionLimits, keep_alive: float = math.inf) -> float:
    """When a client in ``phase`` since ``since`` (trio clock) must have moved on (``keep_alive``
    seconds between requests); inf if never."""
    if phase is Phase.HEADERS:
        return since + limits.header_timeout
    if phase is Phase.BODY:
        return since + limits.body_timeout
    if phase is Phase.IDLE:
        return since + keep_alive
    return math.inf


def header_block_size(scope: dict[str, Any]) -> int:
    """Bytes of an ASGI request's request line and headers as HTTP/1.1 sends them. The parser's
    own limit (``h11_max_incomplete_size``) holds only while headers are incomplete: a block that
    arrives whole in one read passes it, and is measured with this instead."""
    target = len(scope["raw_path"]) + (len(scope["query_string"]) + 1 if scope["query_string"] else 0)
    line = len(scope.get("method", "GET")) + target + 12  # "GET /path HTTP/1.1\r\n"
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


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


def _json_response(status: int, reason: str, error: str, message: str) -> bytes:
    """A whole HTTP/1.1 response, closing the connection, with the service's JSON error body."""
    body = orjson.dumps({"success": False, "error": error, "message": message, "details": []})
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _timeout_response(phase: Phase, limits: ConnectionLimits) -> bytes:
    if phase is Phase.HEADERS:
        message = (f"the request line and headers did not arrive within web.header_timeout = "
                   f"{limits.header_timeout:g} s")
    else:
        message = f"the request body did not arrive within web.body_timeout = {limits.body_timeout:g} s"
    return _json_response(408, "Request Timeout", "request_timeout", message)


def guard_config(config: HypercornConfig, limits: ConnectionLimits) -> ConnectionGuard:
    """Attach ``limits`` to a Hypercorn config (and set its header size limit): every connection
    of a server started with ``config`` is held to them. Returns the guard (its open count)."""
    guard = ConnectionGuard(limits)
    config.h11_max_incomplete_size = limits.max_header_size
    setattr(config, _GUARD, guard)
    return guard


def open_file_target(max_connections: int, soft: int, hard: int) -> int:
    """The open-file soft limit to ask for: enough for ``max_connections`` plus
    :data:`RESERVED_FILES`, within ``hard``, never below ``soft`` (``RLIM_INFINITY`` is no limit)."""
    needed = max_connections + RESERVED_FILES
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    return needed if hard == resource.RLIM_INFINITY else max(soft, min(needed, hard))


def raise_open_file_limit(max_connections: int) -> None:
    """Raise the process's open-file soft limit so that ``max_connections`` connections fit (an
    exhausted limit fails every accept, storage's connections too); a warning when the hard
    limit does not allow it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = open_file_target(max_connections, soft, hard)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            target = soft
    if target != resource.RLIM_INFINITY and target < max_connections + RESERVED_FILES:
        logger.warning("web.max_connections = %d needs about %d open files, but the process may open at most %d "
                       "(ulimit -n): raise that limit or lower web.max_connections", max_connections,
                       max_connections + RESERVED_FILES, target)


def _guard(server: TCPServer) -> ConnectionGuard | None:
    return getattr(server.config, _GUARD, None)


async def admit(server: TCPServer) -> bool:
    """Count the connection in, or close it at once if its server has ``max_connections`` open.
    Every admitted connection must be let go with :func:`release`."""
    guard = _guard(server)
    if guard is None:
        return True
    if guard.open < guard.limits.max_connections:
        guard.open += 1
        return True
    guard.refused += 1
    now = trio.current_time()
    if now - guard.logged_at >= REFUSAL_LOG_INTERVAL:
        logger.warning("%d new connection(s) closed at once: web.max_connections = %d are open",
                       guard.refused, guard.limits.max_connections)
        guard.refused, guard.logged_at = 0, now
    await server.stream.aclose()
    return False


def release(server: TCPServer) -> None:
    guard = _guard(server)
    if guard is not None:
        guard.open -= 1


async def _read_data(self: TCPServer) -> None:
    """Hypercorn's read loop (``TCPServer._read_data``) timing every phase itself: the header
    and body deadlines, and the keep-alive timer between requests (Hypercorn's own starts a task
    after each answer; under Quart-Trio that start is cancelled, so idle connections never timed
    out and held up a graceful stop). One watcher per connection wakes the loop at a stop."""
    guard = _guard(self)
    if guard is None:
        return await _hypercorn_read_data(self)
    limits = guard.limits
    keep_alive = self.config.keep_alive_timeout
    read_timeout = self.config.read_timeout or math.inf
    terminated = self.context.terminated
    await self.idle_task.stop()  # Hypercorn's keep-alive timer: this loop keeps time instead
    watcher = await self._task_group._nursery.start(_wake_at_stop, self)
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
                break  # else the keep-alive timer, or Hypercorn's read timeout: closed, as Hypercorn does
            if data:
                if not fresh and _phase(self) is Phase.IDLE:  # a new request begins: timed from now
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


def _wake_after_answer(server: TCPServer) -> None:
    """The read loop looks at its phase again: an answer ended (the keep-alive timer starts)."""
    wake = server.__dict__.get(_WAKE)
    if wake is not None:
        wake.cancel()


async def _protocol_send(self: TCPServer, event: Any) -> None:
    """Hypercorn's protocol events to the connection; on a guarded server, idleness is the read
    loop's business (no task started and stopped per request)."""
    if isinstance(event, Updated) and _guard(self) is not None:
        if event.idle:
            _wake_after_answer(self)
        return
    await _hypercorn_protocol_send(self, event)


async def _time_out(server: TCPServer, phase: Phase, limits: ConnectionLimits) -> None:
    """Answer 408 when nothing of an answer was sent yet (else the connection just closes)."""
    connection = server.protocol.protocol.connection
    logger.debug("closing a connection whose client was too slow sending a request's %s", phase.value)
    answer = connection.our_state in (h11.IDLE, h11.SEND_RESPONSE)
    # The request's stream is closed first: the app learns its client is gone, and whatever it
    # would still answer is dropped rather than sent after this 408.
    await server.protocol.handle(Closed())
    if answer:
        async with server.send_lock:
            with trio.CancelScope(shield=True), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await server.stream.send_all(_timeout_response(phase, limits))


async def _send_error_response(self: H11Protocol, status_code: int) -> None:
    """Hypercorn's answer to a request h11 cannot parse, with a JSON body naming the problem."""
    if status_code == 431:
        size = self.config.h11_max_incomplete_size
        data = _json_response(431, "Request Header Fields Too Large", "headers_too_large",
                              f"the request line and headers are larger than web.max_header_size = {size} bytes")
    else:
        data = _json_response(status_code, "Bad Request", "malformed_request",
                              "the request is not valid HTTP/1.1 (request line, header or framing)")
    await self.send(RawData(data=data))


async def _send_wsproto_event(self: WSStream, event: Any) -> None:
    """Hypercorn's WebSocket send, with a reason naming the limit on its 1009 close (it gives none)."""
    if isinstance(event, CloseConnection) and event.code == CloseReason.MESSAGE_TOO_BIG and not event.reason:
        size = self.config.websocket_max_message_size
        event = CloseConnection(code=event.code, reason=f"a message may be at most broadcast.max_message_size = "
                                                        f"{size} bytes")
    await _hypercorn_send_wsproto_event(self, event)


async def _check_protocol(self: H11Protocol, event: h11.Request) -> None:
    """Hypercorn's switch to HTTP/2 on cleartext, skipped on a guarded server (module docstring)."""
    if getattr(self.config, _GUARD, None) is None:
        await _hypercorn_check_protocol(self, event)


_hypercorn_read_data: Any = TCPServer._read_data
_hypercorn_protocol_send: Any = TCPServer.protocol_send
_hypercorn_check_protocol: Any = H11Protocol._check_protocol
_hypercorn_send_wsproto_event: Any = WSStream._send_wsproto_event


def install() -> None:
    """Extend Hypercorn's connection handling as the module docstring says; once, at import of
    the web server. Servers without a guard (:func:`guard_config`) keep Hypercorn's behaviour,
    except for the JSON bodies of parse errors."""
    if getattr(TCPServer._read_data, "_guarded", False):
        return
    _read_data._guarded = True  # type: ignore[attr-defined]
    TCPServer._read_data = _read_data  # type: ignore[method-assign]
    TCPServer.protocol_send = _protocol_send  # type: ignore[method-assign]
    WSStream._send_wsproto_event = _send_wsproto_event  # type: ignore[method-assign]
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]

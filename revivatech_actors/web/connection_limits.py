"""Limits on each client connection of the HTTP server: deadlines for slow clients, a cap on
open connections, and JSON answers to requests the HTTP parser refuses.

Hypercorn (0.18, trio worker) bounds neither how long a request's body may trickle in nor how
many connections are open, and a connection's headers are bounded only by its keep-alive timer.
This module says what the limits are and what a client that runs into one is answered;
:mod:`._hypercorn_fixes` hooks them into Hypercorn's per-connection server, for a server whose
config carries a :class:`ConnectionGuard` (``_hypercorn_fixes.guard_config``):

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
``keep_alive_timeout``, and at once when the server stops; a WebSocket past its upgrade is not
timed here (it has its pings, see ``broadcast.ping_interval``).
"""

from __future__ import annotations

import enum
import logging
import math
import resource
from typing import Any

import attrs
import orjson
import trio

__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "Phase",
    "header_block_size",
    "message_too_big_reason",
    "open_file_target",
    "parse_error_response",
    "phase_deadline",
    "raise_open_file_limit",
    "timeout_response",
]

logger = logging.getLogger(__name__)

#: Seconds between two log lines about connections refused past the cap (a flood is one line).
REFUSAL_LOG_INTERVAL = 10.0
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

    def admit(self) -> bool:
        """Count a new connection in; False (to be closed at once) when ``max_connections``
        are open. Every admitted connection must be let go with :meth:`release`."""
        if self.open < self.limits.max_connections:
            self.open += 1
            return True
        self.refused += 1
        self._log_refusals()
        return False

    def release(self) -> None:
        self.open -= 1
        if self.refused:  # refusals not logged yet: a flood that stopped is still reported
            self._log_refusals()

    def _log_refusals(self) -> None:
        """One line per REFUSAL_LOG_INTERVAL at most, counting the refusals since the last."""
        now = trio.current_time()
        if now - self.logged_at >= REFUSAL_LOG_INTERVAL:
            logger.warning(
                "%d new connection(s) closed at once: web.max_connections = %d are open",
                self.refused,
                self.limits.max_connections,
            )
            self.refused, self.logged_at = 0, now


class Phase(enum.Enum):
    """Where a connection's client is in sending its current request."""

    IDLE = "idle"  # between requests, nothing of the next one received: the keep-alive timer
    HEADERS = "headers"  # the request line and headers are not complete
    BODY = "body"  # the headers are complete, the body is not
    OTHER = "other"  # the request is complete (its answer is pending), a WebSocket, or HTTP/2


def phase_deadline(
    phase: Phase, since: float, limits: ConnectionLimits, keep_alive: float = math.inf
) -> float:
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
    query = scope["query_string"]
    target = len(scope["raw_path"]) + (len(query) + 1 if query else 0)
    line = len(scope.get("method", "GET")) + target + 12  # "GET /path HTTP/1.1\r\n"
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


def _json_response(status: int, reason: str, error: str, message: str) -> bytes:
    """A whole HTTP/1.1 response, closing the connection, with the service's JSON error body."""
    body = orjson.dumps({"success": False, "error": error, "message": message, "details": []})
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def timeout_response(phase: Phase, limits: ConnectionLimits) -> bytes:
    """The 408 to a client too slow sending its headers or its body, naming the setting."""
    if phase is Phase.HEADERS:
        message = (
            "the request line and headers did not arrive within web.header_timeout = "
            f"{limits.header_timeout:g} s"
        )
    else:
        message = (
            f"the request body did not arrive within web.body_timeout = {limits.body_timeout:g} s"
        )
    return _json_response(408, "Request Timeout", "request_timeout", message)


def parse_error_response(status_code: int, max_header_size: int) -> bytes:
    """The answer to a request the HTTP/1.1 parser refuses: 431 (headers over
    ``max_header_size`` bytes) or 400."""
    if status_code == 431:
        message = (
            "the request line and headers are larger than web.max_header_size = "
            f"{max_header_size} bytes"
        )
        return _json_response(431, "Request Header Fields Too Large", "headers_too_large", message)
    return _json_response(
        status_code,
        "Bad Request",
        "malformed_request",
        "the request is not valid HTTP/1.1 (request line, header or framing)",
    )


def message_too_big_reason(max_size: int) -> str:
    """The reason of the 1009 close of a WebSocket message over ``max_size`` bytes."""
    return f"a message may be at most broadcast.max_message_size = {max_size} bytes"


def open_file_target(max_connections: int, soft: int, hard: int) -> int:
    """The open-file soft limit to ask for: enough for ``max_connections`` plus
    :data:`RESERVED_FILES`, within ``hard``, never below ``soft`` (``RLIM_INFINITY`` is no
    limit)."""
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
            logger.warning(
                "could not raise the open-file limit from %d to %d: %s", soft, target, exc
            )
            target = soft
    if target != resource.RLIM_INFINITY and target < max_connections + RESERVED_FILES:
        logger.warning(
            "web.max_connections = %d needs about %d open files, but the process may open at "
            "most %d (ulimit -n): raise that limit or lower web.max_connections",
            max_connections,
            max_connections + RESERVED_FILES,
            target,
        )

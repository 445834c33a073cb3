"""The web actor: serves the Quart-Trio app with Hypercorn's trio worker, in-process.

Hypercorn runs inside this actor's task (``hypercorn.trio.serve``), so it lives in the supervision
tree like any other actor: it reports started once its sockets listen, and its graceful stop —
stop accepting, let open requests finish within ``graceful_timeout`` — is triggered by
:meth:`WebServer.request_stop`.

A worker of ``serve --workers N`` (``reuse_port``) listens through a socket it makes itself with
``SO_REUSEPORT`` (:func:`reuse_port_listener`), which the other workers' sockets on the same
address join; the kernel spreads new connections between them.

The fixes to Hypercorn (:mod:`._hypercorn_fixes`) are installed when a server starts, before it
listens; never at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from ..supervisor import Activity
from ._hypercorn_fixes import apply as apply_hypercorn_fixes
from ._hypercorn_fixes import guard_config
from .connection_limits import ConnectionLimits, raise_open_file_limit

__all__ = ["WebServer", "reuse_port_listener"]

logger = logging.getLogger(__name__)

#: Pending connections the kernel queues while the loop is busy; Hypercorn's 100 drops bursts.
BACKLOG = 2048
#: Largest WebSocket message a client may send when none is configured (the protocol's
#: messages are tiny).
WEBSOCKET_MAX_MESSAGE = 64 * 1024


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reuse_port_listener(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A TCP socket listening on ``host:port`` with ``SO_REUSEPORT``: sockets of other processes
    (of the same user) bound the same way share the address, and the kernel hands each new
    connection to one of them. The address is read as Hypercorn reads ``web.host``.

    Raises:
        OSError: the address cannot be bound (e.g. a socket without ``SO_REUSEPORT`` holds it).
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Hypercorn sets on its own
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@attrs.define(eq=False)
class WebServer:
    app: QuartTrio
    host: str
    port: int
    graceful_timeout: float = 3.0
    #: Seconds between WebSocket pings; a peer that sends nothing (not even the pong) for twice
    #: as long, plus a margin, is disconnected (Hypercorn's read timeout).
    websocket_ping_interval: float | None = None
    activity: Activity = attrs.Factory(Activity)
    #: Share the port with other processes (SO_REUSEPORT): a worker of `serve --workers N`.
    reuse_port: bool = False
    #: What this listener is, in its log line (empty for the main one).
    name: str = ""
    #: Deadlines for slow clients, the cap on open connections and the header size limit
    #: (the ``[web]`` settings); None: Hypercorn's own behaviour.
    limits: ConnectionLimits | None = None
    #: Largest WebSocket message a client may send, in bytes; a larger one closes with 1009.
    websocket_max_message: int = WEBSOCKET_MAX_MESSAGE
    bound: list[str] = attrs.field(init=False, factory=list)
    _shutdown: trio.Event = attrs.field(init=False, factory=trio.Event)

    def request_stop(self) -> None:
        """Stop accepting connections and let open requests finish (graceful stop)."""
        self._shutdown.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._shutdown = trio.Event()  # a restarted server must not see the previous stop
        apply_hypercorn_fixes()
        config = HypercornConfig()
        listener = reuse_port_listener(self.host, self.port) if self.reuse_port else None
        # Hypercorn takes a duplicate of the listener and closes it when it stops accepting; the
        # original is closed as soon as Hypercorn listens, so that close really ends listening.
        if listener is None:
            config.bind = [_bind_address(self.host, self.port)]
        else:
            config.bind = [f"fd://{os.dup(listener.fileno())}"]
        config.backlog = BACKLOG
        config.graceful_timeout = self.graceful_timeout
        # The app writes the access log itself (web.observe): Hypercorn's lines carry the query
        # string, which may hold ?token=, and not the request id.
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.websocket_max_message_size = self.websocket_max_message
        if self.limits is not None:
            guard_config(config, self.limits)
            raise_open_file_limit(self.limits.max_connections)
        if self.websocket_ping_interval is not None:
            config.websocket_ping_interval = self.websocket_ping_interval
            config.read_timeout = int(2 * self.websocket_ping_interval + 5)
        try:
            async with trio.open_nursery() as nursery:
                self.bound = await nursery.start(
                    lambda task_status: serve(
                        self.app,
                        config,
                        shutdown_trigger=self._shutdown.wait,
                        task_status=task_status,
                    )
                )
                if listener is not None:
                    listener.close()
                    listener = None
                logger.info(
                    "%slistening on %s",
                    f"{self.name}: " if self.name else "",
                    ", ".join(self.bound),
                )
                task_status.started()
        finally:
            if listener is not None:
                # Hypercorn failed before listening, perhaps without taking the duplicate: stop the
                # socket listening through any descriptor, lest the kernel hand it connections that
                # nobody accepts (a leaked duplicate then holds a dead socket, nothing more).
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)
                listener.close()

"""Two fixes to Hypercorn 0.18 under Quart-Trio, both about connections that outlive their use
and so hold up a graceful stop until ``graceful_timeout`` (about 3 s with the defaults).

* **Idle keep-alive connections.** When a response ends, Hypercorn's HTTP/1.1 protocol tells its
  connection it is idle (``Updated(idle=True)``) from the request's task, and the connection then
  starts the task that closes it after ``keep_alive_timeout`` or at once when the server stops.
  Quart-Trio cancels the request's task as soon as the response is sent, which cancels that
  start: the idle connection has no such task, stays open as long as its client keeps it, and a
  stop waits for it. Fix: the idle-state change runs shielded, so it completes. (The service's
  own listener times idle connections in its read loop instead: ``connection_limits``.)
* **WebSocket pings.** A WebSocket's ping task sleeps ``websocket_ping_interval`` between pings
  and looks whether its stream closed only when it wakes, so the connection of a client that has
  left lingers up to that interval (20 s), and a stop waits for it. Fix: the ping task's sleep is
  cancelled when its stream closes.

:func:`apply` is idempotent; it is called once when the web server module is imported.
"""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.events import Updated
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["apply"]

_APPLIED = "_revivatech_fixed"


def _finish_idle_changes() -> None:
    send = TCPServer.protocol_send

    async def protocol_send(self: TCPServer, event: Any) -> None:
        if isinstance(event, Updated):
            # Starting or stopping the idle task takes a lock and a nursery start: brief.
            with trio.CancelScope(shield=True):
                await send(self, event)
        else:
            await send(self, event)

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]


def _end_pings_with_their_stream() -> None:
    send_pings = WSStream._send_pings

    def is_closed(self: WSStream) -> bool:
        return self.__dict__.get("_closed_flag", False)

    def set_closed(self: WSStream, value: bool) -> None:
        self.__dict__["_closed_flag"] = value
        pings = self.__dict__.get("_pings_scope")
        if value and pings is not None:
            pings.cancel()

    async def pings_until_closed(self: WSStream) -> None:
        with trio.CancelScope() as scope:
            self.__dict__["_pings_scope"] = scope
            if not self.closed:
                await send_pings(self)

    # Hypercorn sets ``closed`` in several places; a property sees every one of them.
    WSStream.closed = property(is_closed, set_closed)  # type: ignore[assignment]
    WSStream._send_pings = pings_until_closed  # type: ignore[method-assign]


def apply() -> None:
    """Apply both fixes (once)."""
    if getattr(TCPServer, _APPLIED, False):
        return
    _finish_idle_changes()
    _end_pings_with_their_stream()
    setattr(TCPServer, _APPLIED, True)

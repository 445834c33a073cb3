"""The web actor: serves the Quart-Trio app with Hypercorn's trio worker, in-process.

Hypercorn runs inside this actor's task (``hypercorn.trio.serve``), so it lives in the supervision
tree like any other actor: it reports started once its sockets listen, and its graceful stop —
stop accepting, let open requests finish within ``graceful_timeout`` — is triggered by
:meth:`WebServer.request_stop`.
"""

from __future__ import annotations

import logging

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from ..supervisor import Activity

__all__ = ["WebServer"]

logger = logging.getLogger(__name__)

#: Pending connections the kernel queues while the loop is busy; Hypercorn's 100 drops bursts.
BACKLOG = 2048
#: Largest WebSocket message a client may send (the protocol's messages are tiny).
WEBSOCKET_MAX_MESSAGE = 64 * 1024


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.define(eq=False)
class WebServer:
    app: QuartTrio
    host: str
    port: int
    graceful_timeout: float = 3.0
    access_log: bool = False
    #: Seconds between WebSocket pings; a peer that sends nothing (not even the pong) for twice
    #: as long, plus a margin, is disconnected (Hypercorn's read timeout).
    websocket_ping_interval: float | None = None
    activity: Activity = attrs.Factory(Activity)
    bound: list[str] = attrs.field(init=False, factory=list)
    _shutdown: trio.Event = attrs.field(init=False, factory=trio.Event)

    def request_stop(self) -> None:
        """Stop accepting connections and let open requests finish (graceful stop)."""
        self._shutdown.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._shutdown = trio.Event()  # a restarted server must not see the previous stop
        config = HypercornConfig()
        config.bind = [_bind_address(self.host, self.port)]
        config.backlog = BACKLOG
        config.graceful_timeout = self.graceful_timeout
        config.accesslog = logging.getLogger("revivatech_actors.access") if self.access_log else None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.websocket_max_message_size = WEBSOCKET_MAX_MESSAGE
        if self.websocket_ping_interval is not None:
            config.websocket_ping_interval = self.websocket_ping_interval
            config.read_timeout = int(2 * self.websocket_ping_interval + 5)
        async with trio.open_nursery() as nursery:
            self.bound = await nursery.start(
                lambda task_status: serve(self.app, config, shutdown_trigger=self._shutdown.wait, task_status=task_status)
            )
            logger.info("listening on %s", ", ".join(self.bound))
            task_status.started()

"""A small trio TCP proxy for tests: a database that can be switched away and back.

``TcpProxy(target_host, target_port)`` listens on 127.0.0.1 (a free port, or a given one) and
forwards every connection to the target. :meth:`TcpProxy.switch_off` closes every proxied
connection at once and stops listening (new connections are refused: ``ECONNREFUSED``);
:meth:`TcpProxy.switch_on` listens again on the same port. :meth:`TcpProxy.lose_next_commit_reply`
arms a one-shot PostgreSQL fault: the next ``COMMIT`` reaches the server (which commits) but its
reply never reaches the client, whose connection is then closed, the classic "did it commit?" case;
:meth:`TcpProxy.lose_next_answer` does the same when the server's answer holds given bytes (e.g. a
PostgreSQL CommandComplete). :meth:`TcpProxy.refuse` keeps listening but closes each new connection
at once (counted in ``refused``); :meth:`TcpProxy.pause` holds the traffic both ways (a hung
network) until :meth:`TcpProxy.resume`; :meth:`TcpProxy.drop_all` closes every proxied connection
and keeps listening. The one proxy of the test suite.
Run it in a nursery::

    proxy = TcpProxy("127.0.0.1", 5432)
    port = await nursery.start(proxy.run)
"""

from __future__ import annotations

import errno

import trio

__all__ = ["TcpProxy"]

_CHUNK = 65536
#: A PostgreSQL simple-query message ('Q', int32 length 11, "COMMIT\0"), as psycopg sends when a
#: ``conn.transaction()`` block ends.
PG_COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"
#: PostgreSQL CommandComplete messages ('C', int32 length, the tag): a transaction's COMMIT, and
#: the one-statement store of events (it answers one row).
PG_COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"
PG_SELECT_1_COMPLETE = b"C\x00\x00\x00\x0dSELECT 1\x00"
#: How long the server gets to finish a COMMIT whose reply is being swallowed.
_COMMIT_GRACE = 0.3


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self.enabled = False
        self.connections_proxied = 0
        self.commit_replies_lost = 0
        self.answers_lost = 0
        self.refused = 0
        self._lose_commit_reply = False
        self._lose_answer: bytes | None = None
        self._refusing = False
        self._paused = False
        self._resumed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._listener_scope: trio.CancelScope | None = None
        self._connection_scopes: set[trio.CancelScope] = set()

    @property
    def open_connections(self) -> int:
        return len(self._connection_scopes)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the listening port through ``task_status``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._listen()
            task_status.started(self.port)
            await trio.sleep_forever()

    async def switch_on(self) -> None:
        """Listen again (on the same port) and forward new connections."""
        self._refusing = False
        if not self.enabled:
            await self._listen()

    def refuse(self) -> None:
        """Close every proxied connection now; until :meth:`switch_on`, close each new one at
        once (the port stays open, so the client's attempts are counted in ``refused``)."""
        self._refusing = True
        self.drop_all()

    def drop_all(self) -> None:
        """Close every proxied connection now; new ones are forwarded as before."""
        for scope in list(self._connection_scopes):
            scope.cancel()

    def pause(self) -> None:
        """Hold the traffic both ways, as a hung network would, until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._resumed.set()
        self._resumed = trio.Event()

    def lose_next_answer(self, answer: bytes) -> None:
        """One shot: when the server's data next holds ``answer``, close every proxied
        connection without passing that data on."""
        self._lose_answer = answer

    def switch_off(self) -> None:
        """Close every proxied connection now and refuse new ones until :meth:`switch_on`."""
        self.enabled = False
        if self._listener_scope is not None:
            self._listener_scope.cancel()
            self._listener_scope = None
        self.drop_all()

    def lose_next_commit_reply(self) -> None:
        """One shot: forward the next PostgreSQL ``COMMIT``, drop everything the server answers on
        that connection, and close it after the server has had time to commit."""
        self._lose_commit_reply = True

    async def _listen(self) -> None:
        assert self._nursery is not None
        # The port may sit in TIME_WAIT for a moment after a switch-off: retry briefly.
        with trio.fail_after(5):
            while True:
                try:
                    listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    await trio.sleep(0.01)
        (listener,) = listeners
        self.port = listener.socket.getsockname()[1]
        scope = trio.CancelScope()
        self._listener_scope = scope
        self.enabled = True
        self._nursery.start_soon(self._accept_loop, listener, scope)

    async def _accept_loop(self, listener: trio.SocketListener, scope: trio.CancelScope) -> None:
        with scope:
            async with listener:  # closed on switch_off: connecting is then refused
                while True:
                    stream = await listener.accept()
                    assert self._nursery is not None
                    self._nursery.start_soon(self._handle, stream)

    async def _handle(self, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._connection_scopes.add(scope)
            try:
                async with client:
                    if self._refusing:
                        self.refused += 1
                        return
                    try:
                        server = await trio.open_tcp_stream(self.target_host, self.target_port)
                    except OSError:
                        return
                    self.connections_proxied += 1
                    muted = [False]  # True once the server's answers are to be dropped
                    async with server, trio.open_nursery() as pipes:
                        pipes.start_soon(self._upstream, client, server, pipes.cancel_scope, muted)
                        pipes.start_soon(
                            self._downstream, server, client, pipes.cancel_scope, muted
                        )
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                self._connection_scopes.discard(scope)

    async def _upstream(
        self,
        client: trio.SocketStream,
        server: trio.SocketStream,
        both: trio.CancelScope,
        muted: list[bool],
    ) -> None:
        try:
            while data := await client.receive_some(_CHUNK):
                await self._unless_paused()
                if self._lose_commit_reply and PG_COMMIT in data:
                    self._lose_commit_reply = False
                    muted[0] = True
                    await server.send_all(data)
                    self.commit_replies_lost += 1
                    await trio.sleep(_COMMIT_GRACE)
                    break
                await server.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        both.cancel()  # one side ended: end the other too

    async def _downstream(
        self,
        server: trio.SocketStream,
        client: trio.SocketStream,
        both: trio.CancelScope,
        muted: list[bool],
    ) -> None:
        try:
            while data := await server.receive_some(_CHUNK):
                await self._unless_paused()
                if self._lose_answer is not None and self._lose_answer in data:
                    self._lose_answer = None
                    self.answers_lost += 1
                    self.drop_all()
                    return
                if not muted[0]:
                    await client.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        both.cancel()

    async def _unless_paused(self) -> None:
        while self._paused:
            await self._resumed.wait()

"""A minimal HTTP/1.1 client on trio TCP streams: request bytes, the answer reader, keep-alive.

Hand-written rather than h11 or httpx because client and server share the machine's cores: the
client's time per request is taken from the server being measured. The reader is apart from
the I/O: :func:`read_response` takes any ``receive()`` coroutine, so it is tested on bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio

__all__ = [
    "Client",
    "ConnectionClosed",
    "ProtocolError",
    "Response",
    "encode_request",
    "read_response",
]

MAX_HEAD = 64 * 1024

Receive = Callable[[], Awaitable[bytes]]


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands, or the connection broke
    mid-answer."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection; ``idle`` when no byte of an answer had arrived yet."""

    def __init__(self, idle: bool) -> None:
        super().__init__(
            "connection closed before the answer" if idle else "connection closed mid-answer"
        )
        self.idle = idle


def encode_request(
    method: str, host: str, path: str, body: bytes, token: str | None = None
) -> bytes:
    """The complete HTTP/1.1 request bytes, ready for one ``send_all``."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return (head + "\r\n").encode("latin-1") + body


@attrs.frozen
class Response:
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    body: bytes
    close: bool  # the server will close (or has closed) the connection after this answer


async def _fill(receive: Receive, buf: bytearray, n: int) -> None:
    while len(buf) < n:
        data = await receive()
        if not data:
            raise ConnectionClosed(idle=False)
        buf += data


async def _read_line(receive: Receive, buf: bytearray) -> bytes:
    while (end := buf.find(b"\r\n")) < 0:
        if len(buf) > MAX_HEAD:
            raise ProtocolError("line too long")
        await _fill(receive, buf, len(buf) + 1)
    line = bytes(buf[:end])
    del buf[: end + 2]
    return line


async def _read_chunked(receive: Receive, buf: bytearray) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(receive, buf)
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            while await _read_line(receive, buf):  # trailers, up to the empty line
                pass
            return bytes(body)
        await _fill(receive, buf, size + 2)
        if buf[size : size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        body += buf[:size]
        del buf[: size + 2]


async def read_response(receive: Receive, buf: bytearray) -> Response:
    """Read one answer. ``receive()`` returns the next bytes (``b""`` at EOF); ``buf`` holds bytes
    already received and keeps whatever follows this answer, for the next one on the connection.

    Raises:
        ConnectionClosed: the peer closed the connection before the answer's end.
        ProtocolError: the answer is not HTTP/1.x this reader understands.
    """
    while True:
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError("answer head larger than 64 KiB")
            data = await receive()
            if not data:
                raise ConnectionClosed(idle=not buf)
            buf += data
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:  # skip interim answers such as 100 Continue
            break
    connection = headers.get(b"connection", b"").lower()
    close = connection == b"close" or (parts[0] == b"HTTP/1.0" and connection != b"keep-alive")
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = await _read_chunked(receive, buf)
    elif (length := headers.get(b"content-length")) is not None:
        if not length.isdigit():
            raise ProtocolError(f"bad Content-Length: {length!r}")
        await _fill(receive, buf, int(length))
        body = bytes(buf[: int(length)])
        del buf[: int(length)]
    elif status in (204, 304):
        body = b""
    else:  # no framing: the body runs until the server closes
        while data := await receive():
            buf += data
        body, close = bytes(buf), True
        buf.clear()
    return Response(status, headers, body, close)


class Client:
    """One keep-alive HTTP/1.1 connection, opened lazily and reopened after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()

    async def _receive(self) -> bytes:
        assert self._stream is not None
        return await self._stream.receive_some(65536)

    async def request(self, payload: bytes) -> Response:
        """Send pre-encoded request bytes and read the answer. A reused connection that turns out
        to be closed before any answer byte is retried once on a fresh one; other failures raise
        ``OSError``, ``trio.BrokenResourceError`` or ``ProtocolError`` after closing the
        connection."""
        while True:
            fresh = self._stream is None
            if self._stream is None:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._buf.clear()
            try:
                await self._stream.send_all(payload)
                response = await read_response(self._receive, self._buf)
            except (ConnectionClosed, trio.BrokenResourceError) as exc:
                await self.aclose()
                if fresh or (isinstance(exc, ConnectionClosed) and not exc.idle):
                    raise
                continue
            except BaseException:
                await self.aclose()
                raise
            if response.close:
                await self.aclose()
            return response

    async def aclose(self) -> None:
        """Close the connection, if open; shielded, so a cancelled caller still closes it."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with trio.CancelScope(shield=True):
                await stream.aclose()

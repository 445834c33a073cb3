"""The fixes to Hypercorn's internals (``web/_hypercorn_fixes.py``): pinned to the Hypercorn they
were written against, installed when a server starts (not at import), once.

When the pin fails after an upgrade of Hypercorn: read the fixes that use the class named (the
module's docstring lists them), check each still holds against the new source (or is no longer
needed), adapt them, and only then update :data:`PINNED` with the hashes the failure shows.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import subprocess
import sys
from functools import partial

import trio
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.trio.tcp_server import TCPServer

from revivatech_actors.web import _hypercorn_fixes

#: sha256 of the source of each class the fixes replace methods of or reach into, as of
#: Hypercorn 0.18.0.
PINNED = {
    "hypercorn.trio.tcp_server.TCPServer": (
        "5593e38b83d3e22e6576f2cdf8faa5a265d8e0e3bd28d97bdacfbe8d781a90b3"
    ),
    "hypercorn.protocol.h11.H11Protocol": (
        "b32a61e0a8ca2127c7e1cb133281521f6cc73fdefb94b188fb6944e80b175b43"
    ),
    "hypercorn.protocol.ws_stream.WSStream": (
        "67434c428a1a3c04f930fd5fbd39074659cfe666d9aad1a44a41f78c12e2d303"
    ),
    "hypercorn.protocol.ProtocolWrapper": (
        "caf949187e9b4a816ad4a5f0229773ec01190a6051f6205807de599870c16c17"
    ),
    "hypercorn.trio.task_group.TaskGroup": (
        "8467a3a16a7e8763079b8727fe73d7d2115d0cb99441984856ff1bfcb4fcfbf2"
    ),
    "hypercorn.trio.worker_context.TrioSingleTask": (
        "aa59316c028b876ad16369d57fcf70a82969bfb76436df033de96541935c7212"
    ),
    "hypercorn.trio.worker_context.WorkerContext": (
        "45885f0c0bd5bc9d518c227f36f400e069f481c26a5ac6d1744f179d5a55ddbd"
    ),
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _digest(cls: type) -> str:
    return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()


def test_the_hypercorn_classes_the_fixes_rely_on_are_the_ones_they_were_written_for():
    now = {_name(cls): _digest(cls) for cls in _hypercorn_fixes.REACHED}
    changed = sorted(name for name, digest in now.items() if PINNED.get(name) != digest)
    version = importlib.metadata.version("hypercorn")
    assert not changed, (
        f"Hypercorn {version} changed {', '.join(changed)}: re-check each fix of "
        "revivatech_actors/web/_hypercorn_fixes.py that uses them against the new source, then "
        f"update PINNED in {__name__} to {now}"
    )


def test_the_replaced_methods_keep_hypercorns_signatures():
    originals = {
        "TCPServer.run": (_hypercorn_fixes._hypercorn_run, _hypercorn_fixes._run),
        "TCPServer._read_data": (
            _hypercorn_fixes._hypercorn_read_data,
            _hypercorn_fixes._read_data,
        ),
        "TCPServer.protocol_send": (
            _hypercorn_fixes._hypercorn_protocol_send,
            _hypercorn_fixes._protocol_send,
        ),
        "H11Protocol._check_protocol": (
            _hypercorn_fixes._hypercorn_check_protocol,
            _hypercorn_fixes._check_protocol,
        ),
        "WSStream._send_wsproto_event": (
            _hypercorn_fixes._hypercorn_send_wsproto_event,
            _hypercorn_fixes._send_wsproto_event,
        ),
        "WSStream._send_pings": (
            _hypercorn_fixes._hypercorn_send_pings,
            _hypercorn_fixes._pings_until_closed,
        ),
    }
    for name, (theirs, ours) in originals.items():
        assert list(inspect.signature(theirs).parameters) == list(
            inspect.signature(ours).parameters
        ), name


def test_apply_installs_every_fix_once():
    _hypercorn_fixes.apply()
    installed = (
        TCPServer.run,
        TCPServer._read_data,
        TCPServer.protocol_send,
        H11Protocol._send_error_response,
        H11Protocol._check_protocol,
        WSStream._send_wsproto_event,
        WSStream._send_pings,
        WSStream.closed,
    )
    assert installed[:3] == (
        _hypercorn_fixes._run,
        _hypercorn_fixes._read_data,
        _hypercorn_fixes._protocol_send,
    )
    assert isinstance(WSStream.__dict__["closed"], property)
    _hypercorn_fixes.apply()  # a second time changes nothing: no fix wraps another
    assert installed == (
        TCPServer.run,
        TCPServer._read_data,
        TCPServer.protocol_send,
        H11Protocol._send_error_response,
        H11Protocol._check_protocol,
        WSStream._send_wsproto_event,
        WSStream._send_pings,
        WSStream.closed,
    )


def test_importing_the_service_patches_nothing():
    code = (
        "import revivatech_actors.service\n"
        "from hypercorn.trio.tcp_server import TCPServer\n"
        "from hypercorn.protocol.ws_stream import WSStream\n"
        "print(TCPServer.run.__module__, WSStream._send_pings.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["hypercorn.trio.tcp_server", "hypercorn.protocol.ws_stream"]


async def test_what_a_direct_write_leaves_goes_before_the_next_write_on_its_connection():
    """A frame the kernel takes only part of at once: its rest is sent before a message sent the
    ordinary way right after it, so a slow client still reads both whole, in order. Real
    Hypercorn serving a Quart-Trio app on a socket; the client reads nothing until both are
    out."""
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from quart import websocket
    from quart_trio import QuartTrio
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage

    _hypercorn_fixes.apply()
    big = "x" * 4_000_000  # more than loopback buffers take at once
    results: list = []
    app = QuartTrio(__name__)

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        writer = _hypercorn_fixes.direct_writer(websocket.scope["client"])
        assert writer is not None
        left = writer.write_now(big)
        results.append(left)
        await websocket.send("after")  # at once: the rest of ``big`` is still pending
        await writer.flush()  # (nothing left to do by now)
        await trio.sleep_forever()

    config = Config()
    config.bind = ["127.0.0.1:0"]
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(serve, app, config, mode="asgi"))
        host, port = bound[0].removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        client = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(client.send(Request(host="127.0.0.1", target="/ws")))
        messages: list[str] = []
        text = ""
        try:
            with trio.fail_after(10):  # (a stream out of step never completes both)
                while not any(isinstance(e, AcceptConnection) for e in client.events()):
                    client.receive_data(await stream.receive_some(1) or None)  # the 101, no further
                while not results:  # nothing read until the server wrote both
                    await trio.sleep(0.01)
                await trio.sleep(0.1)
                while len(messages) < 2:
                    client.receive_data(await stream.receive_some(65536) or None)
                    for event in client.events():
                        assert isinstance(event, TextMessage), event
                        text += event.data
                        if event.message_finished:
                            messages.append(text)
                            text = ""
        finally:  # the server's shielded sends to a client that stopped reading end with it
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert results[0] > 0  # the kernel took only part of it
    assert messages == [big, "after"]

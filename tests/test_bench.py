"""The ``bench`` load generator: pure helpers, the HTTP reader, a run against a tiny real server,
and the command's wiring (only ``revivatech-actors bench`` loads the package)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import socket
import subprocess
import sys
from array import array
from pathlib import Path

import hypercorn.config
import hypercorn.trio
import pytest
import trio
from quart import request
from quart_trio import QuartTrio

from revivatech_actors import bench
from revivatech_actors.bench import _http, _payloads, _run, _ws

# --- request bodies ---------------------------------------------------------------------------


def test_single_body_is_one_valid_event():
    event = json.loads(bench.single_body(random.Random(1), users=5))
    assert set(event) == {"user_fingerprint", "session_id", "event_type", "page_url", "properties"}
    assert event["event_type"] in _payloads.EVENT_TYPES
    assert event["properties"] == {"bench": True}
    assert event["page_url"].startswith("https://revivatech.example/")


def test_batch_body_has_the_requested_events_within_the_user_range():
    rng = random.Random(2)
    events = json.loads(bench.batch_body(rng, users=7, batch_size=250))["events"]
    assert len(events) == 250
    users = {int(e["user_fingerprint"].removeprefix("bench-user-")) for e in events}
    assert users <= set(range(7)) and len(users) > 1
    for e in events:
        user = e["user_fingerprint"].removeprefix("bench-user-")
        assert e["session_id"].startswith(f"bench-session-{user}-")
        assert "event_id" not in e
    kinds = [e["event_type"] for e in events]
    assert kinds.count("page_view") > len(kinds) / 2


def test_tracker_payload_is_what_the_original_tracker_sends_and_validates_without_warnings():
    from revivatech_actors.domain.validation import ValidEvent, validate_event

    events = json.loads(
        bench.batch_body(random.Random(3), users=5, batch_size=20, payload="tracker")
    )["events"]
    for e in events:
        assert {
            "id",
            "event_name",
            "event_data",
            "referrer_url",
            "device_type",
            "utm_source",
        } <= set(e)
        assert isinstance(e["timestamp"], int) and e["timestamp"] > 10**12  # epoch milliseconds
        result = validate_event(e)
        assert (
            isinstance(result, ValidEvent) and result.warnings == () and result.details is not None
        )
    assert len({e["id"] for e in events}) == 20


def test_encode_request_frames_the_body():
    raw = bench.encode_request("POST", "h:1", "/p", b'{"a":1}', token="s3cret")
    head, body = raw.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /p HTTP/1.1"
    assert b"Content-Length: 7" in lines and b"Authorization: Bearer s3cret" in lines
    assert b"Host: h:1" in lines and b"Content-Type: application/json" in lines
    assert body == b'{"a":1}'
    assert b"Authorization" not in bench.encode_request("POST", "h", "/p", b"", token=None)


def test_target_keeps_a_path_prefix():
    config = bench.BenchConfig(url="http://localhost:8080/prefix/", mode="batch")
    assert config.target() == (
        "localhost",
        8080,
        "localhost:8080",
        "/prefix/api/analytics/events/batch",
    )
    with pytest.raises(bench.BenchError, match="unsupported URL"):
        bench.BenchConfig(url="https://x").target()


# --- HTTP answers -----------------------------------------------------------------------------


def feeder(*pieces: bytes):
    """A ``receive()`` that hands out ``pieces`` one at a time, then EOF."""
    remaining = list(pieces)

    async def receive() -> bytes:
        await trio.lowlevel.checkpoint()
        return remaining.pop(0) if remaining else b""

    return receive


async def test_answer_split_across_reads_and_two_answers_on_one_connection():
    first = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
        b'{"ok":true}'
    )
    second = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
    stream = first + second
    pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    receive, buf = feeder(*pieces), bytearray()
    one = await bench.read_response(receive, buf)
    assert (one.status, one.body, one.close) == (200, b'{"ok":true}', False)
    assert one.headers[b"content-type"] == b"application/json"
    two = await bench.read_response(receive, buf)
    assert (two.status, two.body, two.headers[b"retry-after"]) == (503, b"", b"1")
    with pytest.raises(_http.ConnectionClosed) as closed:
        await bench.read_response(receive, buf)
    assert closed.value.idle  # nothing of a third answer arrived: safe to retry on a new connection


async def test_pipelined_bytes_stay_in_the_buffer():
    both = (
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    )
    receive, buf = feeder(both), bytearray()
    assert (await bench.read_response(receive, buf)).body == b"ok"
    assert (await bench.read_response(receive, buf)).body == b"x"


async def test_chunked_answer_and_connection_close():
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    answer = await bench.read_response(feeder(raw[:50], raw[50:61], raw[61:]), bytearray())
    assert answer.body == b"Wikipedia "
    assert answer.close


async def test_interim_answer_is_skipped_and_unframed_body_reads_to_eof():
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil-close"
    answer = await bench.read_response(feeder(raw), bytearray())
    assert (answer.status, answer.body, answer.close) == (200, b"until-close", True)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-answer"),
    ],
)
async def test_answers_the_client_refuses(raw, message):
    with pytest.raises(bench.ProtocolError, match=message):
        await bench.read_response(feeder(raw), bytearray())


# --- figures ----------------------------------------------------------------------------------


def test_percentiles_on_known_data():
    values = array("d", range(1, 101))  # 1..100
    assert bench.percentile(values, 50) == 50
    assert bench.percentile(values, 95) == 95
    assert bench.percentile(values, 99) == 99
    assert bench.percentile(values, 100) == 100
    assert bench.percentile([7.0], 99) == 7.0
    assert bench.percentile([], 50) == 0.0
    shuffled = list(values)
    random.Random(3).shuffle(shuffled)
    summary = bench.latency_summary(array("d", shuffled))
    assert summary == {"p50": 50, "p95": 95, "p99": 99, "max": 100, "mean": 50.5}


def test_figures_merge_and_report():
    a = bench.Figures(
        "batch",
        4,
        duration_s=2.0,
        requests=3,
        events=300,
        status_counts={200: 3},
        latencies_ms=array("d", [1, 2, 3]),
        accepted=300,
    )
    b = bench.Figures(
        "batch",
        4,
        duration_s=2.0,
        requests=1,
        events=100,
        status_counts={200: 1, 503: 2},
        overloaded_503=2,
        latencies_ms=array("d", [4]),
        accepted=99,
        rejected=1,
    )
    a.merge(b)
    d = a.as_dict()
    assert (d["requests"], d["events"], d["events_per_s"], d["requests_per_s"]) == (
        4,
        400,
        200.0,
        2.0,
    )
    assert d["status_counts"] == {"200": 4, "503": 2}
    assert (d["accepted"], d["rejected"], d["overloaded_503"]) == (399, 1, 2)
    assert d["latency_ms"]["max"] == 4 and d["latency_ms"]["p50"] == 2


def test_ws_delays_run_from_each_acknowledgement_to_the_update_that_shows_it():
    baseline = 1000
    acks = [(100, 10.0), (200, 10.5), (300, 11.0)]  # events acknowledged so far, when
    prompt = [(1000, 9.0), (1100, 10.02), (1300, 11.1)]  # the subscription's, then two updates
    late = [(1000, 9.0), (1300, 11.4)]  # one update for all three batches
    early = [(1000, 9.0), (1100, 9.99), (1300, 11.5)]  # counted before the answer arrived
    delays = _ws.update_delays(acks, [prompt, late, early], baseline, start_at=9.5)
    # per update, from the oldest event it newly shows
    assert delays == pytest.approx([0.02, 0.6, 1.4, 0.0, 1.0])
    per_event, missed = _ws.event_delays(acks, [prompt, late, early], baseline)
    # per batch and client, until the first update showing it
    assert per_event == pytest.approx([0.02, 0.6, 0.1, 1.4, 0.9, 0.4, 0.0, 1.0, 0.5])
    assert missed == 0
    unseen = [(1000, 9.0), (1200, 10.6)]  # the last batch never shown
    assert _ws.event_delays(acks, [unseen], baseline) == (pytest.approx([0.6, 0.1]), 1)
    late = [(1100, 10.2), (1300, 11.3)]  # subscribed after the first batch's answer
    assert _ws.event_delays(acks, [late, []], baseline) == (pytest.approx([0.8, 0.3]), 0)


def test_processes_share_connections_and_rate():
    parts = _run.split(bench.BenchConfig(connections=5, processes=2, rate=100))
    assert [p.connections for p in parts] == [3, 2]
    assert [p.rate for p in parts] == [60, 40]


# --- against a real server ----------------------------------------------------------------------


def tiny_app() -> QuartTrio:
    app = QuartTrio(__name__)
    calls = {"flaky": 0}

    @app.post("/api/analytics/events")
    async def one_event():
        event = await request.get_json()
        assert event["user_fingerprint"].startswith("bench-user-")
        return {"success": True, "eventId": "x", "timestamp": "t", "duplicate": False}

    @app.post("/api/analytics/events/batch")
    async def batch():
        events = (await request.get_json())["events"]
        return {
            "success": True,
            "accepted": len(events),
            "duplicates": 0,
            "rejected": 0,
            "results": [],
        }

    @app.post("/flaky/api/analytics/events")
    async def flaky():
        await request.get_data()
        calls["flaky"] += 1
        if calls["flaky"] % 2:
            return (
                {"success": False, "error": "overloaded", "message": "busy"},
                503,
                {"Retry-After": "1"},
            )
        return {"success": True, "eventId": "x", "timestamp": "t", "duplicate": False}

    return app


@pytest.fixture
async def server_url(nursery):
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    stop = trio.Event()
    bound = await nursery.start(
        lambda task_status: hypercorn.trio.serve(
            tiny_app(), config, shutdown_trigger=stop.wait, task_status=task_status
        )
    )
    yield bound[0]
    stop.set()


def assert_ordered(figures: bench.Figures) -> None:
    latency = figures.as_dict()["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]


async def test_single_mode_against_a_real_server(server_url):
    ticks = []
    config = bench.BenchConfig(url=server_url, connections=4, duration=1.5, warmup=0.2, users=50)
    figures = await bench.run_load(config, ticks.append)
    assert figures.requests > 0 and figures.events == figures.requests
    assert figures.status_counts == {200: figures.requests}
    assert figures.accepted == figures.requests
    assert figures.errors == figures.connection_errors == figures.overloaded_503 == 0
    assert len(figures.latencies_ms) == figures.requests
    assert_ordered(figures)
    assert ticks and ticks[0][0] == 1 and ticks[0][1] > 0


async def test_batch_mode_counts_events(server_url):
    config = bench.BenchConfig(
        url=server_url, mode="batch", connections=4, duration=1.5, warmup=0.2, batch_size=20
    )
    figures = await bench.run_load(config)
    assert figures.requests > 0
    assert figures.events == figures.requests * 20 == figures.accepted
    assert_ordered(figures)


async def test_503_answers_are_counted_as_overload_not_errors(server_url):
    config = bench.BenchConfig(url=server_url + "/flaky", connections=4, duration=1.5, warmup=0.2)
    figures = await bench.run_load(config)
    assert figures.requests > 0 and figures.overloaded_503 > 0
    assert abs(figures.overloaded_503 - figures.requests) <= 4  # every other answer
    assert figures.errors == figures.connection_errors == 0
    assert set(figures.status_counts) == {200, 503}
    assert_ordered(figures)


async def test_open_loop_rate_is_paced(server_url):
    config = bench.BenchConfig(url=server_url, connections=4, duration=1.5, warmup=0.2, rate=40)
    figures = await bench.run_load(config)
    assert 40 <= figures.requests <= 80  # ~60 at 40/s over 1.5 s


# --- the command --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_exit_1_when_nothing_listens(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert bench.run(parse("--url", url, "--duration", "0.5", "--warmup", "0")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"bench: cannot reach {url}")


def test_defaults_and_token_from_environment(monkeypatch):
    monkeypatch.setenv("REVIVATECH_BENCH_TOKEN", "from-env")
    args = parse()
    assert (args.url, args.mode, args.connections, args.duration, args.rate) == (
        "http://127.0.0.1:3011",
        "single",
        50,
        10.0,
        0.0,
    )
    assert (args.batch_size, args.users, args.warmup, args.processes) == (100, 10_000, 1.0, 1)
    assert args.token == "from-env" and not args.json and not args.quiet


def test_the_cli_passes_every_option_after_bench_to_the_bench_client(capsys):
    from revivatech_actors import cli

    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["bench", "--url", url, "--duration", "0.5", "--warmup", "0", "--json"]) == 1
    assert capsys.readouterr().err.strip().startswith(f"bench: cannot reach {url}")
    with pytest.raises(SystemExit) as refused:
        cli.main(["bench", "--mode", "nope"])
    assert refused.value.code == 2
    assert "revivatech-actors bench: error: argument --mode" in capsys.readouterr().err


def test_other_commands_still_refuse_unknown_arguments(capsys):
    from revivatech_actors import cli

    with pytest.raises(SystemExit) as refused:
        cli.main(["check-config", "--connections", "5"])
    assert refused.value.code == 2
    assert "unrecognized arguments: --connections 5" in capsys.readouterr().err


#: Runs in a fresh interpreter: which modules the CLI and the service load for commands other
#: than ``bench``, then for ``bench --help``.
IMPORT_PROBE = """
import contextlib, io, sys
import revivatech_actors.cli as cli
import revivatech_actors.service
def loaded():
    return sorted(m for m in sys.modules
                  if m.startswith(("revivatech_actors.bench", "trio_websocket")))
for argv in (["check-config"], ["--help"], ["serve", "--help"], ["migrate", "--help"]):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        cli.main(argv)
print(loaded())
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    cli.main(["bench", "--help"])
print("revivatech_actors.bench" in loaded())
"""


def test_only_the_bench_command_loads_the_bench_client(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVIVATECH_")}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"], done.stdout + done.stderr


def test_the_bench_modules_import_each_other_without_a_cycle():
    package = Path(bench.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):  # imports in functions count too
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.update([node.module] if node.module else [a.name for a in node.names])
        imports[path.stem] = found
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in imports.get(module, ()):
                visit(imported, (*path, module))
            done.add(module)

    for module in imports:
        visit(module, ())
    assert imports["_payloads"] == imports["_report"] == imports["_errors"] == set()

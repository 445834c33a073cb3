"""``GET /metrics`` and the logs of a real ``serve``: who may scrape (metrics.token, admin tokens,
metrics.port), counters that move with posted events, the sum over ``--workers 2``; JSON and text
lines, request ids, no query string or secret in any line, the access log off, and the generated
admin token: printed only to a terminal, else written to an owner-only file."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import time

import httpx
import pytest
import trio
import trio_websocket
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import free_port
from .conftest import ADMIN_TOKEN, next_of, service_env, ws_url

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "metrics-token-0123456789abcdef"
SECRET = "query-secret-do-not-log-42"
EVENTS = "/api/analytics/events"


def scrape(url: str, token: str | None = None) -> dict[tuple[str, frozenset], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def event(n: int, **fields) -> dict:
    return {
        "user_fingerprint": f"fp-{n}",
        "session_id": f"s-{n}",
        "event_type": "page_view",
        **fields,
    }


def test_metrics_need_the_metrics_token_and_count_posted_events(serve):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_METRICS_TOKEN=METRICS_TOKEN
        )
    )
    url = server.base_url + "/metrics"
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert "metrics.token" in refused.json()["message"]
    assert (
        httpx.get(
            url, headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=5
        ).status_code
        == 401
    )
    assert scrape(url, ADMIN_TOKEN)  # an admin token reads them too
    before = scrape(url, METRICS_TOKEN)

    fixed_id = "5c1f7a52-8d8e-4f43-9c1e-0d5b8e1f2a3b"
    assert (
        httpx.post(
            server.base_url + EVENTS, json=event(1, event_id=fixed_id), timeout=5
        ).status_code
        == 200
    )
    assert httpx.post(server.base_url + EVENTS, json=event(1, event_id=fixed_id), timeout=5).json()[
        "duplicate"
    ]
    batch = {
        "events": [event(2), event(3), {"session_id": "no-fingerprint", "event_type": "page_view"}]
    }
    assert httpx.post(server.base_url + EVENTS + "/batch", json=batch, timeout=5).status_code == 200
    assert (
        httpx.post(
            server.base_url + EVENTS, json={"event_type": "page_view"}, timeout=5
        ).status_code
        == 400
    )
    assert httpx.get(server.base_url + "/api/analytics/insights/fp-1", timeout=5).status_code == 401
    after = scrape(url, METRICS_TOKEN)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("revivatech_events_received_total") == 6
    assert moved("revivatech_events_stored_total") == 3
    assert moved("revivatech_events_duplicate_total") == 1
    assert moved("revivatech_events_rejected_total", stage="validation") == 2
    assert moved("revivatech_events_rejected_total", stage="database") == 0
    assert moved("revivatech_batch_size_events_count") >= 3
    assert moved("revivatech_batch_flush_seconds_count") >= 3
    assert moved("revivatech_event_commit_lag_seconds_count") >= 3
    assert (
        value(after, "revivatech_ingest_lag_seconds") == 0
    )  # nothing held once answered (durable)
    # the route template, never the raw path, is the label
    assert (
        moved(
            "revivatech_http_requests_total",
            method="GET",
            route="/api/analytics/insights/{fingerprint}",
            status="401",
        )
        == 1
    )
    assert not any("fp-1" in dict(labels).get("route", "") for _, labels in after)
    assert moved("revivatech_http_requests_total", method="POST", route=EVENTS, status="200") == 2
    assert moved("revivatech_http_request_duration_seconds_count", method="POST", route=EVENTS) == 3
    assert value(after, "revivatech_actor_restarts_total", actor="batcher") == 0
    assert ("revivatech_actor_inbox_depth", frozenset({("actor", "batcher")})) in after
    assert value(after, "revivatech_profile_actors_active") >= 3
    assert value(after, "revivatech_websocket_clients") == 0


def test_without_a_metrics_token_only_an_admin_reads_metrics_on_the_public_port(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    assert httpx.get(server.base_url + "/metrics", timeout=5).status_code == 401
    assert (
        httpx.get(
            server.base_url + "/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=5,
        ).status_code
        == 401
    )
    assert (
        value(scrape(server.base_url + "/metrics", ADMIN_TOKEN), "revivatech_events_stored_total")
        == 0
    )


def test_metrics_port_serves_metrics_there_and_not_on_the_public_port(serve):
    port = free_port()
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_METRICS_PORT=str(port))
    )
    internal = f"http://127.0.0.1:{port}/metrics"
    public = httpx.get(
        server.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    )
    assert public.status_code == 404 and public.json()["error"] == "not_found"
    assert httpx.post(server.base_url + EVENTS, json=event(1), timeout=5).status_code == 200
    samples = scrape(internal)  # no token needed on the internal port
    assert value(samples, "revivatech_events_stored_total") == 1
    assert httpx.get(f"http://127.0.0.1:{port}/api/analytics/health", timeout=5).status_code == 404
    openmetrics = httpx.get(
        internal, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


def test_metrics_port_with_a_token_needs_it(serve):
    port = free_port()
    serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_METRICS_PORT=str(port),
            REVIVATECH_METRICS_TOKEN=METRICS_TOKEN,
        )
    )
    internal = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(internal, timeout=5).status_code == 401
    assert (
        httpx.get(
            internal, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        ).status_code
        == 401
    )
    assert scrape(internal, METRICS_TOKEN)


@pytest.mark.postgres
@pytest.mark.redis
def test_any_worker_reports_the_sum_over_both_workers(serve, postgres_url, redis_url, redis_prefix):
    port = free_port()  # every worker serves it too (SO_REUSEPORT)
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
            REVIVATECH_REDIS_KEY_PREFIX=redis_prefix,
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_METRICS_TOKEN=METRICS_TOKEN,
            REVIVATECH_METRICS_PORT=str(port),
        ),
        args=("--workers", "2"),
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    sent = 40
    for n in range(sent):  # a new connection each: the kernel spreads them over both workers
        assert httpx.post(server.base_url + EVENTS, json=event(n), timeout=5).status_code == 200
    pids = set()
    deadline = time.monotonic() + 15
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(httpx.get(server.base_url + "/api/analytics/health", timeout=5).json()["pid"])
    assert len(pids) == 2, "both workers answer"
    for _ in range(12):  # each scrape on a new connection, answered by either worker
        samples = scrape(metrics_url, METRICS_TOKEN)
        assert value(samples, "revivatech_events_stored_total") == sent
        assert value(samples, "revivatech_events_received_total") == sent
        assert (
            value(
                samples, "revivatech_http_requests_total", method="POST", route=EVENTS, status="200"
            )
            == sent
        )

    # a worker killed: its counts stay in the sum, its replacement adds to them
    victim = pids.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.post(server.base_url + EVENTS, json=event(sent), timeout=5).status_code == 200:
                break
        except httpx.TransportError:  # a connection the dead worker had been handed
            time.sleep(0.1)
    samples = scrape(metrics_url, METRICS_TOKEN)
    assert value(samples, "revivatech_events_stored_total") == sent + 1
    directory = re.search(r"workers' metrics kept in (\S+)", server.output())
    assert directory and os.path.isdir(directory.group(1))
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not os.path.exists(directory.group(1))  # a fresh directory per run, removed at exit


# --- logs -----------------------------------------------------------------------------------------


def _exercise(server, request_id: str) -> None:
    """An event with ``request_id``, a request with ``?token=SECRET`` and one with a bad id."""
    answer = httpx.post(
        server.base_url + EVENTS, json=event(1), headers={"X-Request-Id": request_id}, timeout=5
    )
    assert answer.status_code == 200 and answer.headers["X-Request-Id"] == request_id
    made = httpx.get(server.base_url + f"/api/analytics/realtime?token={SECRET}", timeout=5)
    assert made.status_code == 401
    assert re.fullmatch(r"[0-9a-f-]{36}", made.headers["X-Request-Id"])  # none given: one is made
    odd = httpx.get(
        server.base_url + "/healthz", headers={"X-Request-Id": "bad id\twith spaces"}, timeout=5
    )
    assert odd.headers["X-Request-Id"] != "bad id\twith spaces"
    ws = httpx.get(server.base_url + f"/api/analytics/ws?token={SECRET}", timeout=5)
    assert ws.status_code in (400, 401, 426)


def _stopped_output(server) -> str:
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    return server.output()


def test_json_logs_parse_line_by_line_and_carry_the_request_id(serve):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_LOG_FORMAT="json",
            REVIVATECH_LOG_LEVEL="debug",
            REVIVATECH_WEB_ACCESS_LOG="true",
        )
    )
    _exercise(server, "req-json-1")
    output = _stopped_output(server)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("request_id") == "req-json-1"]
    access = [line for line in mine if line["logger"] == "revivatech_actors.access"]
    assert len(access) == 1
    assert access[0] | {"duration_ms": 0} == access[0] | {
        "method": "POST",
        "path": EVENTS,
        "route": EVENTS,
        "status": 200,
        "duration_ms": 0,
    }
    assert any(
        line["logger"] == "revivatech_actors.actors.ingest" for line in mine
    )  # the actor's line
    assert SECRET not in output and ADMIN_TOKEN not in output
    realtime = [line for line in lines if line.get("route") == "/api/analytics/realtime"]
    assert (
        realtime
        and realtime[0]["path"] == "/api/analytics/realtime"
        and realtime[0]["status"] == 401
    )


def test_text_logs_carry_the_request_id_and_never_the_query_string(serve):
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_WEB_ACCESS_LOG="true")
    )
    _exercise(server, "req-text-1")

    async def follow_the_feed() -> None:  # the admin token in ?token=, as browsers send it
        async with trio_websocket.open_websocket_url(ws_url(server)) as ws:
            await next_of(ws, "connection_established")
            # a round trip, so the server's first protocol ping is answered before the client
            # closes (trio-websocket fails on a ping that arrives while it closes)
            await ws.send_message(json.dumps({"type": "ping"}))
            await next_of(ws, "pong")

    trio.run(follow_the_feed)
    output = _stopped_output(server)
    assert "revivatech_actors.access: GET /api/analytics/ws 101" in output  # written when it closed
    assert re.search(
        r"INFO    revivatech_actors\.access: POST /api/analytics/events 200 [\d.]+ ms"
        r" request_id=req-text-1",
        output,
    ), output
    assert "revivatech_actors.access: GET /api/analytics/realtime 401" in output
    assert SECRET not in output and ADMIN_TOKEN not in output


def test_access_log_off_writes_no_access_line(serve):
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_LOG_LEVEL="debug")
    )
    _exercise(server, "req-quiet-1")
    output = _stopped_output(server)
    assert "revivatech_actors.access" not in output
    assert "request_id=req-quiet-1" in output  # the ingest actor's debug line still names it
    assert SECRET not in output


# --- the generated admin token -------------------------------------------------------------------


def test_generated_token_goes_to_an_owner_only_file_when_stderr_is_not_a_terminal(serve):
    server = serve(env=service_env())
    output = server.output()
    assert "Authorization: Bearer" not in output
    match = re.search(r"written to (\S+revivatech-admin-token-\S+\.txt)", output)
    assert match, output
    path = match.group(1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = open(path).read().strip()
    assert len(token) >= 40 and token not in output
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        httpx.get(server.base_url + "/api/analytics/actors", headers=headers, timeout=5).status_code
        == 200
    )
    output = _stopped_output(server)
    assert token not in output
    assert not os.path.exists(path)  # valid for that run only


def test_generated_token_is_printed_when_stderr_is_a_terminal(tmp_path):
    port = free_port()
    leader, follower = pty.openpty()
    with open(tmp_path / "stdout.log", "wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "revivatech_actors", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=service_env(),
            stdout=stdout,
            stderr=follower,
        )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while b"listening on" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:  # the terminal closed: serve exited
                    break
        text = seen.decode(errors="replace")
        match = re.search(r"Authorization: Bearer (\S+)", text)
        assert match, text
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/analytics/actors",
            headers={"Authorization": f"Bearer {match.group(1)}"},
            timeout=5,
        )
        assert answer.status_code == 200
        assert not list(tmp_path.glob("revivatech-admin-token-*"))  # no file when it was shown
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while (
            process.poll() is None and time.monotonic() < deadline
        ):  # keep reading: a full terminal blocks it
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        if process.poll() is None:
            process.kill()
        process.wait(10)
        os.close(leader)

"""The pure parts of observability: route labels, request ids, secret masking, the log formats,
the request ids of a batch, the telemetry actor's samples, the rate-limit counter and the
exposition's format."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import pytest
import trio
from prometheus_client import REGISTRY

from revivatech_actors.actors.batcher import LOGGED_REQUEST_IDS, batch_request_ids
from revivatech_actors.actors.telemetry import TelemetryActor
from revivatech_actors.logs import REQUEST_ID, Redactor, configure_logging
from revivatech_actors.prometheus import exposition, record_http_request, record_rate_limited
from revivatech_actors.supervisor import ChildSpec, Restart, Supervisor
from revivatech_actors.web.observe import MAX_REQUEST_ID, request_id_of, route_template

SECRET = "s3cret-token-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        ("/api/analytics/insights/<path:fingerprint>", "/api/analytics/insights/{fingerprint}"),
        ("/api/analytics/actors/<name>/crash", "/api/analytics/actors/{name}/crash"),
        ("/api/analytics/events", "/api/analytics/events"),
        (None, None),
    ],
)
def test_route_template(rule, label):
    assert route_template(rule) == label


def test_a_plain_request_id_is_kept_and_anything_else_replaced():
    assert request_id_of("abc-123_x.y:z") == "abc-123_x.y:z"
    kept = "a" * MAX_REQUEST_ID
    assert request_id_of(kept) == kept
    for odd in (None, "", "a" * (MAX_REQUEST_ID + 1), "has space", "line\nbreak", 'quote"d'):
        made = request_id_of(odd)
        assert made != odd and len(made) == 36


def test_redactor_masks_secrets_and_credential_parameters():
    redact = Redactor([SECRET, "", "ab"])  # empty or tiny "secrets" would mask everything: ignored
    assert redact(f"token {SECRET} seen") == "token *** seen"
    assert (
        redact("GET /ws?token=abc&x=1 and /a?password=p;b")
        == "GET /ws?token=***&x=1 and /a?password=***;b"
    )
    assert redact("about ab and tokens") == "about ab and tokens"
    redact.add("later-generated-token")
    assert redact("x later-generated-token y") == "x *** y"


def _logged(fmt: str, worker: int | None = None) -> str:
    stream = io.StringIO()
    saved = sys.stderr
    sys.stderr = stream
    try:
        configure_logging("info", fmt=fmt, worker=worker, secrets=[SECRET])
    finally:
        sys.stderr = saved
    log = logging.getLogger("revivatech_actors.test")
    token = REQUEST_ID.set("req-1")
    try:
        log.info("got %s from /x?token=zzz", SECRET, extra={"status": 200})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        REQUEST_ID.reset(token)
    log.info("outside any request")
    return stream.getvalue()


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_are_one_object_each_with_the_request_id(restore_logging):
    lines = [json.loads(line) for line in _logged("json", worker=3).splitlines()]
    assert len(lines) == 3
    first, error, outside = lines
    assert first["message"] == "got *** from /x?token=***"
    assert (
        first["level"],
        first["logger"],
        first["request_id"],
        first["status"],
        first["worker"],
    ) == ("INFO", "revivatech_actors.test", "req-1", 200, 3)
    assert "time" in first and "pid" in first
    assert "ValueError: boom" in error["exc_info"] and error["request_id"] == "req-1"
    assert "request_id" not in outside


def test_text_lines_end_with_the_request_id(restore_logging):
    text = _logged("text")
    assert SECRET not in text and "zzz" not in text
    first = text.splitlines()[0]
    assert first.endswith(
        "INFO    revivatech_actors.test: got *** from /x?token=*** request_id=req-1"
    )
    assert text.splitlines()[-1].endswith("revivatech_actors.test: outside any request")


def test_batch_request_ids_are_distinct_and_bounded():
    assert batch_request_ids([None, None]) is None
    assert batch_request_ids(["a", None, "b", "a"]) == "a,b"
    many = [f"r{n}" for n in range(LOGGED_REQUEST_IDS + 3)]
    assert batch_request_ids(many) == ",".join(many[:LOGGED_REQUEST_IDS]) + ",+3 more"


def test_rate_limit_and_http_counters():
    before = sample("revivatech_rate_limited_total", limit="test_limit")
    record_rate_limited("test_limit")
    record_rate_limited("test_limit")
    assert sample("revivatech_rate_limited_total", limit="test_limit") - before == 2
    other = sample(
        "revivatech_http_requests_total", method="OTHER", route="unmatched", status="404"
    )
    record_http_request("BREW", None, 404, 0.01)  # any method a client invents is one label value
    assert (
        sample("revivatech_http_requests_total", method="OTHER", route="unmatched", status="404")
        - other
        == 1
    )


@pytest.mark.parametrize(
    "accept", ["text/plain; version=abc", "application/openmetrics-text; version=1.x"]
)
def test_an_accept_version_that_cannot_be_compared_gets_the_text_format(accept):
    # prometheus_client compares the version's parts with (1, 0, 0): a TypeError, so
    # GET /metrics was a 500
    body, content_type = exposition(accept)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE revivatech_http_requests_total counter" in body
    assert exposition("application/openmetrics-text")[1].startswith(
        "application/openmetrics-text; version=1.0.0"
    )


async def test_telemetry_samples_inbox_depths_restarts_and_counts():
    send, receive = trio.open_memory_channel(8)
    crashes = 0

    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep_forever()

    async def crashing(*, task_status=trio.TASK_STATUS_IGNORED):
        nonlocal crashes
        task_status.started()
        crashes += 1
        await trio.sleep_forever()

    tree = Supervisor(
        "root",
        [
            ChildSpec("t_inboxed", worker, Restart.PERMANENT, inbox=receive),
            ChildSpec("t_crashing", crashing, Restart.PERMANENT),
        ],
        max_restarts=5,
        max_seconds=30,
        backoff_initial=0.0,
        backoff_max=0.0,
    )
    telemetry = TelemetryActor(tree.status, lambda: 7, lambda: 2)
    restarts_before = sample("revivatech_actor_restarts_total", actor="t_crashing")
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        send.send_nowait("a")
        send.send_nowait("b")
        telemetry.sample()
        assert sample("revivatech_actor_inbox_depth", actor="t_inboxed") == 2
        assert (
            sample("revivatech_profile_actors_active") == 7
            and sample("revivatech_websocket_clients") == 2
        )
        assert sample("revivatech_actor_restarts_total", actor="t_crashing") == restarts_before
        tree.inject_crash("t_crashing")
        with trio.fail_after(5):
            while crashes < 2:
                await trio.sleep(0.01)
        telemetry.sample()
        telemetry.sample()  # counted once, however often sampled
        assert sample("revivatech_actor_restarts_total", actor="t_crashing") - restarts_before == 1
        tree.request_stop()


def test_telemetry_reports_how_long_the_oldest_held_event_has_waited():
    held: list[datetime] = []
    telemetry = TelemetryActor(
        lambda: Supervisor("root", []).status(),
        lambda: 0,
        lambda: 0,
        lambda: held[0] if held else None,
    )
    telemetry.sample()
    assert sample("revivatech_ingest_lag_seconds") == 0
    held.append(datetime.now(UTC) - timedelta(seconds=5))
    telemetry.sample()
    assert 5 <= sample("revivatech_ingest_lag_seconds") < 10
    held.clear()
    telemetry.sample()
    assert sample("revivatech_ingest_lag_seconds") == 0

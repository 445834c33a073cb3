"""Schemathesis against a real ``serve`` process, from the document it serves at /openapi.json:
with an admin token and without a credential, on SQLite and PostgreSQL, examples bounded per
operation and a fixed seed (the same cases every run). No answer may be a 5xx, have a status the
document does not list for its operation, or a body or headers outside the document's schemas.

Also: the checks really fail on an answer outside its schema, and answers to request bodies that
nobody read close their connection (Schemathesis found such connections hanging)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from revivatech_actors.web.openapi import load_document

from .conftest import ADMIN_TOKEN, ServeProcess, service_env

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
#: Fixed, so that a run is reproducible; change it to explore other cases.
SEED = "16"
#: Cases per operation in the fuzzing phase (the coverage phase draws its own, bounded set).
MAX_EXAMPLES = 5
#: Without a credential every admin route answers 401 whatever it is sent: fewer cases do.
MAX_EXAMPLES_WITHOUT_TOKEN = 2
#: Seconds one schemathesis run may take before the test fails.
RUN_TIMEOUT = 120


def schemathesis(
    server: ServeProcess,
    cwd,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    phases: str = "examples,fuzzing",
    max_examples: int = MAX_EXAMPLES,
    location: str | None = None,
) -> subprocess.CompletedProcess:
    """``schemathesis run`` against ``server`` to its end (one worker: its generator is not
    thread-safe on Python 3.11)."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        location or f"{server.base_url}/openapi.json",
        "--url",
        server.base_url,
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "5",
        *args,
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=service_env()
    )


def assert_clean(run: subprocess.CompletedProcess, what: str) -> None:
    assert run.returncode == 0, (
        f"schemathesis found problems {what}:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    )
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-2000:]


def test_schemathesis_finds_nothing_on_sqlite_with_and_without_a_token(serve, tmp_path):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    assert_clean(
        schemathesis(server, tmp_path, phases="examples,coverage,fuzzing"), "with an admin token"
    )
    assert_clean(
        schemathesis(server, tmp_path, token=None, max_examples=MAX_EXAMPLES_WITHOUT_TOKEN),
        "without a credential",
    )
    assert "Traceback" not in server.output()


def test_schemathesis_finds_nothing_on_postgresql(serve, tmp_path, postgres_url):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_STORAGE_URL=postgres_url
        )
    )
    assert_clean(schemathesis(server, tmp_path), "with an admin token on PostgreSQL")


def test_schemathesis_finds_nothing_when_rate_limits_refuse(serve, tmp_path):
    """Limits of two requests an hour: past the first answers, the ingest and admin routes answer
    429 with Retry-After and RateLimit-*, which the checks hold to the document too."""
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_LIMITS_ADMIN_RATE="2/1h",
            REVIVATECH_LIMITS_INGEST_RATE="2/1h",
        )
    )
    assert_clean(
        schemathesis(server, tmp_path, phases="fuzzing", max_examples=2),
        "with rate limits refusing",
    )
    scraped = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    ).text
    for limit in ("admin_rate", "ingest_rate"):  # /metrics itself is not limited
        refused = re.search(
            rf'^revivatech_rate_limited_total{{limit="{limit}"}} (\S+)$', scraped, re.MULTILINE
        )
        assert refused and float(refused.group(1)) > 0, scraped


def test_schemathesis_fails_on_an_answer_outside_its_schema(serve, tmp_path):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    document = json.loads(load_document())
    answer = document["paths"]["/healthz"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    answer["properties"]["status"] = {"const": "dead"}  # the service says "alive"
    wrong = tmp_path / "wrong-openapi.json"
    wrong.write_text(json.dumps(document))
    run = schemathesis(
        server,
        tmp_path,
        "--include-path",
        "/healthz",
        "--no-shrink",
        phases="fuzzing",
        max_examples=1,
        location=str(wrong),
    )
    assert run.returncode != 0, run.stdout[-3000:]
    assert "violates schema" in run.stdout.lower() and "/healthz" in run.stdout, run.stdout[-3000:]


def test_answers_to_unread_bodies_close_the_connection(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    event = {"user_fingerprint": "fp-body", "session_id": "s-body", "event_type": "page_view"}
    with httpx.Client(base_url=server.base_url, timeout=3) as client:
        for _ in range(10):  # one keep-alive connection hung within a few such requests before
            for method in ("PUT", "PATCH", "GET", "DELETE"):  # 405: the route takes POST only
                answer = client.request(method, "/api/analytics/events", json=event)
                assert answer.status_code == 405 and answer.headers["Connection"] == "close"
            answer = client.post(
                "/api/analytics/events",
                content=b"{}",
                headers={"Content-Type": "multipart/form-data"},
            )
            assert answer.status_code == 415 and answer.headers["Connection"] == "close"
            answer = client.request("GET", "/healthz", content=b"unread")
            assert answer.status_code == 200 and answer.headers["Connection"] == "close"
        stored = client.post(
            "/api/analytics/events", json=event
        )  # its body is read: the connection stays
        assert stored.status_code == 200 and "Connection" not in stored.headers
        assert client.get("/healthz").headers.get("Connection") is None

"""``GET /api/analytics/models`` and ``revivatech-actors evaluate`` end to end: a generated
population's history (its future hidden) posted to a real ``serve`` with its historical times,
the service's own backtest run in a process of its own and served, with the figures the same
computation gives on the generator's events; ``evaluate`` printing them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from revivatech_actors.bench._population import generate
from revivatech_actors.config import load_settings
from revivatech_actors.domain.backtest import (
    HistoryEvent,
    cutoffs,
    samples_of,
)
from revivatech_actors.domain.backtest_figures import FixedFormulaTally

from .conftest import ADMIN_TOKEN, run_cli, service_env

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def expected_figures(population, events_by_visitor) -> dict:
    """The fixed formulas' figures computed here, from the generator's events, as the service's
    backtest should find them in what it stored."""
    scoring = load_settings(None).scoring
    horizon = timedelta(days=scoring.horizon_days)
    times = [e.timestamp for events in events_by_visitor.values() for e in events]
    at = cutoffs(min(times), max(times), horizon, scoring.backtest_cutoffs)
    tally = FixedFormulaTally(scoring)
    for events in events_by_visitor.values():
        for sample in samples_of(events, at, horizon):
            tally.add(sample)
    return {model: figures.to_json() for model, figures in tally.figures().items()}


def history_of(population) -> dict[str, list[HistoryEvent]]:
    return {
        v.fingerprint: [
            HistoryEvent(
                e["event_type"],
                e["session_id"],
                datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")),
                e.get("value"),
            )
            for e in v.events
        ]
        for v in population.visitors
    }


def test_the_service_backtests_what_it_stored_and_serves_the_figures(serve, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    population = generate("one_off", 250, now=now, seed=3)
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_LIMITS_INGEST_RATE="",
            REVIVATECH_SCORING_LEARN_INTERVAL="3",
        )
    )
    pending = httpx.get(server.base_url + "/api/analytics/models", headers=HEADERS).json()
    assert pending["status"] == "pending" and pending["data"] is None
    assert httpx.get(server.base_url + "/api/analytics/models").status_code == 401

    events = [e for v in population.visitors for e in v.events]  # the future stays hidden
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for start in range(0, len(events), 500):
            answer = client.post(
                "/api/analytics/events/batch", json={"events": events[start : start + 500]}
            )
            assert answer.status_code == 200 and answer.json()["accepted"] > 0, answer.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = client.get("/api/analytics/models", headers=HEADERS).json()
            if body["status"] == "ready" and body["data"]["visitors"] == 250:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no backtest of the stored history: {body}\n{server.output()[-3000:]}")
    served = body["data"]
    expected = expected_figures(population, history_of(population))
    assert {m: served["models"][m]["fixed"] for m in expected} == expected
    assert all(served["models"][m]["inUse"] == "fixed" for m in expected)
    assert served["models"]["lead_scoring"]["fixed"]["rocAuc"] > 0.7  # the generator's design

    printed = run_cli("evaluate", cwd=tmp_path)  # the same database, by the default URL
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith("250 visitors, ")
    lead = next(line for line in lines if line.startswith("lead_scoring")).split()
    assert lead[1] == "fixed" and int(lead[2]) == expected["lead_scoring"]["samples"]
    assert float(lead[4]) == pytest.approx(expected["lead_scoring"]["rocAuc"], abs=6e-4)
    as_json = json.loads(run_cli("evaluate", "--json", cwd=tmp_path).stdout)
    assert as_json["models"] == served["models"]

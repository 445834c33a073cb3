"""Backtests and learned weights end to end: a generated population's history (its future
hidden) posted to a real ``serve`` with its historical times; the service's own backtest, run
in a process of its own, served by ``GET /api/analytics/models`` with the conclusions the same
computation reaches on the generator's events; ``evaluate`` printing them; and on both
populations the lead and churn scores served by the insights rank the hidden future with a ROC
AUC of at least 0.80."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from revivatech_actors.bench._population import generate
from revivatech_actors.config import load_settings
from revivatech_actors.domain.backtest import HistoryEvent, SampleStream, cutoffs
from revivatech_actors.domain.learning import CHECKED_MODELS, BacktestTally, choose
from revivatech_actors.domain.model_figures import model_figures

from .conftest import ADMIN_TOKEN, run_cli, service_env

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def expected_models(history: list[tuple[str, HistoryEvent]]) -> dict:
    """The backtest's conclusions computed here, from the generator's events in the order the
    service reads them, as the service's should find them in what it stored."""
    scoring = load_settings(None).scoring
    horizon = timedelta(days=scoring.horizon_days)
    times = [event.timestamp for _, event in history]
    at = cutoffs(min(times), max(times), horizon, scoring.backtest_cutoffs)
    tally = BacktestTally(scoring, at)
    stream = SampleStream(at, horizon, tally.add)
    for fingerprint, event in history:
        stream.add(fingerprint, event)
    stream.finish()
    return {
        model: choose(
            model,
            tally,
            min_positives=scoring.learn_min_positives,
            min_gain=scoring.learn_min_gain,
        ).to_json()
        for model in CHECKED_MODELS
    }


def history_of(population) -> list[tuple[str, HistoryEvent]]:
    """Every visitor's known events in time order, ties by event id (as storage gives them)."""
    rows = []
    for v in population.visitors:
        for e in v.events:
            moment = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
            event = HistoryEvent(e["event_type"], e["session_id"], moment, e.get("value"))
            rows.append((moment, e["event_id"], v.fingerprint, event))
    return [(fingerprint, event) for _, _, fingerprint, event in sorted(rows)]


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
    assert served["models"] == expected_models(history_of(population))  # same data, same model

    printed = run_cli("evaluate", cwd=tmp_path)  # the same database, by the default URL
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith("250 visitors, ")
    lead = next(line for line in lines if line.startswith("lead_scoring")).split()
    expected = served["models"]["lead_scoring"]
    assert lead[1] == expected["inUse"] and int(lead[2]) == expected["fixed"]["samples"]
    assert float(lead[4]) == pytest.approx(expected["fixed"]["rocAuc"], abs=6e-4)
    as_json = json.loads(run_cli("evaluate", "--json", cwd=tmp_path).stdout)
    assert as_json["models"] == served["models"]


def post_history(client: httpx.Client, population) -> None:
    events = [e for v in population.visitors for e in v.events]  # the future stays hidden
    for start in range(0, len(events), 500):
        answer = client.post(
            "/api/analytics/events/batch", json={"events": events[start : start + 500]}
        )
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("kind", ["one_off", "regular"])
def test_served_scores_rank_the_hidden_future_on_both_populations(serve, kind):
    """The issue's bound, end to end: events posted with their historical times, the service's
    backtest and learning, the scores read over HTTP, labels from the generator's future."""
    population = generate(kind, 1000, now=datetime.now(UTC), seed=21)
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_LIMITS_INGEST_RATE="",
            REVIVATECH_LIMITS_ADMIN_RATE="",
            REVIVATECH_SCORING_LEARN_INTERVAL="2",
            REVIVATECH_SCORING_LEARN_WORK_SHARE="1",  # the first test keeps the default pace
        )
    )
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=30) as client:
        post_history(client, population)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # backtested what was stored, and adopted it
            body = client.get("/api/analytics/models").json()
            stats = client.get("/api/analytics/actors").json()["stats"]["models"]
            if body["status"] == "ready" and body["data"]["visitors"] == 1000:
                in_use = {m: c["version"] for m, c in body["data"]["models"].items()}
                if {m: v for m, v in in_use.items() if v != "fixed"} == stats["inUse"]:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"no backtest adopted: {body} {stats}\n{server.output()[-3000:]}")
        served = {"lead": [], "churnRisk": []}
        for visitor in population.visitors:
            data = client.get(f"/api/analytics/insights/{visitor.fingerprint}").json()["data"]
            for key in served:
                served[key].append(data["scores"][key] / 100)
            versions = {d["modelVersion"] for d in data["scoreDetails"].values()}
            assert versions <= {"fixed", *in_use.values()}
    booked = [v.books_within_horizon for v in population.visitors]
    inactive = [not v.active_within_horizon for v in population.visitors]
    lead_auc = model_figures(served["lead"], booked).roc_auc
    churn_auc = model_figures(served["churnRisk"], inactive).roc_auc
    print(f"{kind}: in use {in_use}; served lead ROC AUC {lead_auc:.3f}, churn {churn_auc:.3f}")
    assert lead_auc >= 0.80 and churn_auc >= 0.80, (lead_auc, churn_auc, body["data"]["models"])

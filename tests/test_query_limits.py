"""The admin routes' numeric and time query parameters over real HTTP: within its range each is
answered 200, out of it (too large, Unicode digits, thousands of digits, years out of the
calendar) 400 naming the parameter and its range, never a 500."""

from __future__ import annotations

import pytest

from .test_service import TOKEN, Running, make_service

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HUGE = "9" * 5000  # int() refuses more than 4300 digits with an error

ALLOWED = [
    "/api/analytics/insights?page=1&limit=100",
    "/api/analytics/journey/fp-1?limit=1000",
    "/api/analytics/funnel?window=3650d",
    "/api/analytics/funnel?windows=1h,2h,3650d",
    "/api/analytics/funnel?from=1970-01-01T00:00:00Z&to=2999-12-31T00:00:00Z",
    "/api/analytics/dashboard?timeframe=3650%20days",
]

#: (path, the parameter named, what the message says of its range)
REFUSED = [
    ("/api/analytics/insights?limit=101", "limit", "from 1 to 100"),
    ("/api/analytics/insights?limit=%C2%B2", "limit", "from 1 to 100"),
    (f"/api/analytics/insights?page={HUGE}", "page", "from 1 to 100000"),
    ("/api/analytics/journey/fp-1?limit=1001", "limit", "between 1 and 1000"),
    ("/api/analytics/journey/fp-1?limit=%D9%A1", "limit", "between 1 and 1000"),
    (f"/api/analytics/journey/fp-1?limit={HUGE}", "limit", "between 1 and 1000"),
    ("/api/analytics/insights/fp-1?history=%C2%B2", "history", "between 1 and 100"),
    (f"/api/analytics/insights/fp-1?history={HUGE}", "history", "between 1 and 100"),
    ("/api/analytics/funnel?window=3651d", "window", "at most 3650 days"),
    ("/api/analytics/funnel?window=99999999999999999999w", "window", "at most 3650 days"),
    ("/api/analytics/funnel?windows=1h,2h,99999999999999999999w", "windows", "at most 3650 days"),
    ("/api/analytics/funnel?to=0001-01-01T00:00:00Z", "to", "from 1970-01-01T00:00:00.000Z"),
    ("/api/analytics/funnel?to=9999-12-31T23:59:59Z", "to", "to before 3000-01-01T00:00:00.000Z"),
    (
        "/api/analytics/funnel?from=9999-12-31T23:00:00-05:00",
        "from",
        "to before 3000-01-01T00:00:00.000Z",
    ),
    ("/api/analytics/dashboard?timeframe=3651%20days", "timeframe", "at most 3650 days"),
    ("/api/analytics/performance?timeframe=9999999%20days", "timeframe", "at most 3650 days"),
]


@pytest.fixture
async def client(sqlite_url):
    async with Running(make_service(sqlite_url)) as http:
        yield http


async def test_parameters_within_their_range_are_answered(client):
    for path in ALLOWED:
        answer = await client.get(path, headers=ADMIN)
        assert answer.status_code == 200, (path, answer.text)


async def test_parameters_out_of_range_are_400_naming_the_parameter_and_its_range(client):
    for path, parameter, rule in REFUSED:
        answer = await client.get(path, headers=ADMIN)
        assert answer.status_code == 400, (path, answer.text)
        body = answer.json()
        assert body["error"] == "invalid_parameter", body
        assert body["details"][0]["field"] == parameter, (path, body)
        assert rule in body["message"], (path, body["message"])

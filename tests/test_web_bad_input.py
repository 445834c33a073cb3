"""Input that schemathesis found answered 500 or 503, answered 400 naming the problem now; on the
real actors of an in-process service, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import trio

from revivatech_actors.supervisor import Activity
from revivatech_actors.web.app import create_app

from .test_service import AUTH, make_service


@pytest.fixture
async def client(storage_url):
    service = make_service(storage_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        app = create_app(service.app_parts, Activity())
        async with app.test_app() as test_app:
            yield test_app.test_client()
        service.request_stop()


async def get(client, path):
    answer = await client.get(path, headers=AUTH)
    return answer.status_code, await answer.get_json()


#: (path, parameter): '²' passes str.isdigit but not int(); int() refuses more than 4300 digits.
UNREADABLE_NUMBERS = [
    ("/api/analytics/insights/fp-1?history=%C2%B2", "history"),
    ("/api/analytics/insights/fp-1?history=" + "9" * 5000, "history"),
    ("/api/analytics/journey/fp-1?limit=%C2%B3", "limit"),
    ("/api/analytics/journey/fp-1?limit=" + "1" * 5000, "limit"),
    ("/api/analytics/insights?page=" + "7" * 5000, "page"),
    ("/api/analytics/insights?limit=" + "7" * 5000, "limit"),
]
#: In range, with leading zeros: still taken.
PADDED_NUMBERS = [
    "/api/analytics/insights/fp-1?history=0100",
    "/api/analytics/journey/fp-1?limit=0050",
    "/api/analytics/insights?page=00001&limit=100",
]


async def test_numbers_int_cannot_read_are_400_and_padded_ones_are_taken(client):
    for path, field in UNREADABLE_NUMBERS:
        status, body = await get(client, path)
        assert status == 400, (path[:80], body)
        assert body["error"] == "invalid_parameter" and body["details"][0]["field"] == field
    for path in PADDED_NUMBERS:
        status, body = await get(client, path)
        assert status in (200, 404), (
            path,
            body,
        )  # 404: the visitor is unknown, not a parameter error
        assert body.get("error") in (None, "unknown_visitor"), (path, body)


async def test_nul_in_a_fingerprint_or_funnel_step_is_400_not_storage_unavailable(client):
    for route in ("insights", "journey"):
        status, body = await get(client, f"/api/analytics/{route}/fp%00x")
        assert status == 400, body
        assert body["error"] == "invalid_fingerprint" and "NUL" in body["message"]
        status, body = await get(client, f"/api/analytics/{route}/fp-without-nul")
        assert status in (200, 404) and body.get("error") != "invalid_fingerprint"
    status, body = await get(client, "/api/analytics/funnel?steps=page_view,a%00b")
    assert status == 400, body
    assert body["details"] == [
        {"field": "steps", "message": "an event type cannot contain the NUL character"}
    ]
    status, body = await get(client, "/api/analytics/funnel?steps=page_view,ab")
    assert status == 200, body

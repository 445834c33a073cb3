"""CORS over HTTP (Quart's test client): preflights on admin and ingest routes for an allowed and
a disallowed origin, credentialed admin requests, and CORS headers on error answers too."""

from __future__ import annotations

from .test_web_auth import GOOD, client

ADMIN_UI = "http://localhost:3010"
SHOP = "https://shop.example.com"
EVIL = "https://evil.example"
DEPLOYED = {"cors.allowed_origins": ADMIN_UI}
CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-expose-headers",
}
INGEST_ROUTES = [
    "/api/analytics/events",
    "/api/analytics/events/batch",
    "/api/analytics/track/journey",
]
ADMIN_ROUTES = [
    "/api/analytics/realtime",
    "/api/analytics/funnel",
    "/api/analytics/insights/fp-1",
    "/api/analytics/journey/fp-1",
    "/api/analytics/actors",
    "/api/analytics/health",
]


def preflight(origin: str, method: str, headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def cors_of(answer) -> set[str]:
    return {name.lower() for name in answer.headers.keys()} & CORS_HEADERS


async def test_admin_preflight_for_an_allowed_origin():
    async with client(**DEPLOYED, **{"cors.max_age": 120}) as c:
        for path in ADMIN_ROUTES:
            answer = await c.options(path, headers=preflight(ADMIN_UI, "GET"))
            assert answer.status_code == 204, path
            assert await answer.get_data() == b""
            assert answer.headers["Access-Control-Allow-Origin"] == ADMIN_UI
            assert answer.headers["Access-Control-Allow-Credentials"] == "true"
            assert "GET" in answer.headers["Access-Control-Allow-Methods"]
            allowed = {
                h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")
            }
            assert {"authorization", "content-type", "x-write-key"} <= allowed
            assert answer.headers["Access-Control-Max-Age"] == "120"
            assert "Origin" in answer.headers["Vary"]


async def test_admin_preflight_for_a_disallowed_origin_gets_no_cors_headers():
    async with client(**DEPLOYED) as c:
        for origin in (EVIL, SHOP):
            for path in ADMIN_ROUTES:
                answer = await c.options(path, headers=preflight(origin, "GET"))
                assert cors_of(answer) == set(), (origin, path)
                assert "Origin" in answer.headers["Vary"]
    async with client() as c:  # the default: same origin only
        answer = await c.options("/api/analytics/realtime", headers=preflight(ADMIN_UI, "GET"))
        assert cors_of(answer) == set()


async def test_ingest_preflight_for_any_site_by_default_and_never_with_credentials():
    async with client() as c:
        for path in INGEST_ROUTES:
            answer = await c.options(path, headers=preflight(SHOP, "POST", "content-type"))
            assert answer.status_code == 204, path
            assert answer.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in answer.headers
            assert "POST" in answer.headers["Access-Control-Allow-Methods"]


async def test_ingest_preflight_with_an_origin_list():
    async with client(**{"cors.ingest_origins": SHOP}) as c:
        allowed = await c.options(
            "/api/analytics/events/batch", headers=preflight(SHOP, "POST", "content-type")
        )
        assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
        refused = await c.options(
            "/api/analytics/events/batch", headers=preflight(EVIL, "POST", "content-type")
        )
        assert cors_of(refused) == set()


async def test_a_credentialed_admin_request_from_an_allowed_origin():
    async with client(**DEPLOYED) as c:
        answer = await c.get(
            "/api/analytics/realtime",
            headers={"Origin": ADMIN_UI, "Authorization": f"Bearer {GOOD}", "Cookie": "session=x"},
        )
        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == ADMIN_UI
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in answer.headers["Vary"]
        foreign = await c.get(
            "/api/analytics/realtime", headers={"Origin": EVIL, "Authorization": f"Bearer {GOOD}"}
        )
        assert foreign.status_code == 200 and cors_of(foreign) == set()


async def test_error_answers_carry_cors_headers_for_an_allowed_origin():
    async with client(**DEPLOYED) as c:
        # 401: the page must read it to refresh its token
        unauthorized = await c.get("/api/analytics/realtime", headers={"Origin": ADMIN_UI})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["Access-Control-Allow-Origin"] == ADMIN_UI
        assert "WWW-Authenticate" in unauthorized.headers["Access-Control-Expose-Headers"]
        # 404 on an unknown route, and on an unknown route's preflight
        missing = await c.get("/api/analytics/nothing-here", headers={"Origin": ADMIN_UI})
        assert (
            missing.status_code == 404
            and missing.headers["Access-Control-Allow-Origin"] == ADMIN_UI
        )
        missing = await c.options("/api/analytics/nothing-here", headers=preflight(ADMIN_UI, "GET"))
        assert (
            missing.status_code == 404
            and missing.headers["Access-Control-Allow-Origin"] == ADMIN_UI
        )
        # 415 from an ingest route, for any site
        unsupported = await c.post(
            "/api/analytics/events",
            data=b"<event/>",
            headers={"Origin": SHOP, "Content-Type": "application/xml"},
        )
        assert (
            unsupported.status_code == 415
            and unsupported.headers["Access-Control-Allow-Origin"] == "*"
        )
        # and nothing for a foreign origin on an admin route's error
        foreign = await c.get("/api/analytics/realtime", headers={"Origin": EVIL})
        assert foreign.status_code == 401 and cors_of(foreign) == set()


async def test_a_plain_options_request_is_not_a_preflight():
    async with client(**DEPLOYED) as c:
        answer = await c.options("/api/analytics/realtime", headers={"Origin": ADMIN_UI})
        assert answer.status_code == 200 and "GET" in answer.headers["Allow"]
        assert "Access-Control-Allow-Methods" not in answer.headers

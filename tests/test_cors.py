"""CORS decisions without I/O: which origin gets which headers on ingest and admin routes."""

from __future__ import annotations

from revivatech_actors.domain.cors import CorsPolicy, RouteKind, cors_headers, is_same_origin

ADMIN_UI = "http://localhost:3010"
SHOP = "https://shop.example.com"
EVIL = "https://evil.example"
DEFAULT = CorsPolicy(["*"], [], True, 600)
DEPLOYED = CorsPolicy(["*"], [ADMIN_UI], True, 600)


def test_no_origin_gets_only_vary():
    for kind in RouteKind:
        assert cors_headers(None, kind, DEPLOYED) == {"Vary": "Origin"}


def test_ingest_takes_any_site_without_credentials():
    headers = cors_headers(SHOP, RouteKind.INGEST, DEFAULT)
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers
    assert headers["Vary"] == "Origin" and "Retry-After" in headers["Access-Control-Expose-Headers"]


def test_ingest_with_a_list_names_the_origin_and_refuses_others():
    policy = CorsPolicy([SHOP], [], True, 600)
    assert (
        cors_headers(SHOP.upper(), RouteKind.INGEST, policy)["Access-Control-Allow-Origin"]
        == SHOP.upper()
    )
    assert cors_headers(EVIL, RouteKind.INGEST, policy) == {"Vary": "Origin"}
    assert cors_headers(SHOP, RouteKind.INGEST, CorsPolicy([], [], True, 600)) == {"Vary": "Origin"}


def test_admin_routes_take_only_allowed_origins_with_credentials():
    assert cors_headers(SHOP, RouteKind.ADMIN, DEFAULT) == {
        "Vary": "Origin"
    }  # ingest's "*" is not for admin routes
    assert cors_headers(ADMIN_UI, RouteKind.ADMIN, DEFAULT) == {
        "Vary": "Origin"
    }  # default: same origin only
    headers = cors_headers(ADMIN_UI, RouteKind.ADMIN, DEPLOYED)
    assert headers["Access-Control-Allow-Origin"] == ADMIN_UI
    assert headers["Access-Control-Allow-Credentials"] == "true"
    no_credentials = CorsPolicy(["*"], [ADMIN_UI], False, 600)
    assert "Access-Control-Allow-Credentials" not in cors_headers(
        ADMIN_UI, RouteKind.ADMIN, no_credentials
    )


def test_an_allowed_origin_posts_events_with_credentials():
    headers = cors_headers(ADMIN_UI, RouteKind.INGEST, DEPLOYED)
    assert headers["Access-Control-Allow-Origin"] == ADMIN_UI  # never "*" with credentials
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_a_preflight_names_methods_headers_and_max_age():
    headers = cors_headers(
        ADMIN_UI,
        RouteKind.ADMIN,
        CorsPolicy([], [ADMIN_UI], True, 120),
        preflight_methods={"GET", "OPTIONS"},
    )
    assert headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert {"Authorization", "Content-Type", "X-Write-Key"} <= {
        h.strip() for h in headers["Access-Control-Allow-Headers"].split(",")
    }
    assert headers["Access-Control-Max-Age"] == "120"
    assert "Access-Control-Expose-Headers" not in headers
    assert cors_headers(EVIL, RouteKind.ADMIN, DEPLOYED, preflight_methods={"GET"}) == {
        "Vary": "Origin"
    }


def test_same_origin():
    assert is_same_origin("http://localhost:3011", "localhost:3011")
    assert is_same_origin("https://Analytics.Example.com", "analytics.example.com")
    assert is_same_origin("https://analytics.example.com", "analytics.example.com:443")
    assert is_same_origin("http://analytics.example.com:80", "analytics.example.com")
    assert not is_same_origin("http://localhost:3010", "localhost:3011")
    assert not is_same_origin("https://evil.example", "analytics.example.com")
    assert not is_same_origin(None, "localhost:3011") and not is_same_origin(
        "null", "localhost:3011"
    )
    assert not is_same_origin("http://localhost:3011", None)

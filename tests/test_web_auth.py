"""The admin check: the static tokens' pure parts, then over HTTP (Quart's test client) static
tokens and the main app's JWTs from the header or the ``token`` cookie, 401 against 403, and the
cookie refused from a foreign page."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

import jwt
import pytest

from revivatech_actors.config import load_settings
from revivatech_actors.service import Service
from revivatech_actors.supervisor import Activity
from revivatech_actors.web.app import create_app
from revivatech_actors.web.auth import AdminAuth

GOOD = "s3cret-admin-token-0123456789"
OTHER = "another-admin-token-abcdefghij"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {GOOD}", GOOD),
        (f"bearer {GOOD}", GOOD),
        (f"  Bearer   {GOOD}  ", GOOD),
        (f"Basic {GOOD}", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_header_parsing(header, token):
    assert AdminAuth.bearer(header) == token


def test_accepts_any_configured_token_and_nothing_else():
    auth = AdminAuth([GOOD, OTHER])
    assert auth.accepts(GOOD) and auth.accepts(OTHER)
    assert not auth.accepts(GOOD[:-1])
    assert not auth.accepts(GOOD + "x")
    assert not auth.accepts("")
    assert not auth.accepts(None)
    assert not auth.accepts("ünïcode-token-that-is-long")


def test_no_tokens_is_refused_at_construction():
    with pytest.raises(ValueError, match="admin token"):
        AdminAuth([])


# --- over HTTP: the app with Quart's test client -------------------------------------------------

JWT_SECRET = "main-app-jwt-secret-0123456789abcdef"  # 36 bytes
ADMIN_UI = "http://localhost:3010"
ROUTE = "/api/analytics/realtime"


def jwt_of(role: str | None = "ADMIN", *, exp: int | None = 900, secret: str = JWT_SECRET) -> str:
    claims = {"userId": "u1", "email": "someone@example.com", "role": role}
    if exp is not None:
        claims["exp"] = int(time.time()) + exp
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


@asynccontextmanager
async def client(**overrides):
    """Quart's test client of the app, built on a service that is not started (admin routes that
    read the metrics window answer all the same)."""
    values = {"storage.url": "sqlite:///:memory:", "auth.admin_tokens": GOOD, **overrides}
    service = Service.build(load_settings(environ={}, overrides=values), (GOOD,))
    app = create_app(service.app_parts, Activity())
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def status(c, path: str = ROUTE, **headers: str) -> tuple[int, dict]:
    answer = await c.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return answer.status_code, await answer.get_json()


async def test_a_jwt_from_the_header_or_the_cookie_is_an_admin_credential():
    async with client(**{"auth.jwt_secret": JWT_SECRET}) as c:
        for role in ("ADMIN", "SUPER_ADMIN"):
            assert (await status(c, Authorization=f"Bearer {jwt_of(role)}"))[0] == 200
            assert (await status(c, Cookie=f"token={jwt_of(role)}"))[0] == 200
        assert (await status(c, "/api/analytics/actors", Authorization=f"Bearer {jwt_of()}"))[
            0
        ] == 200
        # the static tokens still work beside the JWTs
        assert (await status(c, Authorization=f"Bearer {GOOD}"))[0] == 200
        # the header wins over the cookie
        code, body = await status(
            c, Authorization="Bearer wrong-token-0123456789", Cookie=f"token={jwt_of()}"
        )
        assert (code, body["message"]) == (
            401,
            "invalid admin token: send Authorization: Bearer <token>",
        )


async def test_another_role_is_403_and_a_token_that_proves_nothing_is_401():
    async with client(**{"auth.jwt_secret": JWT_SECRET}) as c:
        code, body = await status(c, Authorization=f"Bearer {jwt_of('CUSTOMER')}")
        assert (code, body["error"]) == (403, "forbidden")
        assert (await status(c, Cookie=f"token={jwt_of('CUSTOMER')}"))[0] == 403
        refused = {
            "expired": jwt_of(exp=-10),
            "no exp": jwt_of(exp=None),
            "bad signature": jwt_of(secret="another-main-app-secret-0123456789"),
            "HS512": jwt.encode(
                {"role": "ADMIN", "exp": int(time.time()) + 900},
                JWT_SECRET + "x" * 28,
                algorithm="HS512",
            ),
            "alg none": jwt.encode(
                {"role": "ADMIN", "exp": int(time.time()) + 900}, None, algorithm="none"
            ),
        }
        for what, token in refused.items():
            answer = await c.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
            body = await answer.get_json()
            assert answer.status_code == 401, what
            assert body["error"] == "unauthorized" and token not in body["message"], what
            assert (
                answer.headers["WWW-Authenticate"]
                == 'Bearer realm="revivatech-actors", error="invalid_token"'
            )
        answer = await c.get(ROUTE)
        assert (
            answer.status_code == 401
            and answer.headers["WWW-Authenticate"] == 'Bearer realm="revivatech-actors"'
        )


async def test_without_jwt_secret_a_jwt_is_refused_and_the_default_roles_change_with_config():
    async with client() as c:
        assert (await status(c, Authorization=f"Bearer {jwt_of()}"))[0] == 401
        assert (await status(c, Authorization=f"Bearer {GOOD}"))[0] == 200
    async with client(**{"auth.jwt_secret": JWT_SECRET, "auth.jwt_admin_roles": "OWNER"}) as c:
        assert (await status(c, Authorization=f"Bearer {jwt_of('OWNER')}"))[0] == 200
        assert (await status(c, Authorization=f"Bearer {jwt_of('ADMIN')}"))[0] == 403


async def test_the_cookie_counts_only_from_the_services_own_or_an_allowed_page():
    overrides = {"auth.jwt_secret": JWT_SECRET, "cors.allowed_origins": ADMIN_UI}
    async with client(**overrides) as c:
        cookie = f"token={jwt_of()}"
        assert (await status(c, Cookie=cookie))[0] == 200  # no Origin: a same-origin GET
        assert (await status(c, Cookie=cookie, Origin=ADMIN_UI))[0] == 200
        assert (await status(c, Cookie=cookie, Origin="http://localhost", Host="localhost"))[
            0
        ] == 200
        code, body = await status(c, Cookie=cookie, Origin="https://evil.example")
        assert (code, body["message"]) == (
            401,
            "missing admin token: send Authorization: Bearer <token>",
        )
        # an explicit header is no ambient credential: it counts from any page
        assert (await status(c, Authorization=f"Bearer {jwt_of()}", Origin="https://evil.example"))[
            0
        ] == 200

"""Admin credentials without I/O: static tokens and the main app's JWTs (HS256, ``exp`` required,
admin role), and which refusal is 401 and which 403 (the original admin UI refreshes on 401)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from revivatech_actors.domain.credentials import Access, AdminCredentials, judge_jwt

SECRET = "main-app-jwt-secret-0123456789abcdef-" + "x" * 27  # 64 bytes: HS512 wants as much
TOKEN = "s3cret-admin-token-0123456789"
ROLES = frozenset({"ADMIN", "SUPER_ADMIN"})


def signed(
    claims: dict | None = None, *, secret: str = SECRET, algorithm: str = "HS256", **extra
) -> str:
    body = {
        "userId": "u1",
        "email": "admin@example.com",
        "role": "ADMIN",
        "exp": int(time.time()) + 900,
    }
    body.update(claims or {})
    body.update(extra)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def crafted(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token built by hand (algorithms PyJWT would not sign with here)."""
    part = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def test_an_admin_jwt_is_admin_for_each_admin_role():
    for role in ("ADMIN", "SUPER_ADMIN"):
        assert judge_jwt(signed(role=role), secret=SECRET, roles=ROLES).access is Access.ADMIN


@pytest.mark.parametrize("role", ["CUSTOMER", "TECHNICIAN", "admin", None, 1, ["ADMIN"]])
def test_another_role_is_forbidden_403(role):
    verdict = judge_jwt(signed(role=role), secret=SECRET, roles=ROLES)
    assert (verdict.access, verdict.access.status) == (Access.FORBIDDEN, 403)


def _exp() -> int:
    return int(time.time()) + 900


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: signed(exp=int(time.time()) - 1), "expired admin token"),
        (lambda: signed(exp=None), "the token has no exp claim; only expiring JWTs are accepted"),
        (
            lambda: signed(secret="another-secret-of-32-bytes-or-more!"),
            "the token's signature does not verify",
        ),
        (lambda: signed(algorithm="HS512"), "the token is not signed with HS256"),
        (
            lambda: crafted({"alg": "none", "typ": "JWT"}, {"role": "ADMIN", "exp": _exp()}),
            "the token is not signed with HS256",
        ),
        (
            lambda: crafted(
                {"alg": "RS256", "typ": "JWT"}, {"role": "ADMIN", "exp": _exp()}, b"\x01" * 256
            ),
            "the token is not signed with HS256",
        ),
        (lambda: signed(nbf=int(time.time()) + 600), "invalid admin token"),
        (lambda: "not-a-jwt-at-all-but-long-enough", "invalid admin token"),
        (lambda: signed()[:-3], "the token's signature does not verify"),
    ],
    ids=[
        "expired",
        "no-exp",
        "bad-signature",
        "HS512",
        "alg-none",
        "RS256",
        "not-yet-valid",
        "garbage",
        "truncated",
    ],
)
def test_tokens_that_prove_nothing_are_401_and_never_quoted(token, reason):
    presented = token()
    verdict = judge_jwt(presented, secret=SECRET, roles=ROLES)
    assert (verdict.access, verdict.access.status, verdict.reason) == (Access.INVALID, 401, reason)
    assert presented not in verdict.reason


def test_static_tokens_and_jwts_side_by_side():
    credentials = AdminCredentials((TOKEN,), SECRET, ROLES)
    assert credentials.judge(TOKEN).access is Access.ADMIN
    assert credentials.judge(signed()).access is Access.ADMIN
    assert credentials.judge(signed(role="CUSTOMER")).access is Access.FORBIDDEN
    assert credentials.judge(TOKEN + "x").access is Access.INVALID
    assert credentials.judge("").access is credentials.judge(None).access is Access.MISSING
    assert SECRET not in repr(credentials) and TOKEN not in repr(credentials)


def test_without_a_secret_a_jwt_is_just_an_unknown_token():
    credentials = AdminCredentials((TOKEN,))
    assert credentials.judge(signed()).access is Access.INVALID
    assert credentials.judge(TOKEN).access is Access.ADMIN


def test_configured_roles_replace_the_default_ones():
    credentials = AdminCredentials((TOKEN,), SECRET, frozenset({"OWNER"}))
    assert credentials.judge(signed(role="OWNER")).access is Access.ADMIN
    assert credentials.judge(signed(role="ADMIN")).access is Access.FORBIDDEN

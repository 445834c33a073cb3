"""The admin token check (pure parts); routes are exercised over HTTP in test_web_health.py."""

from __future__ import annotations

import pytest

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

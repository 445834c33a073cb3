"""The pure parts of the rate limits, write keys and hashed secrets: rate parsing, token-bucket
maths (on a clock the test moves), the shared lease chunk, client keys, secret matching and the
write-key rules."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
import trio

from revivatech_actors.domain.credentials import Access, AdminCredentials
from revivatech_actors.domain.rates import (
    MAX_CHUNK,
    Rate,
    TokenBucket,
    address_key,
    lease_chunk,
    parse_rate,
    rate_problem,
)
from revivatech_actors.domain.secrets import SecretSet
from revivatech_actors.domain.write_keys import judge_write_keys, pop_write_key
from revivatech_actors.shared_state.limits import LocalLimiter

KEY = "site-write-key-0123456789"
OTHER = "other-write-key-0123456789"


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [
        ("600/1m", 600, 60),
        ("100/15m", 100, 900),
        ("1200/1m", 1200, 60),
        ("10/1s", 10, 1),
        ("5/30s", 5, 30),
        ("1/24h", 1, 86400),
        (" 7/2h ", 7, 7200),
    ],
)
def test_rates_parse(text, count, seconds):
    rate = parse_rate(text)
    assert (rate.count, rate.seconds, rate.text) == (count, seconds, text.strip())
    assert rate.per_second == count / seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "600",
        "600/",
        "/1m",
        "600/m",
        "600/1",
        "600/1d",
        "600/1M",
        "0/1m",
        "1.5/1m",
        "600/0s",
        "600/25h",
        "600 / 1m",
        "1000000001/1s",
        "six/1m",
    ],
)
def test_bad_rates_are_refused_with_a_reason(text):
    problem = rate_problem(text)
    assert problem is not None and repr(text.strip()) in problem or repr(text) in problem
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


# --- the bucket ----------------------------------------------------------------------------------


def test_a_bucket_allows_a_burst_of_n_then_refills_at_n_per_period():
    bucket = TokenBucket(parse_rate("3/3s"), now=100.0)
    decisions = [bucket.take(100.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    refused = decisions[-1]
    assert refused.retry_after == pytest.approx(1.0) and refused.reset == pytest.approx(3.0)
    assert decisions[0].retry_after == 0 and decisions[0].reset == pytest.approx(1.0)

    assert not bucket.take(100.9).allowed  # 0.9 of a token: still none
    after = bucket.take(101.0)  # one token refilled (a refusal took nothing)
    assert after.allowed and after.remaining == 0
    assert bucket.take(200.0).remaining == 2  # a long pause fills it, never beyond N


def test_a_clock_going_back_refills_nothing():
    bucket = TokenBucket(parse_rate("1/1m"), now=50.0)
    assert bucket.take(50.0).allowed
    assert not bucket.take(10.0).allowed
    assert bucket.is_full(110.0)


def test_over_a_span_a_client_gets_at_most_n_plus_the_refill():
    rate = parse_rate("60/1m")
    bucket = TokenBucket(rate, now=0.0)
    allowed = sum(
        bucket.take(t / 100).allowed for t in range(0, 12_001)
    )  # 100 tries a second, 0 to 120 s
    assert (
        60 + 119 <= allowed <= 60 + 120
    )  # the burst, then one a second (the last one: float rounding)


def test_the_local_limiter_keeps_one_bucket_per_key_and_forgets_the_least_recent():
    now = [0.0]
    limiter = LocalLimiter(parse_rate("2/1m"), clock=lambda: now[0], max_keys=2)
    assert [limiter.take_now("a").allowed for _ in range(3)] == [True, True, False]
    assert limiter.take_now("b").allowed  # another client is not affected
    assert limiter.take_now("c").allowed  # a third key: "a" (least recent) is forgotten
    assert len(limiter) == 2
    assert limiter.take_now("c").allowed and not limiter.take_now("c").allowed  # "c" kept its state
    assert limiter.take_now("a").allowed  # forgotten: full again
    now[0] = 30.0  # one token refilled
    assert limiter.take_now("c").allowed and not limiter.take_now("c").allowed


def test_the_lease_chunk_is_a_twentieth_of_the_bucket_within_bounds():
    assert lease_chunk(parse_rate("600/1m")) == 30
    assert lease_chunk(parse_rate("1200/1m")) == 60
    assert lease_chunk(parse_rate("10/1s")) == 1
    assert lease_chunk(Rate(10**9, 1, "huge")) == MAX_CHUNK


def test_clients_are_keyed_by_ipv4_address_and_ipv6_slash_64():
    assert address_key(ipaddress.ip_address("203.0.113.9")) == "203.0.113.9"
    one, other = (
        ipaddress.ip_address("2001:db8:1:2::1"),
        ipaddress.ip_address("2001:db8:1:2:ffff::9"),
    )
    assert address_key(one) == address_key(other) == "2001:db8:1:2::/64"
    assert address_key(ipaddress.ip_address("2001:db8:1:3::1")) != address_key(one)
    assert address_key(None) == "unknown"


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_match_plain_or_hashed_and_nothing_else():
    secrets = SecretSet([KEY, sha(OTHER)])
    assert secrets.match(KEY) == hashlib.sha256(KEY.encode()).digest()
    assert secrets.match(OTHER) is not None
    assert secrets.match(sha(OTHER)) is None  # the hash itself is not the secret
    assert secrets.match(KEY + "x") is None and secrets.match("") is None
    assert KEY not in repr(secrets)
    with pytest.raises(ValueError):
        SecretSet(["sha256:nothex"])


def test_admin_tokens_may_be_hashed_and_name_a_subject_that_is_not_the_token():
    credentials = AdminCredentials([sha(KEY)])
    verdict = credentials.judge(KEY)
    assert verdict.access is Access.ADMIN
    assert verdict.subject.startswith("token:") and KEY not in verdict.subject
    assert credentials.judge(sha(KEY)).access is Access.INVALID
    assert (
        AdminCredentials([KEY]).judge(KEY).subject == verdict.subject
    )  # the same credential either way


def test_a_jwts_subject_is_its_sub_claim_so_refreshed_tokens_share_a_limit():
    import time

    import jwt

    secret = "jwt-secret-of-the-main-app-0123456789"
    credentials = AdminCredentials([KEY], secret)

    def signed(**claims) -> str:
        return jwt.encode(
            {"role": "ADMIN", "exp": int(time.time()) + 900, **claims}, secret, algorithm="HS256"
        )

    first, refreshed = (
        credentials.judge(signed(sub="u1", iat=1)),
        credentials.judge(signed(sub="u1", iat=2)),
    )
    assert first.subject == refreshed.subject == "jwt:u1"
    assert credentials.judge(signed(userId=42)).subject == "jwt:42"  # the main app's own claim
    anonymous = signed()
    subject = credentials.judge(anonymous).subject
    assert subject.startswith("jwt:") and anonymous not in subject
    assert credentials.judge(signed(sub="u2")).subject != first.subject


# --- write keys ----------------------------------------------------------------------------------


def test_the_reserved_field_is_removed_from_what_carries_it():
    event = {"event_type": "page_view", "write_key": KEY}
    assert pop_write_key(event) == KEY and event == {"event_type": "page_view"}
    assert pop_write_key({"a": 1}) is None and pop_write_key(["write_key"]) is None


def test_without_keys_configured_every_request_may_store():
    assert judge_write_keys(SecretSet([]), header=None) is None
    assert judge_write_keys(SecretSet([]), header="anything", body="x", events=["y"]) is None


def test_a_key_from_the_header_the_envelope_or_each_event_lets_a_request_store():
    keys = SecretSet([KEY, sha(OTHER)])
    assert judge_write_keys(keys, header=KEY) is None
    assert judge_write_keys(keys, header=None, body=OTHER) is None
    assert judge_write_keys(keys, header=None, events=[KEY, OTHER]) is None
    assert judge_write_keys(keys, header=KEY, events=[None, None]) is None  # the header covers them


def test_a_missing_key_is_refused_naming_where_it_belongs():
    keys = SecretSet([KEY])
    refusal = judge_write_keys(keys, header=None)
    assert refusal.error == "missing_write_key" and "X-Write-Key" in refusal.message
    refusal = judge_write_keys(keys, header=None, events=[KEY, None, KEY, None])
    assert refusal.error == "missing_write_key"
    assert [d["field"] for d in refusal.details] == ["events[1].write_key", "events[3].write_key"]


@pytest.mark.parametrize(
    ("header", "body", "events", "where"),
    [
        ("wrong-key-0123456789", None, [], "X-Write-Key header"),
        (None, "wrong-key-0123456789", [], "write_key"),
        (None, 12345, [], "write_key"),  # not even a string
        (
            KEY,
            None,
            ["wrong-key-0123456789"],
            "events[0].write_key",
        ),  # a wrong key is refused, never ignored
        ("", None, [], "X-Write-Key header"),
    ],
)
def test_a_wrong_key_anywhere_is_refused_without_quoting_it(header, body, events, where):
    refusal = judge_write_keys(SecretSet([KEY]), header=header, body=body, events=events)
    assert refusal.error == "invalid_write_key"
    assert [d["field"] for d in refusal.details] == [where]
    assert "wrong-key" not in refusal.message and KEY not in refusal.message


def test_the_local_limiter_needs_no_event_loop_but_works_in_one():
    limiter = LocalLimiter(parse_rate("1/1h"))

    async def main():
        return [(await limiter.take("k")).allowed for _ in range(2)]

    assert trio.run(main) == [True, False]

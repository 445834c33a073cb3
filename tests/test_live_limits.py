"""What a WebSocket client may send (broadcast.max_message_size, max_messages_per_second,
max_subscriptions): the pure rules, then a real WebSocket client (trio-websocket) against the
service on a real socket, within each limit and past it."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from revivatech_actors.domain.live_limits import (
    GRACE_SECONDS,
    MessageBudget,
    Verdict,
    spend,
    subscription_verdict,
)

from .test_service import TOKEN, Running, make_service

# --- the rules ------------------------------------------------------------------------------------


def test_a_steady_rate_at_the_limit_is_allowed_for_good():
    budget = MessageBudget.full(10, 0.0)
    for n in range(200):
        verdict, budget = spend(budget, n / 10, 10)
        assert verdict is Verdict.ALLOW


def test_a_flood_is_warned_then_dropped_then_closed_if_it_goes_on():
    budget = MessageBudget.full(5, 0.0)
    verdicts = []
    now = 0.0
    while True:  # 100 messages per second against a limit of 5
        verdict, budget = spend(budget, now, 5)
        verdicts.append((now, verdict))
        if verdict is Verdict.CLOSE:
            break
        now += 0.01
    assert [verdict for _, verdict in verdicts[:6]] == [Verdict.ALLOW] * 5 + [Verdict.WARN]
    warned_at = verdicts[5][0]
    middle = {verdict for _, verdict in verdicts[6:-1]}
    assert middle == {Verdict.DROP, Verdict.ALLOW}  # the refill still lets 5 a second through
    assert GRACE_SECONDS <= now - warned_at < GRACE_SECONDS + 0.25


def test_a_client_that_calms_down_is_warned_afresh():
    budget = MessageBudget.full(2, 0.0)
    for _ in range(2):
        _, budget = spend(budget, 0.0, 2)
    verdict, budget = spend(budget, 0.0, 2)
    assert verdict is Verdict.WARN
    verdict, budget = spend(budget, 5.0, 2)  # the bucket filled up again: no longer warned
    assert verdict is Verdict.ALLOW and budget.warned_at is None
    _, budget = spend(budget, 5.0, 2)
    assert spend(budget, 5.0, 2)[0] is Verdict.WARN


def test_subscriptions_past_the_limit_warn_then_close():
    assert subscription_verdict(2, 3, warned=False) is Verdict.ALLOW
    assert subscription_verdict(3, 3, warned=False) is Verdict.WARN
    assert subscription_verdict(3, 3, warned=True) is Verdict.CLOSE


# --- over a real WebSocket ------------------------------------------------------------------------


def url(service) -> str:
    return f"ws://127.0.0.1:{service.settings.web.port}/api/analytics/ws?token={TOKEN}"


async def messages_until_closed(
    ws, timeout: float = 5.0
) -> tuple[list[dict], int | None, str | None]:
    """Every message received until the server closes: (messages, close code, close reason)."""
    received = []
    with trio.fail_after(timeout):
        try:
            while True:
                received.append(json.loads(await ws.get_message()))
        except ConnectionClosed as closed:
            return received, closed.reason.code, closed.reason.reason
    return received, None, None


async def hello(ws) -> None:
    assert json.loads(await ws.get_message())["type"] == "connection_established"


async def next_reply(ws, kinds: set[str], timeout: float = 3.0) -> dict:
    with trio.fail_after(timeout):
        while True:
            message = json.loads(await ws.get_message())
            if message["type"] in kinds:
                return message


async def test_a_message_over_max_message_size_closes_with_1009(sqlite_url):
    service = make_service(sqlite_url, **{"broadcast.max_message_size": 1024})
    async with Running(service):
        async with open_websocket_url(url(service)) as ws:
            await hello(ws)
            await ws.send_message(json.dumps({"type": "ping", "pad": "p" * 900}))  # fits
            assert await next_reply(ws, {"pong"}) == {"type": "pong"}
            await ws.send_message(json.dumps({"type": "ping", "pad": "p" * 1100}))
            _, code, reason = await messages_until_closed(ws)
            assert (
                code == 1009
                and reason == "a message may be at most broadcast.max_message_size = 1024 bytes"
            )


async def test_messages_over_max_messages_per_second_get_an_error_then_1008(sqlite_url):
    service = make_service(sqlite_url, **{"broadcast.max_messages_per_second": 5})
    async with Running(service):
        # within the rate: every ping answered, no error
        async with open_websocket_url(url(service)) as ws:
            await hello(ws)
            for _ in range(10):
                await ws.send_message(json.dumps({"type": "ping"}))
                assert await next_reply(ws, {"pong", "error"}) == {"type": "pong"}
                await trio.sleep(0.25)

        # a burst: the first 5 answered, then one error naming the limit; going on closes with 1008
        async with open_websocket_url(url(service)) as ws:
            await hello(ws)
            for _ in range(10):
                await ws.send_message(json.dumps({"type": "ping"}))
            replies = [await next_reply(ws, {"pong", "error"}) for _ in range(6)]
            assert replies[:5] == [{"type": "pong"}] * 5
            assert replies[5]["error"] == "too_many_messages"
            assert "broadcast.max_messages_per_second = 5" in replies[5]["message"]

            async def flood():
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.send_message(json.dumps({"type": "ping"}))
                        await trio.sleep(0.02)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                rest, code, reason = await messages_until_closed(ws)
            assert code == 1008 and "broadcast.max_messages_per_second" in reason
            assert all(
                message["type"] == "pong" for message in rest
            )  # no second error: one warning


async def test_subscriptions_over_max_subscriptions_get_an_error_then_1008(sqlite_url):
    service = make_service(sqlite_url, **{"broadcast.max_subscriptions": 3})
    async with Running(service):
        async with open_websocket_url(url(service)) as ws:
            await hello(ws)
            await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
            for n in range(
                2
            ):  # 3 subscriptions: within the limit (unknown visitors are still followed)
                await ws.send_message(
                    json.dumps({"type": "subscribe_user_insights", "fingerprint": f"fp-{n}"})
                )
                assert (await next_reply(ws, {"error"}))["error"] == "unknown_visitor"
            await ws.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": "fp-0"})
            )  # not new
            assert (await next_reply(ws, {"error"}))["error"] == "unknown_visitor"

            await ws.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": "fp-3"})
            )
            refused = await next_reply(ws, {"error"})
            assert refused["error"] == "too_many_subscriptions"
            assert "broadcast.max_subscriptions = 3" in refused["message"]

            # an unsubscribe makes room, and forgives the refusal
            await ws.send_message(
                json.dumps(
                    {"type": "unsubscribe", "channel": "user_insights", "fingerprint": "fp-1"}
                )
            )
            await ws.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": "fp-3"})
            )
            assert (await next_reply(ws, {"error"}))["error"] == "unknown_visitor"
            await ws.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": "fp-4"})
            )
            assert (await next_reply(ws, {"error"}))["error"] == "too_many_subscriptions"

            await ws.send_message(
                json.dumps({"type": "subscribe_user_insights", "fingerprint": "fp-5"})
            )
            _, code, reason = await messages_until_closed(ws)
            assert code == 1008 and "broadcast.max_subscriptions" in reason


async def test_an_upgrade_with_headers_over_web_max_header_size_is_refused_with_431(sqlite_url):
    service = make_service(sqlite_url, **{"web.max_header_size": 2048})
    async with Running(service):
        async with open_websocket_url(
            url(service), extra_headers=[(b"x-padding", b"p" * 1500)]
        ) as ws:
            await hello(ws)
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(
                url(service), extra_headers=[(b"x-padding", b"p" * 3000)]
            ):
                pass
        assert refused.value.status_code == 431
        body = json.loads(refused.value.body)
        assert (
            body["error"] == "headers_too_large" and "web.max_header_size = 2048" in body["message"]
        )

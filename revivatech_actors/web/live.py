"""``WS /api/analytics/ws``: the live feed, translated to the broadcaster (its protocol:
docs/api.md, "WS /api/analytics/ws").

Who may connect is decided before the upgrade, cheaply and without a log line per refusal:

* an admin credential (``Authorization: Bearer``, ``?token=`` or the ``token`` cookie; a static
  token or an admin JWT, see :mod:`.auth`) gets the whole feed;
* a credential from the cookie counts only when the upgrade's ``Origin`` is the service's own or
  in ``cors.allowed_origins``: otherwise 403, so a foreign page cannot ride a browser's cookie
  (cross-site WebSocket hijacking);
* with ``broadcast.public_realtime``, a connection without a credential, or whose cookie is no
  admin credential (a visitor logged in to the main app), is *public*: it may follow the realtime
  aggregates, and ``subscribe_user_insights`` gets an ``error`` (the connection stays);
* otherwise 401 (no or a bad credential) or 403 (a JWT of another role).

Each connection attempt first takes a token of ``limits.ws_connect_rate`` for its client's address
(the one ``web.trusted_proxies`` says): without one it is refused with 429 and Retry-After.
Past ``broadcast.max_clients`` admin clients, or ``broadcast.max_public_clients`` public ones,
a connection is refused with 503 and Retry-After. Each connection runs two tasks in its own
nursery: the reader turns client messages into subscriptions (a bad message gets an ``error``
message, the connection stays), the writer sends what the broadcaster put in the client's outbox.
What a client sends is bounded (:mod:`..domain.live_limits`): a message over
``broadcast.max_message_size`` closes the connection with 1009 (the server does it); past
``broadcast.max_messages_per_second`` or ``broadcast.max_subscriptions`` the client gets an
``error`` message, and the connection is closed with 1008 if it goes on.
A send that stays stuck ``broadcast.stuck_timeout`` seconds closes the connection (code 1013 for
the record; a peer whose buffers are full cannot be sent a close frame, so its TCP connection is
closed); the broadcaster and the other clients never wait for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson
import trio
from quart import Quart, Response, websocket

from ..actors.broadcaster import (
    FLUSH,
    TRY_AGAIN_LATER,
    BroadcasterActor,
    ClientFeed,
    ClientRefused,
    encode,
)
from ..config import BroadcastSettings
from ..domain.addresses import client_address, parse_networks
from ..domain.live_limits import MessageBudget, Verdict, spend, subscription_verdict
from ..domain.rates import address_key
from ..domain.validation import MAX_ID_LENGTH
from ..shared_state.limits import Limiter
from ..storage import StorageError
from ._hypercorn_fixes import DirectWriter, abort_connection, direct_writer
from .auth import AdminAuth, denied
from .limits import limited, upgrade_headers
from .responses import error_response

__all__ = ["register_live_routes"]

logger = logging.getLogger(__name__)

#: Seconds the first insights of a followed visitor may take to read.
READ_TIMEOUT = 5.0
#: Seconds a closing handshake may take before the connection is just dropped.
CLOSE_TIMEOUT = 1.0
_CHANNELS = ("realtime", "user_insights")
#: Close code for a client that goes on past its limits (RFC 6455: policy violation).
POLICY_VIOLATION = 1008
_HINT = "send Authorization: Bearer <token> or ?token=<token>"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": code, "message": message}


@attrs.define
class _Conduct:
    """One connection's standing against its limits."""

    budget: MessageBudget
    subscription_warned: bool = False


def register_live_routes(
    app: Quart,
    auth: AdminAuth,
    broadcaster: BroadcasterActor,
    settings: BroadcastSettings,
    *,
    trusted_proxies: tuple[str, ...],
    limiter: Limiter | None,
) -> None:
    """The live feed, served by ``broadcaster``. ``trusted_proxies`` is ``web.trusted_proxies``,
    ``limiter`` the ``limits.ws_connect_rate`` one."""
    stuck_timeout = settings.stuck_timeout
    public_realtime = settings.public_realtime
    rate = settings.max_messages_per_second
    max_subscriptions = settings.max_subscriptions
    rate_error = _error(
        "too_many_messages",
        f"more than broadcast.max_messages_per_second = {rate:g} messages; "
        "messages over it are not handled, and the connection is closed "
        f"({POLICY_VIOLATION}) if they go on",
    )
    subscriptions_error = _error(
        "too_many_subscriptions",
        f"this connection holds broadcast.max_subscriptions = {max_subscriptions} "
        "subscriptions; unsubscribe first (another one refused closes the connection "
        f"with {POLICY_VIOLATION})",
    )

    def may_subscribe(feed: ClientFeed, conduct: _Conduct) -> bool:
        """Whether a new subscription fits; if not, the client is warned or its connection
        closed."""
        verdict = subscription_verdict(
            int(feed.realtime) + len(feed.fingerprints),
            max_subscriptions,
            conduct.subscription_warned,
        )
        if verdict is Verdict.WARN:
            conduct.subscription_warned = True
            feed.reply(subscriptions_error)
        elif verdict is Verdict.CLOSE:
            feed.close(
                POLICY_VIOLATION, f"more than broadcast.max_subscriptions = {max_subscriptions}"
            )
        return verdict is Verdict.ALLOW

    proxies = parse_networks(trusted_proxies)

    def limit_key() -> str:
        forwarded = ", ".join(websocket.headers.getlist("X-Forwarded-For")) or None
        return address_key(client_address(websocket.remote_addr, forwarded, proxies))

    limit = limited(
        limiter,
        limit_key,
        "WebSocket connections from this address",
        "limits.ws_connect_rate",
        headers=False,
    )

    def admission() -> Response | bool:
        """The refusal of the upgrade, else whether the connection is public (see the module
        docstring)."""
        found = AdminAuth.credential(websocket.headers, websocket.cookies, websocket.args)
        if found.source == "cookie" and not auth.trusts_origin(
            websocket.headers.get("Origin"), websocket.headers.get("Host")
        ):
            return error_response(
                403,
                "cross_origin",
                "the token cookie is not accepted from this page's origin "
                "(neither the service's own nor in cors.allowed_origins); " + _HINT,
            )
        verdict = auth.judge(found.token)
        if verdict.is_admin:
            return False
        if public_realtime and found.source in ("none", "cookie"):
            return (
                True  # no credential, or an ambient one that is no admin's (a logged-in customer)
            )
        return denied(verdict, hint=_HINT)

    async def send_first_insights(feed: ClientFeed, fingerprint: str) -> None:
        try:
            with trio.move_on_after(READ_TIMEOUT):
                data = await broadcaster.insights_data(fingerprint)
                if data is None:
                    feed.reply(
                        _error(
                            "unknown_visitor",
                            f"no events were stored for the visitor {fingerprint!r} "
                            "yet; its insights follow when its scores are recorded",
                        )
                    )
                elif fingerprint in feed.fingerprints:
                    feed.put_insights(
                        fingerprint,
                        encode({"type": "user_insights", "fingerprint": fingerprint, "data": data}),
                    )
                return
        except StorageError as exc:
            feed.reply(
                _error("storage_unavailable", f"the visitor's insights cannot be read now: {exc}")
            )
            return
        feed.reply(
            _error(
                "storage_unavailable",
                f"the visitor's insights could not be read within {READ_TIMEOUT:g} s",
            )
        )

    async def handle(feed: ClientFeed, raw: str | bytes, conduct: _Conduct) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            feed.reply(_error("invalid_json", "a message must be a JSON object"))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            feed.reply({"type": "pong"})
        elif kind == "subscribe_realtime":
            if feed.realtime or may_subscribe(feed, conduct):
                broadcaster.subscribe_realtime(feed)
        elif kind in ("subscribe_user_insights", "unsubscribe") and not isinstance(
            message.get("fingerprint"), (str, type(None))
        ):
            feed.reply(_error("invalid_message", "fingerprint must be a string"))
        elif kind == "subscribe_user_insights" and feed.public:
            feed.reply(
                _error(
                    "admin_only",
                    "following a visitor's insights needs an admin credential "
                    f"({_HINT}); this connection may follow realtime metrics only",
                )
            )
        elif kind == "subscribe_user_insights":
            fingerprint = message.get("fingerprint")
            if not fingerprint or len(fingerprint) > MAX_ID_LENGTH:
                feed.reply(
                    _error(
                        "invalid_message",
                        f"subscribe_user_insights needs a fingerprint of 1 to "
                        f"{MAX_ID_LENGTH} characters",
                    )
                )
                return
            if fingerprint not in feed.fingerprints and not may_subscribe(feed, conduct):
                return
            broadcaster.follow(feed, fingerprint)
            await send_first_insights(feed, fingerprint)
        elif kind == "unsubscribe":
            channel = message.get("channel")
            conduct.subscription_warned = False
            if channel == "realtime":
                broadcaster.unsubscribe_realtime(feed)
            elif channel == "user_insights":
                fingerprint = message.get("fingerprint")
                for followed in [fingerprint] if fingerprint else list(feed.fingerprints):
                    broadcaster.unfollow(feed, followed)
            else:
                feed.reply(
                    _error(
                        "invalid_message",
                        f"unsubscribe needs channel {' or '.join(_CHANNELS)}, got {channel!r}",
                    )
                )
        else:
            feed.reply(
                _error(
                    "unknown_type",
                    "type must be subscribe_realtime, subscribe_user_insights, "
                    f"unsubscribe or ping, got {kind!r}",
                )
            )

    async def read_messages(feed: ClientFeed) -> None:
        conduct = _Conduct(MessageBudget.full(rate, trio.current_time()))
        while True:
            raw = await websocket.receive()
            verdict, conduct.budget = spend(conduct.budget, trio.current_time(), rate)
            if verdict is Verdict.ALLOW:
                await handle(feed, raw, conduct)
            elif verdict is Verdict.WARN:
                feed.reply(rate_error)
            elif verdict is Verdict.CLOSE:
                feed.close(
                    POLICY_VIOLATION, f"more than broadcast.max_messages_per_second = {rate:g}"
                )
                return

    async def write_messages(
        feed: ClientFeed, sending: list[float | None], direct: DirectWriter | None
    ) -> None:
        while True:
            message = await feed.next_message()
            if message is None:
                break
            sending[0] = trio.current_time()
            if message is FLUSH:
                assert direct is not None  # (only a direct write leaves bytes to flush)
                await direct.flush()
            else:
                await websocket.send(message)
            sending[0] = None
        with trio.move_on_after(CLOSE_TIMEOUT):
            await websocket.close(feed.close_code or 1000, feed.close_reason)

    async def watch_for_stuck_sends(feed: ClientFeed, sending: list[float | None]) -> None:
        # The server shields each write from cancellation: a send to a peer that stopped
        # reading cannot be timed out, only its connection closed under it.
        while True:
            await trio.sleep(stuck_timeout / 4)
            began = sending[0]
            if began is not None and trio.current_time() - began > stuck_timeout:
                logger.warning(
                    "live feed client %s stuck for %g s on one send: closed (%d)",
                    feed.client_id,
                    stuck_timeout,
                    TRY_AGAIN_LATER,
                )
                feed.close(TRY_AGAIN_LATER, "the client does not read fast enough")
                await abort_connection(websocket.scope.get("client"))
                return

    @app.websocket("/api/analytics/ws")
    @limit
    async def live():
        public = admission()
        if not isinstance(public, bool):
            return public
        try:
            feed = broadcaster.connect(public=public)
        except ClientRefused as exc:
            return error_response(503, exc.error, str(exc), headers={"Retry-After": "5"})
        try:
            try:
                await websocket.accept(headers=upgrade_headers())
            except (
                Exception
            ) as exc:  # a client that broke the handshake: its connection ends, nothing else
                logger.warning("live feed handshake failed: %r", exc)
                return None
            await websocket.send(
                encode(
                    {
                        "type": "connection_established",
                        "clientId": feed.client_id,
                        "access": "public" if feed.public else "admin",
                        "timestamp": datetime.now(UTC)
                        .isoformat(timespec="milliseconds")
                        .replace("+00:00", "Z"),
                    }
                )
            )
            sending: list[float | None] = [None]  # when the send under way began
            direct = direct_writer(websocket.scope.get("client"))
            if direct is not None:
                feed.write_now = direct.write_now
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_messages, feed)
                nursery.start_soon(watch_for_stuck_sends, feed, sending)
                await write_messages(feed, sending, direct)
                nursery.cancel_scope.cancel()
        finally:
            broadcaster.disconnect(feed)
        return None

"""Ingest routes: ``POST /api/analytics/events``, ``POST /api/analytics/events/batch`` and
``POST /api/analytics/track/journey`` (an explicit journey step, stored as an event).

They parse and validate (pure functions), hand a :class:`Submission` to the ingest actor and
answer once it is committed (``ingest.ack = "durable"``, 200) or queued (``"accepted"``, 202).
Nothing here talks to the database. What fails validation is answered with every bad field named
and goes on to the dead-letter table all the same; a batch of which nothing was kept is a 400.
JSON is taken as ``application/json`` (or ``+json``) and as ``text/plain``, which is what
``navigator.sendBeacon`` sends a string as.

Before anything is parsed, each request takes a token of ``limits.ingest_rate`` for its client's
address (the one ``web.trusted_proxies`` says; 429 without one). With ``auth.write_keys`` set, a
request needs a valid write key (``domain.write_keys``; 401 without one), judged before any event
is validated, so a request without one leaves no dead letter either.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import trio
from quart import Quart, request

from ..actors.ingest import IngestActor, Overloaded
from ..config import IngestSettings
from ..domain.addresses import client_address, kept_address, parse_networks
from ..domain.event_time import TimeBounds, bound_event_time
from ..domain.journeys import validate_journey_step
from ..domain.rates import address_key
from ..domain.secrets import SecretSet
from ..domain.timefmt import iso_datetime
from ..domain.validation import FieldError, ValidEvent, truncate_payload, validate_event
from ..domain.write_keys import HEADER, RESERVED_FIELD, KeyRefusal, judge_write_keys, pop_write_key
from ..messages import DeadLetter, Event, Status, Submission
from ..shared_state.limits import Limiter
from .bodies import read_body
from .limits import limited
from .responses import error_response, json_response

__all__ = ["register_ingest_routes"]

logger = logging.getLogger(__name__)

#: Validating a batch yields to the event loop every this many events, so the largest batch
#: never holds other requests (health checks too) for long. Not more often: under load each
#: yield waits a whole scheduler round (every runnable task's step; docs/performance.md).
YIELD_EVERY = 250
#: Longest User-Agent kept with an event, in characters.
MAX_USER_AGENT_LENGTH = 1024


#: Nesting the JSON parser (orjson) takes; deeper is refused as malformed JSON, saying so.
MAX_JSON_DEPTH = 1024


def _letter(received_at: datetime, errors: list[FieldError], payload: str) -> DeadLetter:
    return DeadLetter(
        received_at=received_at,
        source="validation",
        reasons=tuple(error.as_dict() for error in errors),
        payload=truncate_payload(payload),
    )


def _is_json(mimetype: str) -> bool:
    return mimetype in ("application/json", "text/plain") or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _client_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """(User-Agent, X-Forwarded-For) from the ASGI scope's headers, in one pass over the raw
    list (names are lower case there): werkzeug's lookup lowers every name again, per lookup.
    Several X-Forwarded-For headers are one list, in order (RFC 7230 section 3.2.2)."""
    agent = forwarded = None
    for name, value in raw:
        if name == b"user-agent":
            agent = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            text = value.decode("latin-1")
            forwarded = text if forwarded is None else f"{forwarded}, {text}"
    return agent, forwarded


def _warned(answer: dict[str, Any], warnings: tuple[FieldError, ...]) -> dict[str, Any]:
    if warnings:
        answer["warnings"] = [warning.as_dict() for warning in warnings]
    return answer


def register_ingest_routes(
    app: Quart,
    settings: IngestSettings,
    ingest: IngestActor,
    *,
    trusted_proxies: tuple[str, ...],
    write_keys: tuple[str, ...],
    limiter: Limiter | None,
    journey_step_number: Callable[[str], Awaitable[int]],
) -> None:
    """The ingest routes, handing submissions to ``ingest``. ``trusted_proxies`` is
    ``web.trusted_proxies``, ``write_keys`` ``auth.write_keys``, ``limiter`` the
    ``limits.ingest_rate`` one; ``journey_step_number(fingerprint)`` numbers a journey step."""
    durable = settings.ack == "durable"
    retry_after = {"Retry-After": str(max(1, math.ceil(settings.enqueue_timeout)))}
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    proxies = parse_networks(trusted_proxies)
    keep_ip = settings.client_ip
    keys = SecretSet(write_keys)
    bounds = TimeBounds(settings.max_future_seconds, settings.max_age_days)

    def checked(
        validate: Callable[[object], ValidEvent | list[FieldError]],
        data: object,
        received_at: datetime,
    ) -> ValidEvent | list[FieldError]:
        """``validate(data)``, then its time bounded (ingest.max_future_seconds, max_age_days)."""
        result = validate(data)
        return (
            bound_event_time(result, received_at, bounds)
            if isinstance(result, ValidEvent)
            else result
        )

    @functools.lru_cache(maxsize=4096)
    def kept_ip(peer: str | None, forwarded_for: str | None) -> str | None:
        # Cached: a site's visitors (and its proxies) send many requests each, parsed once.
        return kept_address(client_address(peer, forwarded_for, proxies), keep_ip)

    @functools.lru_cache(maxsize=4096)
    def client_key(peer: str | None, forwarded_for: str | None) -> str:
        return address_key(client_address(peer, forwarded_for, proxies))

    def limit_key() -> str:
        return client_key(request.remote_addr, _client_headers(request.scope["headers"])[1])

    limit = limited(limiter, limit_key, "event requests from this address", "limits.ingest_rate")

    def header_key() -> str | None:
        return request.headers.get(HEADER) if len(keys) else None

    def refused(refusal: KeyRefusal):
        return error_response(401, refusal.error, refusal.message, details=refusal.details)

    def keep(letters: list[DeadLetter]) -> None:
        """Queue dead letters without waiting: a refused request is answered at once, whatever
        the database is doing. With no room (an overloaded service) they are only logged."""
        if not ingest.offer(Submission(letters[0].received_at, [], letters)):
            logger.warning(
                "%d dead letter(s) not kept, ingest is full: %s",
                len(letters),
                [d.reasons for d in letters],
            )

    def submission(
        received_at: datetime, valid: list[ValidEvent], letters: list[DeadLetter] | None = None
    ) -> Submission:
        """The request's events, with what the request says of its client."""
        agent, forwarded = _client_headers(request.scope["headers"])
        return Submission(
            received_at,
            valid,
            letters or [],
            user_agent=agent[:MAX_USER_AGENT_LENGTH] if agent else None,
            ip_address=kept_ip(request.remote_addr, forwarded),
        )

    async def pass_on(submission: Submission):
        """Queue and wait (commit or queue, by ack mode). An error response, or None when done."""
        try:
            await ingest.submit(submission)
        except Overloaded as exc:
            return error_response(503, "overloaded", f"{exc}; retry later", headers=retry_after)
        if durable:
            with trio.move_on_after(settings.ack_timeout):
                await submission.done.wait()
            if not submission.done.is_set():
                # Still held (the database is away): it will be stored when it is back. The ids
                # let the client resend safely: a resent event_id is stored once.
                ids = [event.client_id or event.event_id for event in submission.events]
                message = (
                    f"not stored within {settings.ack_timeout:g} s (the database is unavailable); "
                    "the event(s) are held and will be stored when it returns: resend them with "
                    "these event_id values"
                )
                details = [{"field": "event_id", "message": event_id} for event_id in ids]
                return error_response(
                    503, "not_yet_stored", message, details=details, headers=retry_after
                )
        else:
            await submission.queued.wait()
        if submission.failure is not None:
            logger.error(
                "the event pipeline failed for this request: %s", submission.failure
            )  # with its request id
            return error_response(
                500, "internal_error", f"the event pipeline failed: {submission.failure}"
            )
        return None

    async def read_json() -> tuple[datetime, Any, Any]:
        """(received_at, decoded body, error response or None)."""
        received_at = datetime.now(UTC)
        if not _is_json(request.mimetype):
            shown = request.mimetype or "none"
            message = (
                "send the events as JSON (Content-Type: application/json or text/plain), "
                f"not {shown}"
            )
            return received_at, None, error_response(415, "unsupported_media_type", message)
        body = await read_body()  # over ingest.max_body: 413 from Quart
        try:
            return received_at, orjson.loads(body), None
        except orjson.JSONDecodeError as exc:
            refusal = judge_write_keys(keys, header=header_key())
            if refusal is not None:  # no key, no dead letter
                return received_at, None, refused(refusal)
            if str(exc).startswith("depth limit exceeded"):  # the parser's fixed limit, named
                error = FieldError(
                    "", f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels ({exc})"
                )
            else:
                error = FieldError("", f"malformed JSON: {exc}")
            # Kept as a dead letter too: a client sending broken JSON wants finding.
            keep([_letter(received_at, [error], body.decode("utf-8", errors="replace"))])
            return (
                received_at,
                None,
                error_response(400, "malformed_json", error.message, details=[error.as_dict()]),
            )

    async def store_one(
        validate: Callable[[object], ValidEvent | list[FieldError]],
        what: str,
        extra: Callable[[Event, bool], Awaitable[dict[str, Any]]] | None = None,
    ):
        """One event (or journey step): validated by ``validate``, stored, answered; ``extra``
        (given the event and whether it was a duplicate) adds to a kept event's answer."""
        received_at, data, failure = await read_json()
        if failure is not None:
            return failure
        refusal = judge_write_keys(keys, header=header_key(), body=pop_write_key(data))
        if refusal is not None:
            return refused(refusal)
        result = checked(validate, data, received_at)
        if not isinstance(result, ValidEvent):
            details = [error.as_dict() for error in result]
            keep([_letter(received_at, result, orjson.dumps(data).decode())])
            named = ", ".join(error.field or "(body)" for error in result)
            return error_response(
                400,
                f"invalid_{what.replace(' ', '_')}",
                f"invalid {what}: {named}",
                details=details,
            )
        warnings = result.warnings
        pending = submission(received_at, [result])
        failure = await pass_on(pending)
        if failure is not None:
            return failure
        event = pending.events[0]
        answer: dict[str, Any] = {
            "success": True,
            "eventId": event.client_id or event.event_id,
            "timestamp": iso_datetime(event.timestamp),
        }
        if not durable:
            answer["duplicate"] = 0 in pending.seen_before
            answer["status"] = "accepted"
            return json_response(_warned(answer, warnings), 202)
        outcome = pending.outcomes[0]
        assert outcome is not None  # done, without a failure: every outcome is known
        if outcome.status is Status.REJECTED:
            reason = outcome.reason or "refused by the database"  # a rejection has its reason
            details = [{"field": "", "message": reason}]
            return error_response(400, "rejected", reason, details=details)
        answer["duplicate"] = outcome.status is Status.DUPLICATE
        if extra is not None:
            answer.update(await extra(event, answer["duplicate"]))
        return json_response(_warned(answer, warnings), 200)

    @app.post("/api/analytics/events")
    @limit
    async def post_event():
        return await store_one(validate_event, "event")

    async def step_answer(event: Event, duplicate: bool) -> dict[str, Any]:
        """What the original answered a journey step with: the stored event's id, and the
        step's ordinal among the visitor's explicit steps as its stored events count them
        (a duplicate's is the count of now)."""
        number = await journey_step_number(event.user_fingerprint)
        return {"journeyId": event.event_id, "sequenceNumber": number}

    @app.post("/api/analytics/track/journey")
    @limit
    async def post_journey_step():
        # An explicit step is an event of type journey_step: stored, acknowledged and applied
        # to the visitor's journey exactly like any other event.
        return await store_one(validate_journey_step, "journey step", step_answer)

    @app.post("/api/analytics/events/batch")
    @limit
    async def post_batch():
        received_at, data, failure = await read_json()
        if failure is not None:
            return failure
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list):
            message = 'a batch must be a JSON object with an "events" array'
            return error_response(
                400, "invalid_batch", message, details=[{"field": "events", "message": message}]
            )
        unknown = [key for key in data if key not in ("events", RESERVED_FIELD)]
        if unknown:  # as strict as an event's fields: nothing sent is silently ignored
            message = f'is not a known field; a batch holds only "events" (and "{RESERVED_FIELD}")'
            details = [{"field": key, "message": message} for key in unknown]
            return error_response(
                400,
                "invalid_batch",
                f"unknown field(s) in the batch: {', '.join(unknown)}",
                details=details,
            )
        if not items:
            message = "the batch holds no events"
            return error_response(
                400, "invalid_batch", message, details=[{"field": "events", "message": message}]
            )
        if len(items) > settings.max_batch:
            message = (
                f"a batch may hold at most ingest.max_batch = {settings.max_batch} events, "
                f"got {len(items)}"
            )
            return error_response(
                413, "too_many_events", message, details=[{"field": "events", "message": message}]
            )
        refusal = judge_write_keys(
            keys,
            header=header_key(),
            body=pop_write_key(data),
            events=[pop_write_key(item) for item in items],
        )
        if refusal is not None:
            return refused(refusal)

        results: list[dict[str, Any]] = [{}] * len(items)
        valid: list[ValidEvent] = []
        valid_index: list[int] = []  # position in the batch of each valid event
        warned: dict[int, tuple[FieldError, ...]] = {}  # by position in the batch
        letters: list[DeadLetter] = []
        for index, item in enumerate(items):
            if index and index % YIELD_EVERY == 0:
                await trio.lowlevel.checkpoint()
            result = checked(validate_event, item, received_at)
            if isinstance(result, ValidEvent):
                valid.append(result)
                valid_index.append(index)
                if result.warnings:
                    warned[index] = result.warnings
            else:
                errors = [error.as_dict() for error in result]
                results[index] = {"index": index, "status": "rejected", "errors": errors}
                letters.append(_letter(received_at, result, orjson.dumps(item).decode()))
        if not valid:  # nothing to store: answer now, keep the dead letters on the side
            keep(letters)
            return _batch_answer(results, 0, 0, len(letters))
        pending = submission(received_at, valid, letters)
        del data, items, valid  # the decoded body is not needed while the request waits (GC walks)
        failure = await pass_on(pending)
        if failure is not None:
            return failure

        counts = {"stored": 0, "duplicate": 0, "rejected": len(letters), "accepted": 0}
        for position, index in enumerate(valid_index):
            event = pending.events[position]
            if durable:
                outcome = pending.outcomes[position]
                status = outcome.status.value
            else:
                status = "duplicate" if position in pending.seen_before else "accepted"
            result = {
                "index": index,
                "status": status,
                "eventId": event.client_id or event.event_id,
            }
            if durable and outcome.status is Status.REJECTED:
                result["errors"] = [{"field": "", "message": outcome.reason}]
            elif index in warned:
                _warned(result, warned[index])
            counts[status] += 1
            results[index] = result
        return _batch_answer(
            results,
            counts["stored"] if durable else counts["accepted"],
            counts["duplicate"],
            counts["rejected"],
        )

    def _batch_answer(results: list[dict[str, Any]], accepted: int, duplicates: int, rejected: int):
        """The batch's answer: ``success`` only when something was kept (stored, a duplicate of
        what is stored, or queued); otherwise 400, with each event's reasons in ``results``."""
        answer = {
            "success": accepted + duplicates > 0,
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
            "processed": accepted + duplicates,
            "failed": rejected,
            "results": results,
        }
        if not answer["success"]:
            answer["error"] = "nothing_stored"
            answer["message"] = (
                f"none of the {len(results)} event(s) was kept: see each one's errors in results"
            )
            return json_response(answer, 400)
        return json_response(answer, 200 if durable else 202)

"""Write keys of the ingest routes (``auth.write_keys``): where a request carries one and whether
it may store its events. Pure, no I/O.

A key comes in the ``X-Write-Key`` header or in the reserved ``write_key`` field, of a batch's
envelope or of an event (``navigator.sendBeacon`` cannot set headers). The field is removed from
what it is found in before anything else looks at it, keys or not, so it is never stored, neither
in an event's ``properties`` nor in a dead letter.

With keys configured, every key a request presents must be one of them (a wrong one anywhere is
refused, never ignored), and every event must be covered by one: the header's, the envelope's or
its own. Without keys configured, every request may store.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .secrets import SecretSet

__all__ = ["HEADER", "RESERVED_FIELD", "KeyRefusal", "judge_write_keys", "pop_write_key"]

HEADER = "X-Write-Key"
RESERVED_FIELD = "write_key"
_HOW = f"send one of auth.write_keys in the {HEADER} header or a {RESERVED_FIELD} field"


def pop_write_key(item: object) -> object:
    """Remove the reserved field from ``item`` (a decoded JSON object) and return its value;
    None when ``item`` is no object or has no such field."""
    return item.pop(RESERVED_FIELD, None) if isinstance(item, dict) else None


@attrs.frozen
class KeyRefusal:
    """Why a request may not store (answered 401): ``error`` is ``missing_write_key`` or
    ``invalid_write_key``; ``details`` name the fields, never a key."""

    error: str
    message: str
    details: tuple[dict[str, str], ...]


def judge_write_keys(
    keys: SecretSet, *, header: str | None, body: object = None, events: Sequence[object] = ()
) -> KeyRefusal | None:
    """None when the request may store, else the refusal. ``header`` is ``X-Write-Key``,
    ``body`` the ``write_key`` of the request's JSON object (a single event's own, or a batch's
    envelope), ``events`` each batched event's ``write_key`` (None when absent)."""
    if not len(keys):
        return None
    known: dict[str, bool] = {}  # a batch's events usually repeat one key: hash it once

    def valid(value: object) -> bool:
        if not isinstance(value, str):
            return False
        if value not in known:
            known[value] = keys.match(value) is not None
        return known[value]

    presented = [(f"{HEADER} header", header), (RESERVED_FIELD, body)]
    presented += [(f"events[{index}].{RESERVED_FIELD}", key) for index, key in enumerate(events)]
    wrong = [where for where, key in presented if key is not None and not valid(key)]
    if wrong:
        details = tuple({"field": where, "message": "is not a valid write key"} for where in wrong)
        return KeyRefusal(
            "invalid_write_key", f"invalid write key in {', '.join(wrong)}: {_HOW}", details
        )
    if header is not None or body is not None:
        return None  # valid, and covers every event of the request
    if not events:
        message = f"a write key is required: {_HOW}"
        return KeyRefusal(
            "missing_write_key", message, ({"field": RESERVED_FIELD, "message": message},)
        )
    uncovered = [index for index, key in enumerate(events) if key is None]
    if not uncovered:
        return None
    details = tuple(
        {"field": f"events[{index}].{RESERVED_FIELD}", "message": "no write key covers this event"}
        for index in uncovered
    )
    return KeyRefusal(
        "missing_write_key",
        f"a write key is required for {len(uncovered)} event(s) of the batch: "
        f"{_HOW} (of the batch or of each event)",
        details,
    )

"""Request bodies: synthetic events as JSON text, built by string templates.

Templates rather than a JSON encoder because client and server share the machine's cores: the
client's time per request is taken from the server being measured. Pure: no I/O.
"""

from __future__ import annotations

import random
import time

__all__ = [
    "EVENT_TYPES",
    "PAYLOADS",
    "batch_body",
    "event_json",
    "single_body",
    "tracker_event_json",
]

#: 70% page_view, 20% service_viewed, 5% booking_started, 5% booking_completed.
EVENT_TYPES = (
    ("page_view",) * 14 + ("service_viewed",) * 4 + ("booking_started", "booking_completed")
)
PAGES = (
    "",
    "services",
    "services/screen-repair",
    "services/battery",
    "pricing",
    "booking",
    "contact",
)
SESSIONS_PER_USER = 3


def event_json(rng: random.Random, users: int) -> str:
    """One event as a JSON object string, for a user drawn uniformly from ``users`` fingerprints."""
    user = rng.randrange(users)
    return (
        f'{{"user_fingerprint":"bench-user-{user}","session_id":"bench-session-{user}-'
        f'{rng.randrange(SESSIONS_PER_USER)}","event_type":"{rng.choice(EVENT_TYPES)}",'
        f'"page_url":"https://revivatech.example/{rng.choice(PAGES)}",'
        f'"properties":{{"bench":true}}}}'
    )


def tracker_event_json(rng: random.Random, users: int) -> str:
    """One event as the RevivaTech frontend's tracker sends it: its own id, epoch milliseconds,
    event_name, event_data, referrer_url, UTM and device fields."""
    user = rng.randrange(users)
    millis = time.time_ns() // 1_000_000
    return (
        f'{{"id":"{millis}_{rng.getrandbits(64):x}","user_fingerprint":"bench-user-{user}",'
        f'"session_id":"bench-session-{user}-{rng.randrange(SESSIONS_PER_USER)}",'
        f'"event_type":"{rng.choice(EVENT_TYPES)}","event_name":"Bench Event",'
        f'"event_data":{{"bench":true,"element_selector":"#cta"}},'
        f'"page_url":"https://revivatech.example/{rng.choice(PAGES)}?utm_source=google",'
        f'"referrer_url":"https://www.google.com/","timestamp":{millis},"device_type":"mobile",'
        f'"browser":"Chrome","os":"Linux armv8l","screen_resolution":"412x915",'
        f'"viewport_size":"412x839","time_on_page":{rng.randrange(60_000)},'
        f'"time_since_last_event":{rng.randrange(5_000)},'
        f'"utm_source":"google","utm_medium":"cpc","utm_campaign":"bench"}}'
    )


#: Event bodies by ``--payload``: the core fields only, or what the original tracker sends.
PAYLOADS = {"core": event_json, "tracker": tracker_event_json}


def single_body(rng: random.Random, users: int, payload: str = "core") -> bytes:
    """The body of ``POST /api/analytics/events``: one event of kind ``payload``."""
    return PAYLOADS[payload](rng, users).encode()


def batch_body(rng: random.Random, users: int, batch_size: int, payload: str = "core") -> bytes:
    """The body of ``POST /api/analytics/events/batch``: ``batch_size`` events."""
    make = PAYLOADS[payload]
    events = ",".join([make(rng, users) for _ in range(batch_size)])
    return ('{"events":[' + events + "]}").encode()

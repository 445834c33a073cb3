"""The service's Prometheus metrics (prometheus-client) and their text exposition.

Every metric is defined once per process, at import, and written where it happens: ingest
counts what it receives, the batcher what each commit did, the web layer each answered request,
the ``telemetry`` actor samples the actor tree every second (inbox depths, restarts, active
profile actors, WebSocket clients).

Under ``serve --workers N`` the parent sets ``PROMETHEUS_MULTIPROC_DIR`` (:data:`MULTIPROC_ENV`)
to a fresh directory before it starts the workers, so prometheus-client in each worker writes
every value to files there, and :func:`exposition` sums the files of every worker: whichever
worker answers ``GET /metrics`` reports the whole service. Counters and histograms of a worker
that died stay in the sum; its gauges leave it (``livesum``) once the parent marked it dead.
Without the variable each process reports its own values from memory.

Label values are bounded sets: actor names, route templates, status codes, methods (others are
``OTHER``), outcome stages, and the rate limiter's limit names.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "ACTIVE_PROFILE_ACTORS",
    "ACTOR_INBOX_DEPTH",
    "ACTOR_RESTARTS",
    "BATCH_FLUSH_SECONDS",
    "BATCH_SIZE",
    "EVENTS_DUPLICATE",
    "EVENTS_RECEIVED",
    "EVENTS_REJECTED",
    "EVENTS_STORED",
    "HTTP_METHODS",
    "COMMIT_LAG_SECONDS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "INGEST_LAG_SECONDS",
    "MULTIPROC_ENV",
    "RATE_LIMITED",
    "WEBSOCKET_CLIENTS",
    "exposition",
    "record_http_request",
    "record_rate_limited",
]

#: prometheus-client's multiprocess directory; set for the workers of `serve --workers N`.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Methods kept as a label value; any other a client sends is counted as OTHER.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Route label of a request that matched no route (a 404): raw paths would be unbounded.
UNMATCHED_ROUTE = "unmatched"

# The *_created series double the exposition and no dashboard of this service reads them.
disable_created_metrics()

# Events per batch: from a lone event up to past batch.max_events' default (2000).
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# Seconds: commits take milliseconds; a database that is away makes them take up to minutes.
_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

EVENTS_RECEIVED = Counter(
    "revivatech_events_received_total",
    "Events received by the ingest routes, valid or not (a malformed body counts as one).",
)
EVENTS_STORED = Counter("revivatech_events_stored_total", "Events committed to storage.")
EVENTS_DUPLICATE = Counter(
    "revivatech_events_duplicate_total",
    "Events whose event_id was already stored (not stored again).",
)
EVENTS_REJECTED = Counter(
    "revivatech_events_rejected_total",
    "Events refused: stage=validation by the ingest rules, stage=database by storage.",
    ["stage"],
)
BATCH_SIZE = Histogram(
    "revivatech_batch_size_events", "Events per committed storage batch.", buckets=_BATCH_BUCKETS
)
BATCH_FLUSH_SECONDS = Histogram(
    "revivatech_batch_flush_seconds",
    "Seconds from a batch's first write attempt to its commit (retries included).",
    buckets=_SECONDS_BUCKETS,
)
COMMIT_LAG_SECONDS = Histogram(
    "revivatech_event_commit_lag_seconds",
    "Seconds from receiving an event to committing it, for the oldest event of "
    "each committed batch.",
    buckets=_SECONDS_BUCKETS,
)
INGEST_LAG_SECONDS = Gauge(
    "revivatech_ingest_lag_seconds",
    "Seconds the oldest event received and not yet committed has waited (0 when none).",
    multiprocess_mode="livemax",
)
ACTOR_INBOX_DEPTH = Gauge(
    "revivatech_actor_inbox_depth",
    "Messages waiting in an actor's inbox.",
    ["actor"],
    multiprocess_mode="livesum",
)
ACTOR_RESTARTS = Counter(
    "revivatech_actor_restarts_total", "Restarts of an actor by its supervisor.", ["actor"]
)
ACTIVE_PROFILE_ACTORS = Gauge(
    "revivatech_profile_actors_active",
    "Visitor profile actors active in memory.",
    multiprocess_mode="livesum",
)
WEBSOCKET_CLIENTS = Gauge(
    "revivatech_websocket_clients", "Open live-feed WebSocket clients.", multiprocess_mode="livesum"
)
HTTP_REQUESTS = Counter(
    "revivatech_http_requests_total",
    "Answered HTTP requests by route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "revivatech_http_request_duration_seconds",
    "Seconds to handle an HTTP request, by route template.",
    ["method", "route"],
    buckets=_SECONDS_BUCKETS,
)
for _stage in ("validation", "database"):  # both series exist from the start, at 0
    EVENTS_REJECTED.labels(_stage)
RATE_LIMITED = Counter(
    "revivatech_rate_limited_total", "Requests refused by a rate limit, by limit.", ["limit"]
)


def record_rate_limited(limit: str) -> None:
    """Count one request refused by the rate limit named ``limit`` (a fixed name such as
    ``ingest_ip``, never a client's value: each name is a time series)."""
    RATE_LIMITED.labels(limit=limit).inc()


def record_http_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """Count one answered request. ``route`` is the matched route template (None: no route
    matched), so the labels stay a bounded set whatever paths clients send."""
    method = method if method in HTTP_METHODS else "OTHER"
    route = route or UNMATCHED_ROUTE
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(method, route).observe(seconds)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The exposition of every metric and its content type, in the format ``accept`` (the
    request's Accept header) asks for: the Prometheus text format unless it asks for
    OpenMetrics. This process's values, or, with :data:`MULTIPROC_ENV` set, the sum over every
    process writing to that directory. Reads files: call it from a thread, not the event loop.
    An ``Accept`` whose ``version`` prometheus_client cannot compare (``version=abc``: it compares
    the parts of ``1.x`` with those of 1.0.0, a TypeError) gets the default format, not a 500."""
    try:
        encode, content_type = choose_encoder(accept or "")
    except (TypeError, ValueError):
        encode, content_type = choose_encoder("")
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return encode(REGISTRY), content_type
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return encode(registry), content_type

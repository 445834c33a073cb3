"""PostgreSQL storage through psycopg 3's *blocking* API in worker threads.

psycopg's async API does not run under trio (it needs an asyncio loop), so calls go through
``trio.to_thread.run_sync`` with one ``CapacityLimiter(1)`` per connection (see ``_connections``). One
exception, the hot path: a batch of events without dead letters is one statement, sent and awaited
on the event loop itself through libpq's non-blocking API (``_execute_on_loop``): under load a
thread hop costs several milliseconds of waiting for the GIL each way (docs/performance.md). This
is the only module of the project that imports psycopg, beside ``original.py`` (the original
service's tables, read by ``import-original``).

Connections run in autocommit mode; transactions are explicit (``conn.transaction()``), so no
session is ever left "idle in transaction" after a read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import math
import os
import sys
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.pq
import psycopg.types.json
import trio

from ..domain.funnel import FunnelQuery, FunnelStep
from ..domain.journeys import JOURNEY_STEP_TYPE, STAGES
from ..domain.partitions import slot_of
from ..domain.profiles import ProfileDelta, ProfileState, Touch, journey_rows, sessions_of
from ..domain.realtime import BUCKET_SECONDS
from ..domain.scoring import MODEL_TYPES, ScoreRecord
from ..messages import DeadLetter, Event

from ._interface import Storage
from ._messages import first_line, mask_password
from ._lifecycle import PurgeStep, RejectedLetter
from ._errors import QueryTimeout, StorageError, StorageUnavailable
from ._records import (
    EVENT_EXTRA_COLUMNS,
    LogEntry,
    PartitionPosition,
    RealtimeSeed,
    StoredJourney,
    StoredPrediction,
    VisitorKeys,
    event_extra_items,
    event_extra_values,
    profile_delta_row,
    score_record_row,
    session_delta_row,
    session_merge_sql,
    stored_scores,
)
from ._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from .migrations import AppliedMigration, Migration

logger = logging.getLogger(__name__)

#: Key of the transaction-level advisory lock that serialises migrations across processes: the
#: first 8 bytes of sha256("revivatech_actors.schema_migrations") as a signed bigint, so it is
#: stable and unlikely to collide with another application's advisory locks in the same database.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"revivatech_actors.schema_migrations").digest()[:8], "big", signed=True
)

#: libpq counts connect_timeout in whole seconds and treats anything below 2 as 2; ``open()``
#: enforces the exact float timeout itself with trio, this only bounds reconnects in threads.
_LIBPQ_MIN_CONNECT_TIMEOUT = 2

#: TCP keepalives (unless the URL sets its own): a writer blocked on a peer that vanished without
#: closing the connection notices within about idle + interval * count = 60 s instead of hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

#: SQLSTATE classes meaning "the server cannot serve us now" rather than "this statement is wrong":
#: 08 connection exception, 53 insufficient resources (e.g. too many connections),
#: 57P operator intervention (admin/crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")

#: The extra columns (``EVENT_EXTRA_COLUMNS``) with their types, staged as they are stored.
_EXTRA_TYPES = {"time_on_page": "float8", "time_since_last_event": "float8"}
_EXTRA_DECLARATIONS = ", ".join(f"{c} {_EXTRA_TYPES.get(c, 'text')}" for c in EVENT_EXTRA_COLUMNS)
_EXTRA_LIST = ", ".join(EVENT_EXTRA_COLUMNS)

#: Per-connection staging table for COPY: binary COPY is the fastest way in (~300k rows/s here),
#: and INSERT ... SELECT from it can then skip duplicates with ON CONFLICT and say which rows went
#: in. Ids and JSON are staged as text and cast once in the INSERT.
_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    seq integer, event_id text, user_fingerprint text, session_id text, event_type text,
    event_timestamp timestamptz, received_at timestamptz, sent_at timestamptz,
    page_url text, referrer text, value double precision, properties text, log_slot integer, {extra}
) ON COMMIT DELETE ROWS
""".format(extra=_EXTRA_DECLARATIONS)
_COPY_STAGING = (
    "COPY staging_events (seq, event_id, user_fingerprint, session_id, event_type, event_timestamp,"
    f" received_at, sent_at, page_url, referrer, value, properties, log_slot, {_EXTRA_LIST}) FROM STDIN (FORMAT BINARY)"
)
_STAGING_TYPES = [
    "int4", "text", "text", "text", "text", "timestamptz", "timestamptz", "timestamptz", "text", "text", "float8", "text",
    "int4", *(_EXTRA_TYPES.get(c, "text") for c in EVENT_EXTRA_COLUMNS),
]
#: The current transaction's id as the bigint ``log_txn`` holds.
TXN_SQL = "pg_current_xact_id()::text::bigint"

#: One statement inserts the staged events, skipping stored ids, and answers one row: its log
#: transaction (the events' ``log_txn``, taken once) and the ids it did *not* insert
#: (stored before), comma-separated: usually none, so the answer is small instead of a row per
#: event, and the scan that finds them is skipped when every event went in (the one-time filter
#: on the count). Each answer the writer thread waits for is a wait for the GIL as well, behind
#: the event loop's thread: small answers are what keep a flush short under load
#: (docs/performance.md). Nothing else is written in the events' commit: sessions, profiles and
#: journeys are the profile writer's (``_UPSERT_PROFILES``), coalesced, off the acknowledgement's path.
_STORE_EVENTS_TEMPLATE = """
WITH staged AS MATERIALIZED (SELECT * FROM {source}),
inserted AS (
    INSERT INTO analytics_events (event_id, user_fingerprint, session_id, event_type, event_timestamp,
                                  received_at, sent_at, page_url, referrer, value, properties, log_txn,
                                  log_slot, log_seq{extra})
    SELECT event_id::uuid, user_fingerprint, session_id, event_type, event_timestamp,
           received_at, sent_at, page_url, referrer, value, properties::jsonb, (SELECT """ + TXN_SQL + """),
           log_slot, seq{extra_cast}
    FROM staged ORDER BY seq
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
SELECT """ + TXN_SQL + """, array_to_string(ARRAY(
    SELECT DISTINCT event_id FROM staged
    WHERE (SELECT count(*) FROM inserted) < %(count)s AND event_id::uuid NOT IN (SELECT event_id FROM inserted)), ',')
"""


def _store_events_sql(source: str, extra: tuple[str, ...]) -> str:
    """The events' statement reading ``source``, which holds the core columns and ``extra``."""
    listed = "".join(f", {c}" for c in extra)
    return (_STORE_EVENTS_TEMPLATE.replace("{source}", source).replace("{extra}", listed)
            .replace("{extra_cast}", listed.replace("ip_address", "ip_address::inet")))


_STORE_EVENTS = _store_events_sql("staging_events", EVENT_EXTRA_COLUMNS)


@functools.lru_cache(maxsize=64)
def _store_events_json_sql(extra: tuple[str, ...]) -> tuple[str, bytes]:
    """Batches without dead letters skip COPY: the events travel as one JSON parameter, unpacked
    by PostgreSQL, and the whole write is one statement (atomic on its own), so a flush is one
    round trip instead of four (BEGIN, COPY, INSERT, COMMIT): under load each round trip back into
    Python waits for the GIL (tests/bench/flush_gil.py). The record declares only the extra
    columns the batch holds (``extra``), since unpacking each declared column costs on every row.
    The statement for psycopg, and the same for ``_execute_on_loop`` in libpq's placeholders."""
    declared = "".join(f", {c} {_EXTRA_TYPES.get(c, 'text')}" for c in extra)
    source = (
        "jsonb_to_recordset(%(events)s::jsonb) AS staging_events (seq integer, event_id text, user_fingerprint text,"
        " session_id text, event_type text, event_timestamp timestamptz, received_at timestamptz,"
        f" sent_at timestamptz, page_url text, referrer text, value double precision, properties jsonb,"
        f" log_slot integer{declared})"
    )
    sql = _store_events_sql(source, extra)
    return sql, sql.replace("%(events)s", "$1").replace("%(count)s", "$2").encode()


_INSERT_DEAD_LETTER = (
    "INSERT INTO rejected_events (letter_id, received_at, source, reasons, payload)"
    " VALUES (%s, %s, %s, %s::jsonb, %s) ON CONFLICT (letter_id) DO UPDATE SET"
    " times_received = rejected_events.times_received + 1,"
    " last_received_at = greatest(coalesce(rejected_events.last_received_at, rejected_events.received_at),"
    " excluded.received_at)"
)


#: Profile columns as ``_profile_state`` reads them (``p`` is user_behavior_profiles); session time
#: is summed from the visitor's sessions, where it grows as each session goes on, plus the time of
#: those the retention janitor deleted (migration 0009).
_PROFILE_COLUMNS = """
    p.user_fingerprint, p.total_events, p.total_sessions, p.total_page_views, p.bookings_started,
    p.total_bookings, p.total_value, p.first_seen, p.last_seen, p.last_booking_at,
    p.retired_session_seconds + (
        SELECT coalesce(sum(extract(epoch FROM s.last_activity_at - s.started_at)), 0)::double precision
        FROM analytics_sessions s WHERE s.user_fingerprint = p.user_fingerprint),
    p.days_active, p.event_counts, p.segment, p.engagement_score, p.lead_score, p.churn_risk_score,
    p.price_sensitivity_score, p.updated_at, p.device_counts, p.customer_id, p.customer_id_at, p.version"""

#: Profile deltas, session journeys and session rows travel as JSON parameters (binding arrays
#: costs Python time per value). In one statement: new days and journeys are inserted (a journey
#: row is the visitor's session: a new row adds one to total_sessions), journeys get their
#: touchpoints appended and their stage raised, session rows their counts and times, and the
#: profile takes the delta. Each table's rows are taken in key order (sessions by id, journeys
#: by visitor and session, profiles by visitor), so two writers, and a writer and the scorer,
#: lock them in one order and do not deadlock.
_UPSERT_PROFILES = """
WITH d AS (
    SELECT * FROM jsonb_to_recordset(%(deltas)s::jsonb) AS d (
        user_fingerprint text, events bigint, page_views bigint, bookings_started bigint,
        bookings_completed bigint, value double precision, first_seen timestamptz, last_seen timestamptz,
        last_booking_at timestamptz, days jsonb, counts jsonb, devices jsonb, customer_id text,
        customer_id_at timestamptz)
), j AS (
    SELECT * FROM jsonb_to_recordset(%(journeys)s::jsonb) AS j (
        user_fingerprint text, session_id text, touchpoints jsonb, stage text, started_at timestamptz,
        last_at timestamptz, first_source text, first_source_at timestamptz, last_source text,
        last_source_at timestamptz)
), new_days AS (
    INSERT INTO visitor_active_days (user_fingerprint, day)
    SELECT d.user_fingerprint, x.day::date FROM d, jsonb_array_elements_text(d.days) AS x (day)
    ON CONFLICT DO NOTHING
    RETURNING user_fingerprint
), sessions AS (
    INSERT INTO analytics_sessions AS s (session_id, user_fingerprint, started_at, last_activity_at,
                                         event_count, page_views, entry_page, exit_page, referrer, utm_source)
    SELECT * FROM jsonb_to_recordset(%(sessions)s::jsonb) AS x (
        session_id text, user_fingerprint text, started_at timestamptz, last_activity_at timestamptz,
        event_count bigint, page_views bigint, entry_page text, exit_page text, referrer text, utm_source text)
    ORDER BY session_id
    """ + session_merge_sql("least", "greatest") + """
), journeys AS (
    INSERT INTO customer_journeys AS c (user_fingerprint, session_id, touchpoints, stage, first_touch_source,
                                        first_touch_at, last_touch_source, last_touch_at, started_at, updated_at)
    SELECT j.user_fingerprint, j.session_id, j.touchpoints,
           -- A session that started after the visitor's last completed booking is retention.
           -- Subqueries, not joins: the planner, guessing 100 rows for jsonb_to_recordset,
           -- would hash-join whole tables, a cost that grows with every visitor stored.
           CASE WHEN j.stage <> 'booking' AND EXISTS (
                    SELECT FROM user_behavior_profiles p0
                    WHERE p0.user_fingerprint = j.user_fingerprint AND p0.last_booking_at IS NOT NULL
                      AND p0.last_booking_at < least(j.started_at, (
                          SELECT cj.started_at FROM customer_journeys cj
                          WHERE cj.user_fingerprint = j.user_fingerprint AND cj.session_id = j.session_id)))
                THEN 'retention' ELSE j.stage END,
           j.first_source, j.first_source_at, j.last_source, j.last_source_at, j.started_at, j.last_at
    FROM j ORDER BY j.user_fingerprint, j.session_id
    ON CONFLICT (user_fingerprint, session_id) DO UPDATE SET
        touchpoints = CASE
            WHEN jsonb_array_length(c.touchpoints) >= %(max_touchpoints)s THEN c.touchpoints
            WHEN jsonb_array_length(c.touchpoints) + jsonb_array_length(excluded.touchpoints) <= %(max_touchpoints)s
                THEN c.touchpoints || excluded.touchpoints
            ELSE jsonb_path_query_array(c.touchpoints || excluded.touchpoints, '$[0 to $n]',
                                        jsonb_build_object('n', %(max_touchpoints)s - 1)) END,
        stage = CASE WHEN coalesce(array_position(%(stages)s::text[], excluded.stage), 0)
                          > coalesce(array_position(%(stages)s::text[], c.stage), 0)
                     THEN excluded.stage ELSE c.stage END,
        first_touch_source = CASE WHEN c.first_touch_at IS NULL OR excluded.first_touch_at < c.first_touch_at
                                  THEN coalesce(excluded.first_touch_source, c.first_touch_source)
                                  ELSE c.first_touch_source END,
        first_touch_at = least(c.first_touch_at, excluded.first_touch_at),
        last_touch_source = CASE WHEN c.last_touch_at IS NULL OR excluded.last_touch_at >= c.last_touch_at
                                 THEN coalesce(excluded.last_touch_source, c.last_touch_source)
                                 ELSE c.last_touch_source END,
        last_touch_at = greatest(c.last_touch_at, excluded.last_touch_at),
        started_at = least(c.started_at, excluded.started_at),
        updated_at = greatest(c.updated_at, excluded.updated_at)
    RETURNING user_fingerprint, (xmax = 0) AS inserted
)
INSERT INTO user_behavior_profiles AS p (user_fingerprint, total_events, total_page_views, bookings_started,
                                         total_bookings, total_value, first_seen, last_seen, last_booking_at,
                                         days_active, total_sessions, event_counts, device_counts, customer_id,
                                         customer_id_at, version)
SELECT d.user_fingerprint, d.events, d.page_views, d.bookings_started, d.bookings_completed, d.value,
       d.first_seen, d.last_seen, d.last_booking_at, coalesce(nd.n, 0), coalesce(ns.n, 0), d.counts, d.devices,
       d.customer_id, d.customer_id_at, 1
FROM d
LEFT JOIN (SELECT user_fingerprint, count(*) AS n FROM new_days GROUP BY 1) nd USING (user_fingerprint)
LEFT JOIN (SELECT user_fingerprint, count(*) AS n FROM journeys WHERE inserted GROUP BY 1) ns USING (user_fingerprint)
ORDER BY d.user_fingerprint  -- profile rows locked in key order, as the scorer's records lock them
ON CONFLICT (user_fingerprint) DO UPDATE SET
    total_events = p.total_events + excluded.total_events,
    total_page_views = p.total_page_views + excluded.total_page_views,
    bookings_started = p.bookings_started + excluded.bookings_started,
    total_bookings = p.total_bookings + excluded.total_bookings,
    total_value = p.total_value + excluded.total_value,
    first_seen = least(p.first_seen, excluded.first_seen),
    last_seen = greatest(p.last_seen, excluded.last_seen),
    last_booking_at = greatest(p.last_booking_at, excluded.last_booking_at),
    days_active = p.days_active + excluded.days_active,
    total_sessions = p.total_sessions + excluded.total_sessions,
    -- only the delta's few types are visited: each replaced by the stored count plus the delta
    event_counts = p.event_counts || coalesce((
        SELECT jsonb_object_agg(key, coalesce((p.event_counts ->> key)::bigint, 0) + value::bigint)
        FROM jsonb_each_text(excluded.event_counts)), '{}'),
    device_counts = p.device_counts || coalesce((
        SELECT jsonb_object_agg(key, coalesce((p.device_counts ->> key)::bigint, 0) + value::bigint)
        FROM jsonb_each_text(excluded.device_counts)), '{}'),
    -- the later event's user_id; on equal times the greater id (domain.profiles._later_id)
    customer_id = CASE WHEN excluded.customer_id_at IS NOT NULL AND (p.customer_id_at IS NULL
                            OR excluded.customer_id_at > p.customer_id_at
                            OR (excluded.customer_id_at = p.customer_id_at AND excluded.customer_id > p.customer_id))
                       THEN excluded.customer_id ELSE p.customer_id END,
    customer_id_at = greatest(p.customer_id_at, excluded.customer_id_at),
    version = p.version + 1,  -- its scores are due (migration 0008)
    updated_at = now()
"""

_LOAD_PROFILES = (
    "SELECT" + _PROFILE_COLUMNS + " FROM user_behavior_profiles p"
    " WHERE p.user_fingerprint = ANY(%s::text[])"
)
_PROFILES_TO_RESCORE = (
    "SELECT" + _PROFILE_COLUMNS + " FROM user_behavior_profiles p"
    " WHERE p.scored_at IS NULL OR p.scored_at < %s ORDER BY p.scored_at NULLS FIRST LIMIT %s"
)
#: The scorer's results: a prediction row per model that moved, and the profile's current figures.
#: A result older than the one stored (scoring an earlier version of the profile, or the same
#: version earlier: two instances scoring one visitor) changes nothing. Each
#: result finds its profile by key (a subquery, then ON CONFLICT), never by a join: the planner,
#: guessing 100 rows for jsonb_to_recordset and working from statistics that lag a growing table,
#: would hash-join the whole profiles table, a cost that grows with every visitor stored.
_RECORD_SCORES = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r (
        user_fingerprint text, scored_at timestamptz, segment text, version bigint, predictions jsonb)
), fresh AS (  -- one result per visitor (Storage.record_scores keeps the newest)
    SELECT * FROM r
    WHERE (SELECT (p0.scored_version, coalesce(p0.scored_at, '-infinity')) <= (r.version, r.scored_at)
           FROM user_behavior_profiles p0 WHERE p0.user_fingerprint = r.user_fingerprint)
), predictions AS (
    INSERT INTO ml_predictions (user_fingerprint, model_type, prediction_value, confidence_score, factors, created_at)
    SELECT f.user_fingerprint, x.model_type, x.value, x.confidence, x.factors, f.scored_at
    FROM fresh f, jsonb_to_recordset(f.predictions) AS x (model_type text, value double precision,
                                                          confidence double precision, factors jsonb)
    RETURNING user_fingerprint, model_type, prediction_value
), recorded AS (
    SELECT user_fingerprint,
           max(prediction_value) FILTER (WHERE model_type = 'engagement_scoring') AS engagement,
           max(prediction_value) FILTER (WHERE model_type = 'lead_scoring') AS lead,
           max(prediction_value) FILTER (WHERE model_type = 'churn_prediction') AS churn,
           max(prediction_value) FILTER (WHERE model_type = 'price_sensitivity') AS price
    FROM predictions GROUP BY user_fingerprint
)
-- fresh holds only stored visitors, so this inserts nothing: ON CONFLICT is the update by key
INSERT INTO user_behavior_profiles AS p (user_fingerprint, segment, scored_at, scored_version, engagement_score,
                                         lead_score, churn_risk_score, price_sensitivity_score)
SELECT f.user_fingerprint, f.segment, f.scored_at, f.version, recorded.engagement, recorded.lead, recorded.churn,
       recorded.price
FROM fresh f LEFT JOIN recorded USING (user_fingerprint)
ORDER BY f.user_fingerprint  -- rows locked in key order, as profile writes lock them: no deadlock
ON CONFLICT (user_fingerprint) DO UPDATE SET
    segment = excluded.segment,
    scored_at = greatest(p.scored_at, excluded.scored_at),
    scored_version = excluded.scored_version,
    engagement_score = coalesce(excluded.engagement_score, p.engagement_score),
    lead_score = coalesce(excluded.lead_score, p.lead_score),
    churn_risk_score = coalesce(excluded.churn_risk_score, p.churn_risk_score),
    price_sensitivity_score = coalesce(excluded.price_sensitivity_score, p.price_sensitivity_score)
WHERE (p.scored_version, coalesce(p.scored_at, '-infinity')) <= (excluded.scored_version, excluded.scored_at)
"""
#: Each model's latest rows, through the (user_fingerprint, model_type, created_at) index.
_RECENT_PREDICTIONS = """
SELECT x.model_type, x.prediction_value, x.confidence_score, x.factors, x.created_at
FROM unnest(%(models)s::text[]) AS m (model_type), LATERAL (
    SELECT * FROM ml_predictions
    WHERE user_fingerprint = %(fp)s AND model_type = m.model_type
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s) AS x
ORDER BY x.created_at DESC, x.id DESC
"""
#: The realtime window's events per bucket (``domain.realtime``), through the event-time index.
_REALTIME_BUCKET = "floor(extract(epoch FROM event_timestamp) / %(bucket)s)::bigint"
_REALTIME_COUNTS = f"""
SELECT {_REALTIME_BUCKET}, count(*), count(*) FILTER (WHERE event_type = ANY(%(pages)s)),
       count(*) FILTER (WHERE event_type = ANY(%(conversions)s))
FROM analytics_events WHERE event_timestamp >= %(since)s GROUP BY 1"""
_REALTIME_PAGES = f"""
SELECT {_REALTIME_BUCKET}, page_url, count(*) FROM analytics_events
WHERE event_timestamp >= %(since)s AND event_type = ANY(%(pages)s) AND page_url IS NOT NULL GROUP BY 1, 2"""
_REALTIME_NEWEST = """
SELECT {key}, floor(extract(epoch FROM max(event_timestamp)) / %(bucket)s)::bigint
FROM analytics_events WHERE event_timestamp >= %(since)s GROUP BY 1"""


def _funnel_sql(steps: int) -> str:
    """The funnel of ``steps`` steps (``domain.funnel``) as one statement: the step count shapes
    the text, every value is a parameter. The events of the steps' types in the range (plus the
    window) are read once; each step keeps, per visitor, the first matching event after the
    previous step's (hash joins on the visitor, DISTINCT ON): linear in those events, whatever
    the planner knows of the tables."""
    ctes = ["""e AS MATERIALIZED (
    SELECT user_fingerprint AS fp, event_type, event_timestamp AS t, event_id AS id FROM analytics_events
    WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(start)s AND event_timestamp <= %(horizon)s)""",
            """s1 AS (
    SELECT DISTINCT ON (fp) fp, t AS t1, t, id, NULL::double precision AS gap
    FROM e WHERE event_type = %(step1)s AND t < %(end)s
    ORDER BY fp, t, id)"""]
    for k in range(2, steps + 1):
        ctes.append(f"""s{k} AS (
    SELECT DISTINCT ON (p.fp) p.fp, p.t1, x.t, x.id, extract(epoch FROM x.t - p.t)::double precision AS gap
    FROM s{k - 1} p JOIN e x ON x.fp = p.fp AND x.event_type = %(step{k})s AND (x.t, x.id) > (p.t, p.id)
        AND x.t <= p.t1 + make_interval(secs => %(window)s) AND x.t <= p.t + make_interval(secs => %(window{k})s)
    ORDER BY p.fp, x.t, x.id)""")
    figures = [f"(SELECT count(*) FROM s{k}), (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM s{k})"
               for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n       ".join(figures)


#: Admin reports. The page and the top visitors are chosen in a subquery, so the session time of
#: _PROFILE_COLUMNS is summed for the rows shown only.
_PROFILES_PAGE = (
    "SELECT" + _PROFILE_COLUMNS + " FROM (SELECT * FROM user_behavior_profiles"
    " ORDER BY last_seen DESC NULLS LAST, user_fingerprint LIMIT %(limit)s OFFSET %(offset)s) p"
    " ORDER BY p.last_seen DESC NULLS LAST, p.user_fingerprint"
)
_TOP_PROFILES = (
    "SELECT" + _PROFILE_COLUMNS + " FROM (SELECT * FROM user_behavior_profiles WHERE last_seen >= %(since)s"
    " ORDER BY engagement_score DESC NULLS LAST, last_seen DESC, user_fingerprint LIMIT %(limit)s) p"
    " ORDER BY p.engagement_score DESC NULLS LAST, p.last_seen DESC, p.user_fingerprint"
)
_VISITOR_COUNTS = """
SELECT count(*) FILTER (WHERE last_seen >= %(since)s), count(*) FILTER (WHERE first_seen >= %(since)s)
FROM user_behavior_profiles"""
_REVENUE_BY_DAY = """
SELECT (event_timestamp AT TIME ZONE 'UTC')::date, coalesce(sum(value), 0)::double precision, count(*)
FROM analytics_events
WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(since)s AND event_timestamp < %(until)s
GROUP BY 1 ORDER BY 1"""
_BOOKING_EVENTS = """
SELECT user_fingerprint, event_type, event_timestamp, value FROM (
    SELECT * FROM analytics_events
    WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(since)s AND event_timestamp < %(until)s
    ORDER BY event_timestamp DESC, event_id DESC LIMIT %(limit)s) e
ORDER BY event_timestamp, event_id"""

_LOAD_JOURNEYS = """
SELECT session_id, touchpoints, stage, first_touch_source, last_touch_source, started_at, updated_at
FROM customer_journeys WHERE user_fingerprint = %s ORDER BY started_at, id
"""
_VISITOR_KEYS = """
SELECT 'session', session_id FROM customer_journeys WHERE user_fingerprint = %(fp)s
UNION ALL SELECT 'day', day::text FROM visitor_active_days WHERE user_fingerprint = %(fp)s
"""


#: The notification channel on which a process announces events stored for partitions other
#: processes may own (``Storage.announce_log``): their owners read the log at once instead of at
#: their next poll. Channels are per database, like the tables.
LOG_CHANNEL = "revivatech_event_log"

#: Key of the transaction-level advisory lock that serialises changes to the set of partitions.
PARTITIONS_LOCK_KEY = int.from_bytes(hashlib.sha256(b"revivatech_actors.profile_partitions").digest()[:8], "big", signed=True)

#: A write of derived state records its partitions' positions first (their rows locked until it
#: commits), where its owner still holds them as it last wrote them.
_RECORD_POSITIONS = """
UPDATE profile_partitions p
SET horizon = x.horizon, applied = x.applied, writes = p.writes + 1, updated_at = now()
FROM jsonb_to_recordset(%(positions)s::jsonb) AS x (partition integer, epoch bigint, writes bigint, horizon bigint,
                                                   applied bigint[])
WHERE p.partition = x.partition AND p.owner = %(owner)s AND p.epoch = x.epoch AND p.writes = x.writes
"""
_LEASE_HEARTBEAT = """
INSERT INTO profile_owners (owner, alive_until) VALUES (%(owner)s, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until
"""
_LEASE_RENEW = """
WITH renewed AS (
    UPDATE profile_leases SET lease_until = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE owner = %(owner)s RETURNING partition)
SELECT p.partition, p.epoch FROM renewed JOIN profile_partitions p USING (partition)
"""
#: Taking a partition raises its epoch: a write of the former owner no longer matches. The lease
#: rows are taken first (skipping any another instance is taking); the partition rows then wait
#: for a write of the former owner that is in flight, if any.
_LEASE_CLAIM = """
WITH taken AS (
    UPDATE profile_leases l SET owner = %(owner)s, lease_until = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE l.partition IN (
        SELECT partition FROM profile_leases
        WHERE owner IS NULL OR lease_until IS NULL OR lease_until < clock_timestamp() ORDER BY partition LIMIT %(want)s
        FOR UPDATE SKIP LOCKED)
    RETURNING l.partition)
UPDATE profile_partitions p SET owner = %(owner)s, epoch = p.epoch + 1
FROM taken WHERE p.partition = taken.partition
RETURNING p.partition, p.epoch, p.writes, p.horizon, p.applied
"""
#: The fields of an event a profile needs (``domain.profiles.Touch``), with its log transaction
#: and partition; properties only for a journey step, the one type whose properties count.
_TOUCH_COLUMNS = """e.log_txn, e.log_slot %% %(partitions)s, e.user_fingerprint, e.event_id::text, e.event_type,
    e.session_id, e.event_timestamp, e.page_url, e.referrer, e.value,
    CASE WHEN e.event_type = %(step)s THEN e.properties END, e.device_type, e.user_id"""
#: Each range of transactions is an index range scan of its own (LATERAL, kept apart by OFFSET 0:
#: flattened, the planner scanned and sorted the whole table): the transactions between the
#: ranges, which the fast path brought, are not read at all.
_LOG_ROWS = """
WITH c AS (SELECT * FROM jsonb_to_recordset(%(cursors)s::jsonb) AS c (partition integer, horizon bigint, applied bigint[]))
SELECT """ + _TOUCH_COLUMNS + """
FROM unnest(%(lows)s::bigint[], %(highs)s::bigint[]) AS r (low, high)
     CROSS JOIN LATERAL (SELECT * FROM analytics_events x WHERE x.log_txn >= r.low AND x.log_txn < r.high OFFSET 0) e
     JOIN c ON c.partition = e.log_slot %% %(partitions)s
WHERE e.log_txn >= c.horizon AND NOT (e.log_txn = ANY(c.applied))
ORDER BY e.log_txn, e.log_seq
"""
#: A visitor's events its stored rows do not reflect yet, through the log index (the events
#: since its partition's horizon, given as a value: as a join the planner scanned the table).
_VISITOR_TAIL = """
SELECT """ + _TOUCH_COLUMNS + """
FROM analytics_events e
WHERE e.log_txn >= %(horizon)s AND e.log_slot = %(slot)s AND e.user_fingerprint = %(fp)s
  AND NOT (e.log_txn = ANY(%(applied)s))
ORDER BY e.log_txn, e.log_seq
"""


#: The retention janitor's batches (``Storage.purge_step``). Tables with a time index: a batch
#: is the first ``limit`` old rows found through it, deleted by their physical address.
_PURGE_BY_TIME = {
    # below their partition's horizon: a replay never needs them (no partition yet: none)
    "analytics_events": """
DELETE FROM analytics_events WHERE ctid = ANY(ARRAY(
    SELECT e.ctid FROM analytics_events e
    WHERE e.event_timestamp < %(cutoff)s
      AND (e.log_txn IS NULL OR e.log_txn < (
          SELECT p.horizon FROM profile_partitions p
          WHERE p.partition = e.log_slot %% nullif((SELECT count(*) FROM profile_partitions), 0)))
    LIMIT %(limit)s))""",
    "ml_predictions": """
DELETE FROM ml_predictions WHERE id = ANY(ARRAY(
    SELECT id FROM ml_predictions WHERE created_at < %(cutoff)s LIMIT %(limit)s))""",
    "rejected_events": """
DELETE FROM rejected_events WHERE id = ANY(ARRAY(
    SELECT id FROM rejected_events
    WHERE received_at < %(cutoff)s AND coalesce(last_received_at, received_at) < %(cutoff)s LIMIT %(limit)s))""",
}
#: Tables without an index on their time, walked by primary key range.
_PURGE_KEYS = {"analytics_sessions": "session_id", "customer_journeys": "id"}
#: The time condition is on the row deleted, so a row a profile write touched meanwhile (the
#: DELETE waits for it) is judged again by its new time.
_PURGE_JOURNEYS = """
DELETE FROM customer_journeys WHERE id >= %(first)s AND id <= %(last)s AND updated_at < %(cutoff)s"""
_PURGE_SESSIONS = """
DELETE FROM analytics_sessions
WHERE session_id >= %(first)s AND session_id <= %(last)s AND last_activity_at < %(cutoff)s
RETURNING user_fingerprint, extract(epoch FROM last_activity_at - started_at)::double precision"""
#: An erasure's derived rows: the profile first (a record that read it before waits on its row).
_ERASE_ORDER = ("user_behavior_profiles", "ml_predictions", "analytics_sessions", "customer_journeys",
                "visitor_active_days")


class PostgresStorage(Storage):
    """Storage in a PostgreSQL database (tables in the connection's current schema)."""

    engine = "postgresql"
    migrations_folder = "postgres"
    parallel_writes = True
    announces_log = True
    _driver_errors = (psycopg.Error,)
    # DataError covers what psycopg refuses client-side too (e.g. a NUL character in text).
    _row_errors = (psycopg.DataError, psycopg.IntegrityError)

    def __init__(self, url: str, **options: Any) -> None:
        """See ``Storage.__init__`` for ``options``; the URL is parsed (not connected) here."""
        super().__init__(url, **options)
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            msg = f"invalid PostgreSQL URL {mask_password(url)!r}: {first_line(exc)}"
            raise ValueError(msg) from None
        self._params = params
        self._listening: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()  # connections that LISTEN
        host = params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        self._host_port = f"{host}:{port}"

    def _where(self) -> str:
        return f"PostgreSQL at {self._host_port}"

    def _connect(self, purpose: str) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {
            key: value for key, value in _KEEPALIVES.items() if key not in self._params
        }
        if "application_name" not in self._params:
            options["application_name"] = f"revivatech-actors {purpose}"
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = max(
                _LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(self.connect_timeout)
            )
        conn = psycopg.connect(self._url, autocommit=True, **options)
        psycopg.types.json.set_json_loads(orjson.loads, conn)
        if purpose == "writer":
            conn.execute(_CREATE_STAGING)
        return conn

    def _is_usable(self, conn: psycopg.Connection[Any]) -> bool:
        return not (conn.closed or conn.broken)

    def _close_connection(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def _translate_error(self, exc: Exception) -> StorageError:
        message = f"{self._where()}: {first_line(exc)}"
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError)
            and (sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES))
        ):
            return StorageUnavailable(message)
        return StorageError(message)

    def _ping_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT 1").fetchone()

    def _table_names_blocking(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
        return {name for (name,) in rows}

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            yield

    def _lock_migrations(self, conn: psycopg.Connection[Any]) -> None:
        # Held until this transaction ends; a second migrating process waits here, then reads
        # the applied set only after the first committed, so it never applies a file twice.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))

    def _ensure_migrations_table(self, conn: psycopg.Connection[Any]) -> None:
        # Checked first instead of CREATE TABLE IF NOT EXISTS: no NOTICE, no catalog lock.
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            conn.execute(
                "CREATE TABLE schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now()"
                ")"
            )

    def _read_applied(self, conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return []
        rows = conn.execute(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
        return [
            AppliedMigration(version=v, name=n, checksum=c, applied_at=at.astimezone(dt.timezone.utc))
            for v, n, c, at in rows
        ]

    def _execute_script(self, conn: psycopg.Connection[Any], sql: str) -> None:
        # Without parameters psycopg sends the text as one simple query, so a file may hold many
        # statements; they run inside the caller's transaction.
        conn.execute(sql)  # type: ignore[arg-type]  # trusted file shipped with the package

    def _record_migration(self, conn: psycopg.Connection[Any], migration: Migration) -> AppliedMigration:
        (applied_at,) = conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
            " RETURNING applied_at",
            (migration.version, migration.name, migration.checksum),
        ).fetchone()
        return AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=applied_at.astimezone(dt.timezone.utc),
        )

    def _store_events(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> set[str]:
        with conn.cursor() as cursor:
            with cursor.copy(_COPY_STAGING) as copy:
                copy.set_types(_STAGING_TYPES)
                for seq, e in enumerate(events):
                    copy.write_row(
                        (
                            seq, e.event_id, e.user_fingerprint, e.session_id, e.event_type, e.timestamp,
                            e.received_at, e.sent_at, e.page_url, e.referrer, e.value, orjson.dumps(e.properties).decode(),
                            slot_of(e.user_fingerprint), *event_extra_values(e),
                        )
                    )
            # The staging rows vanish at commit or rollback (ON COMMIT DELETE ROWS), and every
            # attempt, bisected ones included, is a transaction of its own.
            cursor.execute(_STORE_EVENTS, {"count": len(events)})
            _, not_inserted = cursor.fetchone()
            return _inserted(events, not_inserted)

    def _log_txn(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute("SELECT " + TXN_SQL).fetchone()[0]

    def _store_in_one_statement(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> tuple[set[str], int] | None:
        rows, extra = _events_json(events)
        statement, _ = _store_events_json_sql(extra)
        txn, not_inserted = conn.execute(statement, {"events": rows.decode(), "count": len(events)}).fetchone()
        return _inserted(events, not_inserted), int(txn)

    async def _store_on_loop(self, lane: Any, events: Sequence[Event]) -> tuple[set[str], int] | None:
        conn = self._claim_lane(lane)
        if conn is None:
            return None
        broken = True  # until the exchange is over: a cancellation leaves the connection mid-protocol
        try:
            rows, extra = _events_json(events)
            _, statement = _store_events_json_sql(extra)
            params = [rows, str(len(events)).encode()]
            try:
                result = await _execute_on_loop(conn.pgconn, statement, params)
            except psycopg.Error as exc:  # the connection failed: nothing is known of the commit
                raise self._translate_error(exc) from exc
            broken = False
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
                if isinstance(error, self._row_errors):
                    return None  # rolled back: the worker thread's path isolates the refused rows
                raise self._translate_error(error) from error
            return _inserted(events, result.get_value(0, 1).decode()), int(result.get_value(0, 0))
        finally:
            await self._release_lane(lane, broken=broken)

    def _received_times_blocking(self, conn: psycopg.Connection[Any], event_ids: list[str]) -> dict[str, dt.datetime]:
        rows = conn.execute(
            "SELECT event_id::text, received_at FROM analytics_events WHERE event_id = ANY(%s::uuid[])", (event_ids,)
        ).fetchall()
        return {event_id: received_at for event_id, received_at in rows}

    def _insert_dead_letters(self, conn: psycopg.Connection[Any], letters: Sequence[DeadLetter]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                _INSERT_DEAD_LETTER,
                [
                    # PostgreSQL text cannot hold NUL; keep the payload, visibly escaped.
                    (d.letter_id, d.received_at, d.source, orjson.dumps(d.reasons).decode(), d.payload.replace("\x00", "\\u0000"))
                    for d in letters
                ],
            )

    def _upsert_profiles(self, conn: psycopg.Connection[Any], deltas: Sequence[ProfileDelta],
                         max_touchpoints: int, return_rows: bool) -> dict[str, ProfileState]:
        profiles = orjson.dumps([profile_delta_row(d) for d in deltas]).decode()
        journeys = [row for d in deltas for row in journey_rows(d)]
        for row in journeys:
            if len(row["touchpoints"]) > max_touchpoints:
                row["touchpoints"] = row["touchpoints"][:max_touchpoints]
        sessions = orjson.dumps([session_delta_row(row) for row in sessions_of(deltas)]).decode()
        conn.execute(_UPSERT_PROFILES, {"deltas": profiles, "journeys": orjson.dumps(journeys).decode(),
                                        "sessions": sessions, "max_touchpoints": max_touchpoints,
                                        "stages": list(STAGES)})
        # Read after the statement, not RETURNING from it: its session time sums the session rows
        # the statement itself updated, which its own subqueries would not see.
        return self._load_profiles_blocking(conn, [d.user_fingerprint for d in deltas]) if return_rows else {}

    def _load_profiles_blocking(self, conn: psycopg.Connection[Any], user_fingerprints: list[str]) -> dict[str, ProfileState]:
        rows = conn.execute(_LOAD_PROFILES, (user_fingerprints,)).fetchall()
        return {row[0]: _profile_state(row) for row in rows}

    def _profiles_to_rescore_blocking(self, conn: psycopg.Connection[Any], scored_before: dt.datetime,
                                      limit: int) -> list[ProfileState]:
        return [_profile_state(row) for row in conn.execute(_PROFILES_TO_RESCORE, (scored_before, limit)).fetchall()]

    def _record_scores(self, conn: psycopg.Connection[Any], records: Sequence[ScoreRecord]) -> None:
        conn.execute(_RECORD_SCORES, (orjson.dumps([score_record_row(r) for r in records]).decode(),))

    def _recent_predictions_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str,
                                     limit: int) -> list[StoredPrediction]:
        params = {"models": list(MODEL_TYPES), "fp": user_fingerprint, "limit": limit}
        rows = conn.execute(_RECENT_PREDICTIONS, params).fetchall()
        return [StoredPrediction(model, value, confidence, factors, created) for model, value, confidence, factors, created in rows]

    def _load_journeys_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> list[StoredJourney]:
        rows = conn.execute(_LOAD_JOURNEYS, (user_fingerprint,)).fetchall()
        return [StoredJourney(sid, touchpoints, stage, first, last, started, updated)
                for sid, touchpoints, stage, first, last, started, updated in rows]

    def _funnel_blocking(self, conn: psycopg.Connection[Any], query: FunnelQuery, timeout: float) -> list[FunnelStep]:
        params = _funnel_params(query)
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{max(1, round(timeout * 1000))}ms",))
                # Joins on the visitor by hash, never nested loops: without fresh statistics
                # (autovacuum off, a table just loaded) the planner guesses a few rows and a
                # nested loop over the events turns the funnel quadratic.
                conn.execute("SELECT set_config('enable_nestloop', 'off', true)")
                row = conn.execute(_funnel_sql(len(query.steps)), params).fetchone()
        except psycopg.errors.QueryCanceled as exc:
            msg = f"{self._where()}: the funnel took longer than {timeout:g} s and was cancelled"
            raise QueryTimeout(msg) from exc
        assert row is not None
        return [FunnelStep(row[2 * i], row[2 * i + 1]) for i in range(len(query.steps))]

    def _realtime_seed_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, page_types: list[str],
                                conversion_types: list[str]) -> RealtimeSeed:
        params = {"since": since, "bucket": BUCKET_SECONDS, "pages": page_types, "conversions": conversion_types}
        with conn.transaction():  # one snapshot for the four answers
            counts = conn.execute(_REALTIME_COUNTS, params).fetchall()
            pages = conn.execute(_REALTIME_PAGES, params).fetchall()
            users = conn.execute(_REALTIME_NEWEST.format(key="user_fingerprint"), params).fetchall()
            sessions = conn.execute(_REALTIME_NEWEST.format(key="session_id"), params).fetchall()
        return RealtimeSeed([tuple(row) for row in counts], [tuple(row) for row in pages], dict(users), dict(sessions))

    def _visitor_keys_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> VisitorKeys:
        rows = conn.execute(_VISITOR_KEYS, {"fp": user_fingerprint}).fetchall()
        return VisitorKeys(
            sessions=frozenset(key for kind, key in rows if kind == "session"),
            days=frozenset(dt.date.fromisoformat(key) for kind, key in rows if kind == "day"),
        )

    def _profiles_page_blocking(self, conn: psycopg.Connection[Any], offset: int, limit: int) -> ProfilesPage:
        with conn.transaction():  # the count and the page of one snapshot
            (total,) = conn.execute("SELECT count(*) FROM user_behavior_profiles").fetchone()
            rows = conn.execute(_PROFILES_PAGE, {"offset": offset, "limit": limit}).fetchall()
        return ProfilesPage(total, [_profile_state(row) for row in rows])

    def _top_profiles_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, limit: int) -> list[ProfileState]:
        return [_profile_state(row) for row in conn.execute(_TOP_PROFILES, {"since": since, "limit": limit}).fetchall()]

    def _visitor_counts_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime) -> VisitorCounts:
        active, new = conn.execute(_VISITOR_COUNTS, {"since": since}).fetchone()
        return VisitorCounts(active, new)

    def _revenue_by_day_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, until: dt.datetime,
                                 types: list[str]) -> list[DailyRevenue]:
        rows = conn.execute(_REVENUE_BY_DAY, {"types": types, "since": since, "until": until}).fetchall()
        return [DailyRevenue(day, revenue, orders) for day, revenue, orders in rows]

    def _booking_events_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, until: dt.datetime,
                                 types: list[str], limit: int) -> list[BookingEvent]:
        params = {"types": types, "since": since, "until": until, "limit": limit}
        return [BookingEvent(*row) for row in conn.execute(_BOOKING_EVENTS, params).fetchall()]


    # ------------------------------------------------------------------ the log and its partitions

    def _record_positions(self, conn: psycopg.Connection[Any], owner: str | None,
                          positions: Sequence[PartitionPosition]) -> int:
        rows = [{"partition": p.partition, "epoch": p.epoch, "writes": p.writes, "horizon": p.horizon,
                 "applied": sorted(p.applied)} for p in positions]
        return conn.execute(_RECORD_POSITIONS, {"positions": orjson.dumps(rows).decode(), "owner": owner}).rowcount

    def _partition_rows(self, conn: psycopg.Connection[Any], partitions: list[int]) -> dict[int, tuple[str | None, int, int]]:
        rows = conn.execute("SELECT partition, owner, epoch, writes FROM profile_partitions WHERE partition = ANY(%s)",
                            (partitions,)).fetchall()
        return {partition: (owner, epoch, writes) for partition, owner, epoch, writes in rows}

    def _lock_partitions(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITIONS_LOCK_KEY,))

    def _partition_count(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute("SELECT count(*) FROM profile_partitions").fetchone()[0]

    def _create_partitions(self, conn: psycopg.Connection[Any], partitions: range) -> None:
        bounds = (partitions.start, partitions.stop - 1)
        conn.execute("INSERT INTO profile_partitions (partition, horizon) SELECT p, 0 FROM generate_series(%s::int, %s::int) p",
                     bounds)
        conn.execute("INSERT INTO profile_leases (partition) SELECT p FROM generate_series(%s::int, %s::int) p", bounds)

    def _split_partitions(self, conn: psycopg.Connection[Any], held: int, count: int) -> None:
        conn.execute(
            "INSERT INTO profile_partitions (partition, horizon, applied)"
            " SELECT q, p.horizon, p.applied FROM generate_series(%(held)s::int, %(count)s::int - 1) q"
            " JOIN profile_partitions p ON p.partition = q %% %(held)s::int",
            {"held": held, "count": count})
        conn.execute("INSERT INTO profile_leases (partition) SELECT q FROM generate_series(%s::int, %s::int - 1) q",
                     (held, count))
        conn.execute("UPDATE profile_leases SET owner = NULL, lease_until = NULL")

    def _live_leases(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute("SELECT count(*) FROM profile_leases WHERE owner IS NOT NULL"
                            " AND lease_until > clock_timestamp()").fetchone()[0]

    def _lease_heartbeat(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> None:
        conn.execute(_LEASE_HEARTBEAT, {"owner": owner, "ttl": ttl})
        # instances gone for a while are forgotten (an instance's row is its own otherwise)
        conn.execute("DELETE FROM profile_owners WHERE alive_until < clock_timestamp() - interval '1 minute'")

    def _lease_release(self, conn: psycopg.Connection[Any], owner: str, partitions: list[int]) -> None:
        conn.execute("UPDATE profile_leases SET owner = NULL, lease_until = NULL"
                     " WHERE owner = %s AND partition = ANY(%s)", (owner, partitions))

    def _lease_renew(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> dict[int, int]:
        return dict(conn.execute(_LEASE_RENEW, {"owner": owner, "ttl": ttl}).fetchall())

    def _live_owners(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute("SELECT count(*) FROM profile_owners WHERE alive_until > clock_timestamp()").fetchone()[0]

    def _lease_claim(self, conn: psycopg.Connection[Any], owner: str, ttl: float, want: int) -> list[PartitionPosition]:
        rows = conn.execute(_LEASE_CLAIM, {"owner": owner, "ttl": ttl, "want": want}).fetchall()
        return [PartitionPosition(partition, epoch, writes, horizon, frozenset(applied))
                for partition, epoch, writes, horizon, applied in rows]

    def _leave_blocking(self, conn: psycopg.Connection[Any], owner: str) -> None:
        with conn.transaction():
            conn.execute("UPDATE profile_leases SET owner = NULL, lease_until = NULL WHERE owner = %s", (owner,))
            conn.execute("DELETE FROM profile_owners WHERE owner = %s", (owner,))

    def _announce_log_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_notify(%s, '')", (LOG_CHANNEL,))

    def _wait_for_log_blocking(self, conn: psycopg.Connection[Any], timeout: float) -> bool:
        if conn not in self._listening:  # a new connection (the first, or after a reconnect)
            conn.execute(f"LISTEN {LOG_CHANNEL}")
            self._listening.add(conn)
        # each announcement queued meanwhile wakes a later call at once; the owner coalesces them
        return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))

    def _log_horizon(self, conn: psycopg.Connection[Any]) -> int:
        # The oldest transaction still running when this statement began: every smaller one has
        # ended, so a later statement sees all of those that committed.
        return conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0]

    def _log_rows(self, conn: psycopg.Connection[Any], cursors: list[PartitionPosition], partitions: int,
                  ranges: list[tuple[int, int]], limit: int | None) -> list[LogEntry]:
        rows = [{"partition": c.partition, "horizon": c.horizon, "applied": list(c.applied)}
                for c in cursors]
        params = {"cursors": orjson.dumps(rows).decode(), "partitions": partitions, "step": JOURNEY_STEP_TYPE,
                  "lows": [low for low, _ in ranges], "highs": [high for _, high in ranges]}
        sql = _LOG_ROWS if limit is None else _LOG_ROWS + f" LIMIT {int(limit)}"
        return [_log_entry(row) for row in conn.execute(sql, params).fetchall()]

    @contextlib.contextmanager
    def _read_snapshot(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def _visitor_tail(self, conn: psycopg.Connection[Any], user_fingerprint: str, partition: int) -> list[Touch]:
        position = conn.execute("SELECT horizon, applied FROM profile_partitions WHERE partition = %s",
                                (partition,)).fetchone()
        if position is None:
            return []
        params = {"horizon": position[0], "applied": position[1], "slot": slot_of(user_fingerprint),
                  "fp": user_fingerprint, "partitions": 1, "step": JOURNEY_STEP_TYPE}
        return [_log_entry(row).touch for row in conn.execute(_VISITOR_TAIL, params).fetchall()]

    # ------------------------------------------------------------------ the data lifecycle

    def _purge_step_blocking(self, conn: psycopg.Connection[Any], table: str, cutoff: dt.datetime, limit: int,
                             resume: Any) -> PurgeStep:
        if table in _PURGE_BY_TIME:
            deleted = conn.execute(_PURGE_BY_TIME[table], {"cutoff": cutoff, "limit": limit}).rowcount
            return PurgeStep(deleted, True if deleted == limit else None)  # fewer than asked: none left
        key = _PURGE_KEYS[table]
        with conn.transaction():
            after = "" if resume is None else f" WHERE {key} > %(after)s"
            keys = conn.execute(f"SELECT {key} FROM {table}{after} ORDER BY {key} LIMIT %(limit)s",
                                {"after": resume, "limit": limit}).fetchall()
            if not keys:
                return PurgeStep(0, None)
            span = {"first": keys[0][0], "last": keys[-1][0], "cutoff": cutoff}
            if table == "customer_journeys":
                deleted = conn.execute(_PURGE_JOURNEYS, span).rowcount
            else:
                retired = conn.execute(_PURGE_SESSIONS, span).fetchall()
                deleted = len(retired)
                _retire_session_seconds(conn, retired)
        return PurgeStep(deleted, keys[-1][0] if len(keys) == limit else None)

    def _erase_events(self, conn: psycopg.Connection[Any], user_fingerprint: str,
                      since_txn: int | None) -> dict[str, int]:
        if "\x00" in user_fingerprint:  # no text column can hold it (asking fails as if PostgreSQL were away)
            return {"analytics_events": 0}
        if since_txn is None:
            n = conn.execute("DELETE FROM analytics_events WHERE user_fingerprint = %s", (user_fingerprint,)).rowcount
        else:
            n = conn.execute("DELETE FROM analytics_events WHERE log_txn >= %s AND user_fingerprint = %s",
                             (since_txn, user_fingerprint)).rowcount
        return {"analytics_events": n}

    def _erase_letters(self, conn: psycopg.Connection[Any], needles: tuple[str, str]) -> int:
        return conn.execute("DELETE FROM rejected_events WHERE strpos(payload, %s) > 0 OR strpos(payload, %s) > 0",
                            needles).rowcount

    def _fence_partition(self, conn: psycopg.Connection[Any], partition: int) -> None:
        conn.execute("UPDATE profile_partitions SET epoch = epoch + 1, updated_at = now() WHERE partition = %s",
                     (partition,))

    def _erase_derived(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> dict[str, int]:
        # Waits for the scorer's records in flight and holds back new ones until this commits:
        # one that read the profile before its deletion would otherwise, once this commits,
        # insert its predictions and a profile row of scores alone (its INSERT ... ON CONFLICT
        # finds the conflicting row gone). Taken before any profile row lock: a record in flight
        # may be waiting for one. A record that starts later locks the table before taking its
        # snapshot, so it finds no profile and records nothing.
        if "\x00" in user_fingerprint:  # no row can be the visitor's: see _erase_events
            return dict.fromkeys(_ERASE_ORDER, 0)
        conn.execute("LOCK TABLE ml_predictions IN SHARE ROW EXCLUSIVE MODE")
        return {table: conn.execute(f"DELETE FROM {table} WHERE user_fingerprint = %s", (user_fingerprint,)).rowcount
                for table in _ERASE_ORDER}

    def _rejected_page_blocking(self, conn: psycopg.Connection[Any], limit: int,
                                before: int | None) -> list[RejectedLetter]:
        where = "" if before is None else " WHERE id < %(before)s"
        rows = conn.execute(
            "SELECT id, letter_id::text, received_at, last_received_at, times_received, source, reasons, payload"
            f" FROM rejected_events{where} ORDER BY id DESC LIMIT %(limit)s", {"before": before, "limit": limit},
        ).fetchall()
        return [RejectedLetter(*row) for row in rows]


def _retire_session_seconds(conn: psycopg.Connection[Any], retired: list[tuple[str, float]]) -> None:
    """Add the deleted sessions' time to their profiles, locking the profiles in key order (as
    profile writes and the scorer lock them: no deadlock)."""
    seconds: dict[str, float] = {}
    for fp, s in retired:
        seconds[fp] = seconds.get(fp, 0.0) + s
    if not seconds:
        return
    fps = sorted(seconds)
    conn.execute("SELECT 1 FROM user_behavior_profiles WHERE user_fingerprint = ANY(%s::text[])"
                 " ORDER BY user_fingerprint FOR UPDATE", (fps,))
    conn.execute(
        "UPDATE user_behavior_profiles p SET retired_session_seconds = p.retired_session_seconds + x.s"
        " FROM unnest(%s::text[], %s::float8[]) AS x (fp, s) WHERE p.user_fingerprint = x.fp",
        (fps, [seconds[fp] for fp in fps]))


def _funnel_params(query: FunnelQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "types": sorted(set(query.steps)), "start": query.start, "end": query.end,
        "horizon": query.end + dt.timedelta(seconds=query.window), "window": query.window,
    }
    for k, step in enumerate(query.steps, 1):
        params[f"step{k}"] = step
        if k > 1:
            params[f"window{k}"] = query.step_windows[k - 2] if query.step_windows else query.window
    return params


def _events_json(events: Sequence[Event]) -> tuple[bytes, tuple[str, ...]]:
    """``events`` as the JSON array ``_store_events_json_sql`` unpacks (``seq`` keeping their
    order), and which of ``EVENT_EXTRA_COLUMNS`` it holds, in their order."""
    rows = []
    present: set[str] = set()
    for seq, e in enumerate(events):
        row = {
            "seq": seq, "event_id": e.event_id, "user_fingerprint": e.user_fingerprint, "session_id": e.session_id,
            "event_type": e.event_type, "event_timestamp": e.timestamp, "received_at": e.received_at,
            "sent_at": e.sent_at, "page_url": e.page_url, "referrer": e.referrer, "value": e.value,
            "properties": e.properties, "log_slot": slot_of(e.user_fingerprint),
        }
        extra = event_extra_items(e)
        if extra:
            row.update(extra)
            present.update(extra)
        rows.append(row)
    return orjson.dumps(rows), tuple(c for c in EVENT_EXTRA_COLUMNS if c in present)


async def _execute_on_loop(pgconn: psycopg.pq.abc.PGconn, query: bytes, params: list[bytes]) -> psycopg.pq.abc.PGresult:
    """Run one statement (text parameters, text results) on ``pgconn`` — in non-blocking mode,
    as psycopg keeps its connections — waiting for its socket on the trio loop, and return its
    result. Raises psycopg.OperationalError when the connection fails; cancellation leaves the
    connection mid-protocol (close it)."""
    pgconn.send_query_params(query, params)
    fd = pgconn.socket
    while pgconn.flush():  # 1: part of the query is still to be sent
        await trio.lowlevel.wait_writable(fd)
    result = None
    while True:
        pgconn.consume_input()
        while pgconn.is_busy():
            await trio.lowlevel.wait_readable(fd)
            pgconn.consume_input()
        last = pgconn.get_result()
        if last is None:  # ready for the next query
            assert result is not None
            return result
        result = last


def _inserted(events: Sequence[Event], not_inserted: str) -> set[str]:
    """The ids of ``events`` a store statement inserted, from the ids it says it did not
    (comma-separated)."""
    ids = {e.event_id for e in events}
    return ids.difference(not_inserted.split(",")) if not_inserted else ids


def _profile_state(row: tuple[Any, ...]) -> ProfileState:
    (fp, events, sessions, page_views, started, bookings, value, first, last, last_booking, seconds, days, counts,
     segment, engagement, lead, churn, price, updated, devices, customer_id, customer_id_at, version) = row
    return ProfileState(
        user_fingerprint=fp, total_events=events, total_sessions=sessions, total_page_views=page_views,
        bookings_started=started, total_bookings=bookings, total_value=value, first_seen=first, last_seen=last,
        last_booking_at=last_booking, total_session_seconds=seconds, days_active=days, event_counts=dict(counts),
        segment=segment, scores=stored_scores(engagement, lead, churn, price), updated_at=updated,
        device_counts=dict(devices), customer_id=customer_id, customer_id_at=customer_id_at, version=version,
    )


def _log_entry(row: tuple[Any, ...]) -> LogEntry:
    txn, partition, fp, event_id, event_type, session_id, at, page, referrer, value, properties, device, user_id = row
    touch = Touch(sys.intern(event_type), sys.intern(session_id), at, None if page is None else sys.intern(page),
                  referrer, value, properties or {}, device, user_id)
    return LogEntry(txn, partition, fp, event_id, touch)

"""Scores and predictions on SQLite."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

import orjson

from ...domain.profiles import ProfileState
from ...domain.scoring import CHURN, ENGAGEMENT, LEAD, MODEL_TYPES, PRICE_SENSITIVITY, ScoreRecord
from .._interface.scores import ScoresStorage
from .._records import (
    StoredPrediction,
    score_record_row,
)
from .connection import read_snapshot
from .profiles import profile_state
from .queries import Q
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["SQLiteScores"]


class SQLiteScores(ScoresStorage):
    """The scores hooks of ``_interface.scores``."""

    def _record_scores(self, conn: sqlite3.Connection, records: Sequence[ScoreRecord]) -> None:
        for r in records:
            row = score_record_row(r)
            at = format_timestamp(r.scored_at)
            stored = conn.execute(Q["scored_state"], (r.user_fingerprint,)).fetchone()
            if stored is None:  # no profile: nothing to score
                continue
            if (stored[0], stored[1] or "") > (r.version, at):  # an older result changes nothing
                continue
            values: dict[str, float] = {}
            for p in row["predictions"]:
                values[p["model_type"]] = p["value"]
                conn.execute(
                    Q["insert_prediction"],
                    (
                        r.user_fingerprint,
                        p["model_type"],
                        p["value"],
                        p["confidence"],
                        orjson.dumps(p["factors"]).decode(),
                        at,
                        p["model_version"],
                    ),
                )
            conn.execute(
                Q["record_score"],
                (
                    r.segment,
                    at,
                    r.version,
                    values.get(ENGAGEMENT),
                    values.get(LEAD),
                    values.get(CHURN),
                    values.get(PRICE_SENSITIVITY),
                    r.user_fingerprint,
                ),
            )

    def _profiles_to_rescore_blocking(
        self, conn: sqlite3.Connection, scored_before: dt.datetime, limit: int
    ) -> list[ProfileState]:
        rows = conn.execute(Q["profiles_to_rescore"], (format_timestamp(scored_before), limit))
        return [profile_state(row) for row in rows.fetchall()]

    def _recent_predictions_blocking(
        self, conn: sqlite3.Connection, user_fingerprint: str, limit: int
    ) -> list[StoredPrediction]:
        rows = []
        # One snapshot: a scorer commit between two models' reads would show one scoring's
        # predictions without another model's.
        with read_snapshot(conn):
            for model_type in MODEL_TYPES:  # each model's latest rows, through its index
                rows += conn.execute(
                    Q["recent_predictions"], (user_fingerprint, model_type, limit)
                ).fetchall()
        rows.sort(key=lambda row: (row[4], row[5]), reverse=True)
        return [
            StoredPrediction(
                model, value, confidence, orjson.loads(factors), parse_timestamp(created), version
            )
            for model, value, confidence, factors, created, _, version in rows
        ]

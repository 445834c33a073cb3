"""Scores and predictions on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from ...domain.profiles import ProfileState
from ...domain.scoring import MODEL_TYPES, ScoreRecord
from .._interface.scores import ScoresStorage
from .._queries import load_queries
from .._records import (
    StoredPrediction,
    score_record_row,
)
from .profiles import profile_state

__all__ = ["PostgresScores"]

Q = load_queries("postgres")


class PostgresScores(ScoresStorage):
    """The scores hooks of ``_interface.scores``."""

    def _profiles_to_rescore_blocking(
        self, conn: psycopg.Connection[Any], scored_before: dt.datetime, limit: int
    ) -> list[ProfileState]:
        return [
            profile_state(row)
            for row in conn.execute(Q["profiles_to_rescore"], (scored_before, limit)).fetchall()
        ]

    def _record_scores(self, conn: psycopg.Connection[Any], records: Sequence[ScoreRecord]) -> None:
        conn.execute(
            Q["record_scores"], (orjson.dumps([score_record_row(r) for r in records]).decode(),)
        )

    def _recent_predictions_blocking(
        self, conn: psycopg.Connection[Any], user_fingerprint: str, limit: int
    ) -> list[StoredPrediction]:
        params = {"models": list(MODEL_TYPES), "fp": user_fingerprint, "limit": limit}
        rows = conn.execute(Q["recent_predictions"], params).fetchall()
        return [
            StoredPrediction(model, value, confidence, factors, created, version)
            for model, value, confidence, factors, created, version in rows
        ]

"""The conversion funnel: its query parameters and its answer (pure; storage counts the visitors).

A visitor *enters* the funnel with their first event of the first step stamped in ``[from, to)``.
They *reach* step k (k > 1) with their first event of that step's type that comes after the event
that made them reach step k-1 — events ordered by time, then by event id, so steps posted
together in one batch keep their order and a repeated step needs another event — and that is
at most ``window`` after their entry and, with ``windows``, at most ``windows[k-2]`` after the
previous step. Later steps may fall after ``to``: the range selects who enters. For each step the
answer gives the visitors who reached it, the conversion from the previous step and from the
first (shares of 1), and the median seconds from the previous step.

The original service's parameters are taken too: ``timeframe`` (``"7 days"``: the range is the
last 7 days up to now; it excludes ``from`` and ``to``) and ``funnel_name`` (steps of a funnel
named in the configuration; it excludes ``steps``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .timefmt import iso_datetime

__all__ = [
    "MAX_STEPS",
    "FunnelQuery",
    "FunnelStep",
    "ParameterError",
    "funnel_document",
    "parse_duration",
    "parse_funnel_query",
    "parse_timeframe",
]

#: Most steps a funnel may have.
MAX_STEPS = 10
#: Longest event type a step may name (as validation allows for events).
MAX_STEP_LENGTH = 100
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The original's timeframe: a PostgreSQL interval such as '7 days', here only "<n> <unit>".
_TIMEFRAME = re.compile(r"([1-9][0-9]{0,5}) +(minute|hour|day|week|month)s?", re.IGNORECASE)
#: Seconds per timeframe unit; a month is 30 days (a fixed length, unlike a calendar month).
TIMEFRAME_UNIT_SECONDS = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
}
#: Longest timeframe: ten years, far past any retention, and well inside datetime's range.
MAX_TIMEFRAME_SECONDS = 3650 * 86400
#: Range of ``from`` and ``to``: room to add a whole range or window without leaving the calendar.
MIN_QUERY_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_TIME = datetime(3000, 1, 1, tzinfo=UTC)
#: Longest funnel name echoed back in an error (names in configuration are at most 64 characters).
_MAX_NAME_SHOWN = 64
_PARAMETERS = ("steps", "from", "to", "window", "windows", "timeframe", "funnel_name")


class ParameterError(ValueError):
    """A query parameter is missing a rule: ``parameter`` names it, the message says why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@attrs.frozen
class FunnelQuery:
    steps: tuple[str, ...]
    start: datetime  # entries from (inclusive)
    end: datetime  # entries until (exclusive)
    window: float  # seconds from entering to each later step
    step_windows: tuple[float, ...] | None  # seconds from the previous step, one per later step
    name: str | None = None  # the configured funnel the steps came from (funnel_name)
    timeframe: str | None = None  # the timeframe asked for, as normalised by parse_timeframe

    def cache_key(self) -> str:
        windows = ",".join(f"{w:g}" for w in self.step_windows) if self.step_windows else ""
        return "|".join(
            [
                ",".join(self.steps),
                self.start.isoformat(),
                self.end.isoformat(),
                f"{self.window:g}",
                windows,
                self.name or "",
            ]
        )


@attrs.frozen
class FunnelStep:
    """What storage counts for one step."""

    visitors: int
    median_seconds_from_previous: float | None  # None for the first step, or when nobody reached it


def parse_duration(text: str, parameter: str) -> float:
    """``"90"``, ``"90s"``, ``"30m"``, ``"1.5h"``, ``"7d"``, ``"2w"`` → seconds (> 0)."""
    match = _DURATION.match(text)
    if match is None:
        raise ParameterError(
            parameter,
            f"must be a duration such as 90s, 30m, 1h, 7d or a number of seconds, got {text!r}",
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_TIMEFRAME_SECONDS:
        raise ParameterError(
            parameter,
            f"must be longer than 0 seconds and at most {MAX_TIMEFRAME_SECONDS // 86400} "
            f"days, got {text!r}",
        )
    return seconds


def parse_timeframe(text: str, parameter: str = "timeframe") -> tuple[float, str]:
    """The original service's ``timeframe``: ``"1 hour"``, ``"24 hours"``, ``"7 days"``,
    ``"2 weeks"``, ``"1 month"`` (30 days) → (seconds, the text normalised, e.g. ``"7 days"``).

    Strict: a positive integer without sign or leading zero, spaces, and one unit among
    minute(s), hour(s), day(s), week(s), month(s) (any case); nothing before or after, at most
    ten years. Raises ParameterError naming ``parameter`` otherwise.
    """
    match = _TIMEFRAME.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ParameterError(
            parameter,
            "must be a positive whole number and a unit among minutes, hours, days, "
            f"weeks and months (30 days), such as '7 days', at most "
            f"{MAX_TIMEFRAME_SECONDS // 86400} days; got {shown!r}",
        )
    count, unit = int(match.group(1)), match.group(2).lower()
    seconds = count * TIMEFRAME_UNIT_SECONDS[unit]
    if seconds > MAX_TIMEFRAME_SECONDS:
        raise ParameterError(
            parameter, f"at most {MAX_TIMEFRAME_SECONDS // 86400} days, got {text!r}"
        )
    return float(seconds), f"{count} {unit}{'' if count == 1 else 's'}"


def _parse_time(text: str, parameter: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ParameterError(
            parameter, f"must be an RFC 3339 time such as 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise ParameterError(parameter, f"must say its time zone (e.g. a trailing Z), got {text!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
        moment = MAX_QUERY_TIME
    if not MIN_QUERY_TIME <= moment < MAX_QUERY_TIME:
        raise ParameterError(
            parameter,
            f"must be from {iso_datetime(MIN_QUERY_TIME)} to before "
            f"{iso_datetime(MAX_QUERY_TIME)}, got {text!r}",
        )
    return moment


def parse_funnel_query(
    args: Mapping[str, str],
    *,
    default_steps: Sequence[str],
    default_window: float,
    default_range: float,
    now: datetime,
    named: Mapping[str, Sequence[str]] | None = None,
) -> FunnelQuery:
    """The funnel asked for by the query string ``args``; raises ParameterError naming the first
    bad parameter. Unknown parameters are refused too (a typo should not go unnoticed).

    ``named`` holds the configured funnels ``funnel_name`` may pick. ``timeframe`` stands for
    ``from`` = now - timeframe and ``to`` = now, so it cannot come with either; ``funnel_name``
    names the steps, so it cannot come with ``steps``. ``window`` keeps its meaning either way.
    """
    unknown = sorted(set(args) - set(_PARAMETERS))
    if unknown:
        raise ParameterError(
            unknown[0], f"unknown parameter; the funnel takes {', '.join(_PARAMETERS)}"
        )
    raw_steps = args.get("steps")
    name = args.get("funnel_name")
    if name is not None:
        if raw_steps is not None:
            raise ParameterError(
                "funnel_name", "names the steps itself: send funnel_name or steps, not both"
            )
        known = dict(named or {})
        if name not in known:
            shown = name if len(name) <= _MAX_NAME_SHOWN else name[:_MAX_NAME_SHOWN] + "..."
            listed = ", ".join(known) if known else "none are configured (funnel.named)"
            raise ParameterError("funnel_name", f"unknown funnel {shown!r}; known: {listed}")
        steps = tuple(known[name])
    elif raw_steps is None:
        steps = tuple(default_steps)
    else:
        steps = tuple(part.strip() for part in raw_steps.split(","))
        if not raw_steps.strip() or any(not s for s in steps):
            raise ParameterError(
                "steps",
                f"must be event types separated by commas, without empty ones, got {raw_steps!r}",
            )
    if len(steps) > MAX_STEPS:
        raise ParameterError("steps", f"at most {MAX_STEPS} steps, got {len(steps)}")
    if any("\x00" in s for s in steps):  # PostgreSQL cannot compare it with text: a 503 otherwise
        raise ParameterError("steps", "an event type cannot contain the NUL character")
    long = [s for s in steps if len(s) > MAX_STEP_LENGTH]
    if long:
        raise ParameterError(
            "steps",
            f"an event type is at most {MAX_STEP_LENGTH} characters, got one of {len(long[0])}",
        )
    timeframe = None
    if "timeframe" in args:
        clash = next((p for p in ("from", "to") if p in args), None)
        if clash is not None:
            raise ParameterError(
                "timeframe",
                f"is the range up to now: send timeframe or from/to, not both ({clash} was sent)",
            )
        seconds, timeframe = parse_timeframe(args["timeframe"])
        end, start = now, now - timedelta(seconds=seconds)
    else:
        end = _parse_time(args["to"], "to") if "to" in args else now
        start = (
            _parse_time(args["from"], "from")
            if "from" in args
            else end - timedelta(seconds=default_range)
        )
    if start >= end:
        raise ParameterError(
            "from", f"must be before to ({iso_datetime(end)}), got {iso_datetime(start)}"
        )
    window = parse_duration(args["window"], "window") if "window" in args else default_window
    step_windows = None
    if "windows" in args:
        step_windows = tuple(parse_duration(part, "windows") for part in args["windows"].split(","))
        if len(step_windows) != len(steps) - 1:
            raise ParameterError(
                "windows",
                f"needs one duration per step after the first ({len(steps) - 1}), "
                f"got {len(step_windows)}",
            )
    return FunnelQuery(steps, start, end, window, step_windows, name=name, timeframe=timeframe)


def funnel_document(
    query: FunnelQuery, counted: Sequence[FunnelStep], *, computed_at: datetime, cached: bool
) -> dict[str, Any]:
    """The ``data`` of ``GET /api/analytics/funnel``."""
    first = counted[0].visitors if counted else 0
    steps = []
    for index, (name, step) in enumerate(zip(query.steps, counted, strict=True)):
        previous = counted[index - 1].visitors if index else step.visitors
        steps.append(
            {
                "step": name,
                "count": step.visitors,
                "conversionFromPrevious": round(step.visitors / previous, 6) if previous else 0.0,
                "conversionFromFirst": round(step.visitors / first, 6) if first else 0.0,
                "medianSecondsFromPrevious": (
                    None
                    if step.median_seconds_from_previous is None
                    else round(step.median_seconds_from_previous, 3)
                ),
            }
        )
    return {
        "name": query.name,
        "timeframe": query.timeframe,
        "steps": steps,
        "from": iso_datetime(query.start),
        "to": iso_datetime(query.end),
        "windowSeconds": query.window,
        "stepWindowsSeconds": list(query.step_windows) if query.step_windows else None,
        "computedAt": iso_datetime(computed_at),
        "cached": cached,
    }

"""How a raw value becomes a setting's typed value: a TOML value keeps its type (an int may stand
for a float, never a bool for an int); the text of an environment variable or override is parsed.
Both raise TypeError or ValueError for a value of the wrong kind; the field's validator judges
the rest."""

import json
from typing import Any

#: A list of strings; in TOML a list or one comma-separated string.
TOKENS = tuple[str, ...]
#: Named funnels: (name, steps) pairs in the order written (a tuple, so settings stay hashable).
NAMED_STEPS = tuple[tuple[str, tuple[str, ...]], ...]
#: What a value of each field type looks like, for fields whose validator says nothing better.
TYPE_RULES = {
    int: "must be an integer",
    float: "must be a number",
    bool: "must be true or false",
    str: "must be a string",
    TOKENS: "must be a list of strings or one comma-separated string",
    NAMED_STEPS: "must be a table of funnel name = list of event types "
    "(in the environment, a JSON object)",
}
# Spellings accepted for booleans in environment variables (case-insensitive).
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def named_steps(value: Any) -> NAMED_STEPS:
    """A TOML table (or parsed JSON object) of name -> list of strings as ``NAMED_STEPS``;
    raises TypeError for anything else."""
    if not isinstance(value, dict):
        raise TypeError(value)
    named = []
    for name, steps in value.items():
        if not isinstance(steps, list | tuple) or not all(type(step) is str for step in steps):
            raise TypeError(value)
        named.append((name, tuple(steps)))
    return tuple(named)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def from_text(text: str, kind: Any) -> Any:
    """Convert an environment / command-line string; raises ValueError."""
    if kind is bool:
        word = text.strip().lower()
        if word not in _TRUE_WORDS | _FALSE_WORDS:
            raise ValueError(text)
        return word in _TRUE_WORDS
    if kind == TOKENS:
        return _split(text)
    if kind == NAMED_STEPS:
        return named_steps(json.loads(text))  # a JSONDecodeError is a ValueError
    return text if kind is str else kind(text.strip())


def from_value(value: Any, kind: Any) -> Any:
    """Check a TOML value's type (bool is not accepted as int); raises TypeError."""
    if kind is float and type(value) is int:
        return float(value)
    if kind == TOKENS and isinstance(value, str):
        return _split(value)
    if kind == TOKENS and isinstance(value, list) and all(type(v) is str for v in value):
        return tuple(value)
    if kind == NAMED_STEPS:
        return named_steps(value)
    if type(value) is not kind:
        raise TypeError(value)
    return value

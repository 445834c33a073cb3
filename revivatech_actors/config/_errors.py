"""The one error a bad configuration raises, and the one its validators raise."""


class ConfigError(Exception):
    """A setting is unknown, has the wrong type or an impossible value, or a file is unreadable.

    ``key`` is the dotted setting ("section.key", "scoring.lead.quotes_weight"), or the file path /
    variable name; ``problem`` the reason and ``source`` where the value came from.
    ``str(err)`` is always exactly one line and never holds a secret.
    """

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key, self.problem, self.source = key, problem, source
        line = f"{key}: {problem}" + (f" (from {source})" if source else "")
        super().__init__(" ".join(line.splitlines()))


class Invalid(ValueError):
    """Raised by a field's validator; the loader adds the table and the source."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem

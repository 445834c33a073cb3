"""Logging: one line per record on stderr, as text or JSON, with the request id and no secret.

* ``log.format = "text"``: ``<time> <LEVEL> [worker-<I>[<pid>] ]<logger>: <message>``, then
  `` request_id=<id>`` when the record was logged while handling a request (or a batch holding
  its events).
* ``log.format = "json"``: one JSON object per line (python-json-logger): ``time`` (ISO 8601,
  UTC), ``level``, ``logger``, ``message``, ``request_id`` when known, ``worker`` and ``pid``
  under ``serve --workers N``, the record's ``extra`` fields (the access log's ``method``,
  ``path``, ``route``, ``status``, ``duration_ms``), and ``exc_info`` (the traceback as one
  string) for an error.

Whatever the format, every line passes :class:`Redactor` last: each known secret (admin tokens,
the JWT secret, the metrics token, passwords in URLs) and the value of any ``token=`` style
query parameter is replaced by ``***``, so a secret that reaches a message by mistake is still
never written.

The request id lives in a context variable (:data:`REQUEST_ID`): trio copies context variables
into the tasks a task starts, and messages that cross into actors carry the id of the request
that made them (``Submission.request_id``), which the actor sets while it works on them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

__all__ = ["REQUEST_ID", "Redactor", "configure_logging", "current_request_id"]

#: The id of the request being handled in this task, or None outside any request.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
#: Written instead of a secret.
MASK = "***"
#: Query parameters whose values are credentials wherever they appear in a logged URL.
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:token|access_token|api_key|apikey|password|secret)=)[^&;\s\"'#]+"
)
#: Secrets shorter than this are not searched for (an empty or one-letter "secret" would mask
#: every line); configured secrets are at least 16 characters anyway.
_MIN_SECRET = 4


def current_request_id() -> str | None:
    """The id of the request this task works for, or None."""
    return REQUEST_ID.get()


class Redactor:
    """Replaces known secrets and credential query parameters in a formatted line by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (a token generated after logging was set up)."""
        if len(secret) >= _MIN_SECRET and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # a secret containing another goes first

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return _SECRET_PARAMETER.sub(lambda m: m.group(1) + MASK, line)


class _RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class _TextFormatter(logging.Formatter):
    def __init__(self, fmt: str, redact: Redactor) -> None:
        super().__init__(fmt)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            first, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{first} request_id={request_id}{newline}{rest}"
        return self._redact(line)


class _JsonFormatter(JsonFormatter):
    def __init__(self, redact: Redactor, static_fields: dict[str, object]) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields=static_fields,
            json_ensure_ascii=False,
        )
        self._redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") is None:
            log_data.pop("request_id", None)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def configure_logging(
    level: str, *, fmt: str = "text", worker: int | None = None, secrets: Iterable[str] = ()
) -> Redactor:
    """Send every log record at ``level`` or above to stderr in ``fmt`` (``text`` or ``json``),
    replacing what was configured before. ``worker`` is the index under ``serve --workers N``:
    its lines name it, since every worker writes to one stderr. Returns the :class:`Redactor`,
    to which secrets made later are added."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        static: dict[str, object] = {} if worker is None else {"worker": worker}
        handler.setFormatter(_JsonFormatter(redact, static))
        if worker is not None:  # the pid of the process that wrote the line
            handler.addFilter(_PidFilter())
    else:
        who = "" if worker is None else f"worker-{worker}[%(process)d] "
        handler.setFormatter(
            _TextFormatter(f"%(asctime)s %(levelname)-7s {who}%(name)s: %(message)s", redact)
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return redact


class _PidFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = record.process
        return True

"""What storage messages may show: one line, and never a password."""

from __future__ import annotations

import urllib.parse

__all__ = ["first_line", "mask_password"]


def mask_password(url: str) -> str:
    """``url`` with the password (userinfo or ``password=`` query parameter) replaced by ``***``.

    Everything else is left exactly as written.
    """
    parts = urllib.parse.urlsplit(url)
    masked = url
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        masked = masked.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if parts.query:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = "&".join(
                f"{key}=***"
                if key == "password"
                else f"{urllib.parse.quote(key)}={urllib.parse.quote(value)}"
                for key, value in pairs
            )
            masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (driver messages span several)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__

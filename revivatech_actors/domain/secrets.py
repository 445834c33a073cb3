"""Configured secrets (admin tokens, write keys), plain or as SHA-256 hashes. Pure, no I/O.

A secret may be configured as itself or as ``sha256:<64 hex digits>``, the SHA-256 of it, so that a
configuration file need not hold the secret. Either way it is kept as its digest only, and a
presented value is matched by its digest against every configured one in constant time (each
comparison runs, so timing says nothing about which came close).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["HASH_PREFIX", "SecretSet", "digest", "mask_password", "secret_problem"]

HASH_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def digest(value: str) -> bytes:
    """The SHA-256 of ``value`` (UTF-8)."""
    return hashlib.sha256(value.encode()).digest()


def secret_problem(entry: str, min_length: int) -> str | None:
    """Why ``entry`` cannot be a configured secret, or None. Never quotes the entry."""
    if entry.startswith(HASH_PREFIX):
        if not _HEX_DIGEST.fullmatch(entry[len(HASH_PREFIX) :]):
            return f"a hashed one is {HASH_PREFIX} followed by the 64 hex digits of its SHA-256"
        return None
    if len(entry) < min_length:
        return f"must be at least {min_length} characters (or {HASH_PREFIX}<64 hex digits>)"
    return None


class SecretSet:
    """Configured secrets, kept as digests. ``entries`` are plain or ``sha256:<hex>`` (checked by
    :func:`secret_problem` when the settings were loaded; a bad hash here is a ValueError)."""

    __slots__ = ("_digests",)

    def __init__(self, entries: Iterable[str]) -> None:
        digests = []
        for entry in entries:
            if entry.startswith(HASH_PREFIX):
                hex_digits = entry[len(HASH_PREFIX) :]
                if not _HEX_DIGEST.fullmatch(hex_digits):
                    raise ValueError(f"a hashed secret is {HASH_PREFIX} followed by 64 hex digits")
                digests.append(bytes.fromhex(hex_digits))
            else:
                digests.append(digest(entry))
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:  # never the digests
        return f"SecretSet({len(self._digests)} secret(s))"

    def match(self, presented: str) -> bytes | None:
        """The digest of ``presented`` when it is one of the secrets, else None."""
        candidate = digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(candidate, known)
        return candidate if matched else None


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

"""Who is an admin: static tokens and the main app's JWTs, judged without I/O.

An admin credential is either one of ``auth.admin_tokens`` (each configured plain or as
``sha256:<hex>``; compared by digest in constant time, every token compared, so timing says
nothing about which came close, see :mod:`.secrets`) or, when ``auth.jwt_secret`` is
set, a JWT the main app signed with HS256 whose ``role`` claim is one of ``auth.jwt_admin_roles``.

The verdict separates *who you are* from *what you may do*, as the original admin UI relies on:
a credential that proves nothing (missing, unknown, bad signature, expired, no ``exp``,
``alg: none`` or any algorithm but HS256) is 401, and the UI refreshes its token; a valid JWT of
another role is 403. No reason ever quotes the credential.

An admin verdict names its ``subject``, the key of the credential's rate limit: ``token:`` and
part of the token's SHA-256 for a static token, ``jwt:`` and the JWT's ``sub`` (else ``userId``,
else part of the JWT's SHA-256) for a JWT. Never the credential itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs
import jwt

from .secrets import SecretSet, digest

__all__ = ["Access", "AdminCredentials", "Verdict", "judge_jwt"]

#: The only algorithm the main app signs with; anything else (``none`` included) is refused.
JWT_ALGORITHMS = ["HS256"]
#: A token without an expiry would be an admin credential forever.
JWT_REQUIRED_CLAIMS = ["exp"]
#: Hex digits of a credential's SHA-256 kept in a subject: enough to tell credentials apart.
SUBJECT_HEX_DIGITS = 32
#: Claims naming the JWT's user, in order of preference.
JWT_SUBJECT_CLAIMS = ("sub", "userId")


class Access(enum.Enum):
    ADMIN = "admin"
    MISSING = "missing"  # 401: no credential
    INVALID = "invalid"  # 401: a credential that proves nothing
    FORBIDDEN = "forbidden"  # 403: a valid JWT whose role is not an admin role

    @property
    def status(self) -> int:
        return {Access.ADMIN: 200, Access.FORBIDDEN: 403}.get(self, 401)


@attrs.frozen
class Verdict:
    access: Access
    reason: str  # for the answer; never the credential itself
    subject: str | None = None  # an admin's rate-limit key (module docstring); never the credential

    @property
    def is_admin(self) -> bool:
        return self.access is Access.ADMIN


MISSING = Verdict(Access.MISSING, "missing admin token")
INVALID = Verdict(Access.INVALID, "invalid admin token")


def judge_jwt(token: str, *, secret: str, roles: Iterable[str]) -> Verdict:
    """The verdict on ``token`` as the main app's JWT (HS256 with ``secret``, ``exp`` required,
    ``role`` in ``roles``). ``exp``, ``nbf`` and ``iat`` are checked against the clock, without
    leeway."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=JWT_ALGORITHMS, options={"require": JWT_REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError:
        return Verdict(Access.INVALID, "expired admin token")
    except jwt.MissingRequiredClaimError:
        return Verdict(
            Access.INVALID, "the token has no exp claim; only expiring JWTs are accepted"
        )
    except jwt.InvalidAlgorithmError:
        return Verdict(Access.INVALID, "the token is not signed with HS256")
    except jwt.InvalidSignatureError:
        return Verdict(Access.INVALID, "the token's signature does not verify")
    except (
        jwt.InvalidTokenError
    ):  # malformed, not yet valid, bad claim types, or a wrong static token
        return INVALID
    role = claims.get("role")
    if not isinstance(role, str) or role not in roles:
        return Verdict(
            Access.FORBIDDEN,
            "admin privileges required: the token's role is not an admin role "
            "(auth.jwt_admin_roles)",
        )
    for claim in JWT_SUBJECT_CLAIMS:
        subject = claims.get(claim)
        if isinstance(subject, str | int) and not isinstance(subject, bool) and str(subject):
            return Verdict(Access.ADMIN, "admin", f"jwt:{subject}")
    return Verdict(Access.ADMIN, "admin", "jwt:" + digest(token).hex()[:SUBJECT_HEX_DIGITS])


def _roles(roles: Iterable[str]) -> frozenset[str]:
    # attrs types a converter's argument from its signature: frozenset's own is generic
    return frozenset(roles)


@attrs.frozen
class AdminCredentials:
    """The configured admin credentials; :meth:`judge` decides on a presented one."""

    tokens: SecretSet = attrs.field(converter=SecretSet)  # plain or sha256:<hex>
    jwt_secret: str = ""  # empty: JWTs are not accepted
    jwt_roles: frozenset[str] = attrs.field(
        default=frozenset({"ADMIN", "SUPER_ADMIN"}), converter=_roles
    )

    def __repr__(self) -> str:  # never the secrets
        return (
            f"AdminCredentials(tokens={len(self.tokens)}, jwt={'on' if self.jwt_secret else 'off'})"
        )

    def is_static_token(self, presented: str) -> bool:
        return self.tokens.match(presented) is not None

    def judge(self, presented: str | None) -> Verdict:
        if not presented:
            return MISSING
        matched = self.tokens.match(presented)
        if matched is not None:
            return Verdict(Access.ADMIN, "admin", "token:" + matched.hex()[:SUBJECT_HEX_DIGITS])
        if self.jwt_secret:
            return judge_jwt(presented, secret=self.jwt_secret, roles=self.jwt_roles)
        return INVALID

"""People: users, their tenant memberships, invitations and their login tokens (DESIGN.md §2, §6).

Human credentials are high-entropy bearer tokens in the same format as API keys (a fixed prefix
and a checksummed base62 body), stored as a peppered HMAC like every key: ``krses_`` for a
login session, ``krimp_`` for an impersonation session, ``krpat_`` for a personal access token
and ``krinv_`` for an invitation (``keys.RESERVED_PREFIXES`` keeps tenants' keys off them).
Passwords are the only low-entropy secret; they are hashed with argon2id outside the domain
(``services.ports.PasswordHasher``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

SESSION_PREFIX: Final = "krses"
IMPERSONATION_PREFIX: Final = "krimp"
PAT_PREFIX: Final = "krpat"
INVITATION_PREFIX: Final = "krinv"

MAX_EMAIL_LENGTH: Final = 254
MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 1024
# Deliberately loose: one @, no whitespace, a dot in the domain. Deliverability is the
# invitation's job; this only keeps obvious garbage (and header-injection characters) out.
_EMAIL_RE: Final = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")


class TenantRole(StrEnum):
    """A user's role in one tenant."""

    ADMIN = "admin"
    MEMBER = "member"


class TokenKind(StrEnum):
    """What a user token is for."""

    SESSION = "session"
    IMPERSONATION = "impersonation"
    PERSONAL = "personal"


TOKEN_PREFIXES: Final = {
    TokenKind.SESSION: SESSION_PREFIX,
    TokenKind.IMPERSONATION: IMPERSONATION_PREFIX,
    TokenKind.PERSONAL: PAT_PREFIX,
}


def token_kind_of(presented: str) -> TokenKind | None:
    """The kind of user token ``presented`` looks like, from its prefix (no store asked)."""
    prefix = presented.partition("_")[0]
    for kind, known in TOKEN_PREFIXES.items():
        if prefix == known:
            return kind
    return None


def check_email(email: str) -> str:
    """Normalise an email address for storage and lookup (trimmed, lower-cased).

    Raises:
        ValueError: Not an email address, or longer than 254 characters.
    """
    normalised = email.strip().lower()
    if len(normalised) > MAX_EMAIL_LENGTH or _EMAIL_RE.fullmatch(normalised) is None:
        raise ValueError("email must be an email address (at most 254 characters)")
    return normalised


def check_password(password: str) -> str:
    """Check a new password's length (12 to 1,024 characters).

    Raises:
        ValueError: Too short or too long (the message never contains the password).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


@dataclass(frozen=True, slots=True)
class User:
    """A human. Never carries the password hash (the repository keeps it apart)."""

    id: str
    email: str
    name: str
    is_platform_admin: bool
    created_at: datetime
    has_password: bool = False


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's role in one tenant."""

    tenant_id: str
    user_id: str
    role: TenantRole
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    """A membership joined with its user, as member lists show it."""

    membership: Membership
    user: User

    @property
    def id(self) -> str:
        """The member's user id (member lists page by it)."""
        return self.user.id


@dataclass(frozen=True, slots=True)
class Invitation:
    """A pending membership by email; its single-use token is stored only as a digest."""

    id: str
    tenant_id: str
    email: str
    role: TenantRole
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """``pending``, ``accepted``, ``revoked`` or ``expired`` at ``now``."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "pending"


@dataclass(frozen=True, slots=True)
class UserToken:
    """A login session, impersonation session or personal access token (never its secret).

    ``impersonator_id`` is set on impersonation sessions only: the platform admin (a user id)
    or platform service account (``sa_…``) acting as ``user_id``.
    """

    id: str
    user_id: str
    kind: TokenKind
    name: str | None
    start: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    impersonator_id: str | None = None
    impersonator_type: str | None = None

    def is_live(self, now: datetime) -> bool:
        """Whether the token still authenticates at ``now``."""
        return self.revoked_at is None and now < self.expires_at

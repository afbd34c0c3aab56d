"""Domain objects: frozen values, no ORM and no wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.permissions import Permission
from keyrack.domain.policy import KeyPolicy
from keyrack.domain.ratelimit import RateLimit

if TYPE_CHECKING:
    # Only an annotation here: ``limits`` imports ``verification``, which imports this module.
    from keyrack.domain.limits import LimitPlan

JsonObject = dict[str, object]

MAX_NAME_LENGTH: Final = 255
MAX_DESCRIPTION_LENGTH: Final = 1024
MAX_META_BYTES: Final = 16 * 1024
MAX_META_DEPTH: Final = 8
DEFAULT_LEASE_TTL_SECONDS: Final = 60
MAX_LEASE_TTL_SECONDS: Final = 86_400
MAX_CONCURRENCY: Final = 1_000_000


class KeyStatus(StrEnum):
    """Lifecycle state of an API key; ``revoked`` is final."""

    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Tenant:
    """The isolation boundary: every tenant-owned row carries its id."""

    id: str
    name: str
    slug: str
    key_prefix: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Limits:
    """The counters a key or an identity carries (identities use only rate limits and credits).

    Attributes:
        rate_limits: Named limits, names distinct.
        credits: The balance configuration and its last known snapshot, or ``None``.
        credits_version: Bumped by every explicit set of the balance (see ``domain.limits``).
        budget: Spending cap and its last known snapshot, or ``None``.
        max_concurrency: Concurrent leases allowed, or ``None`` for no limit.
        lease_ttl_seconds: How long an unreleased lease holds its slot.
    """

    rate_limits: tuple[RateLimit, ...] = ()
    credits: Credits | None = None
    credits_version: int = 0
    budget: Budget | None = None
    max_concurrency: int | None = None
    lease_ttl_seconds: int = DEFAULT_LEASE_TTL_SECONDS

    @property
    def is_empty(self) -> bool:
        """Whether verify has nothing to charge."""
        return (
            not self.rate_limits
            and (self.credits is None or self.credits.remaining is None)
            and self.budget is None
            and self.max_concurrency is None
        )


NO_LIMITS: Final = Limits()
NO_POLICY: Final = KeyPolicy()


@dataclass(frozen=True, slots=True)
class Identity:
    """The platform's own customer inside a tenant; its limits are shared by all its keys."""

    id: str
    tenant_id: str
    external_id: str
    meta: JsonObject
    limits: Limits
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class PermissionDef:
    """A permission slug of a tenant's API keys."""

    id: str
    tenant_id: str
    slug: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Role:
    """A named bundle of permission slugs."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    permissions: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An end-user API key as management sees it (never its secret or digest)."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    start: str
    status: KeyStatus
    expires_at: datetime | None
    owner_id: str | None
    identity_id: str | None
    meta: JsonObject
    permissions: tuple[str, ...]
    roles: tuple[str, ...]
    system: bool
    recoverable: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None = None
    version: int = 1
    policy: KeyPolicy = NO_POLICY
    limits: Limits = NO_LIMITS


@dataclass(frozen=True, slots=True)
class KeySecret:
    """One secret of a key: its digest, pepper version and end of validity (rotation grace)."""

    id: str
    key_id: str
    tenant_id: str
    digest: bytes = field(repr=False)
    pepper_version: int
    start: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Everything verify needs about one presented secret, loaded in one query and cached.

    Times are epoch seconds so the hot path compares floats. ``valid_until`` is the earlier of
    the key's expiry and the secret's rotation grace end; ``expired_by_rotation`` tells which.
    """

    key_id: str
    tenant_id: str
    secret_id: str
    pepper_version: int
    status: KeyStatus
    valid_until: float | None
    name: str
    owner_id: str | None
    identity_id: str | None
    meta: JsonObject
    permissions: tuple[str, ...]
    roles: tuple[str, ...]
    expires_at: datetime | None
    granted: frozenset[str] = frozenset()
    """Direct permissions plus those of the key's roles, for permission queries."""
    policy: KeyPolicy | None = None
    """``None`` when the key has no network or token policy (verify skips the step)."""
    plan: LimitPlan | None = None
    """The key's limits merged with its identity's; ``None`` when there is nothing to charge."""
    identity: IdentityRef | None = None


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """The identity a verified key belongs to, as verify reports it."""

    id: str
    external_id: str
    meta: JsonObject


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A machine principal with explicit management permissions, for one tenant or the platform."""

    id: str
    tenant_id: str | None
    name: str
    permissions: frozenset[Permission]
    is_bootstrap: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RootKey:
    """A credential of a service account for the management API (never its secret)."""

    id: str
    service_account_id: str
    tenant_id: str | None
    start: str
    created_at: datetime
    revoked_at: datetime | None

"""API key wire models (DESIGN.md §11). The secret appears only in ``KeyCreated``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StrictBool, StrictInt, StrictStr

from keyrack.domain.models import MAX_CONCURRENCY, ApiKey, KeyStatus
from keyrack.domain.policy import MAX_ENTRIES, MAX_ENTRY_LENGTH, MAX_TOKENS
from keyrack.schemas.common import Description, Meta, Name, RequestModel, ShortText
from keyrack.schemas.limits import (
    DEFAULT_LEASE_TTL,
    BudgetSpec,
    CreditsSpec,
    LeaseTtl,
    RateLimits,
    RateLimitSpec,
)

Slugs = Annotated[list[ShortText], Field(max_length=1000)]
Entries = Annotated[
    list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_ENTRY_LENGTH)]],
    Field(max_length=MAX_ENTRIES),
]
MaxTokens = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]
MaxConcurrency = Annotated[StrictInt, Field(ge=1, le=MAX_CONCURRENCY)]
IdentityId = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class KeyCreate(RequestModel):
    """Create an API key in a tenant."""

    name: Name
    description: Description | None = None
    expires_at: AwareDatetime | None = None
    owner_id: ShortText | None = None
    meta: Meta = Field(default_factory=dict)
    permissions: Slugs = Field(default_factory=list)
    roles: Slugs = Field(default_factory=list)
    identity_id: IdentityId | None = None
    ip_allowlist: Entries = Field(default_factory=list)
    allowed_origins: Entries = Field(default_factory=list)
    allowed_endpoints: Entries = Field(default_factory=list)
    blocked_endpoints: Entries = Field(default_factory=list)
    require_tls: StrictBool = False
    max_tokens_per_request: MaxTokens | None = None
    max_concurrency: MaxConcurrency | None = None
    lease_ttl_seconds: LeaseTtl = DEFAULT_LEASE_TTL
    rate_limits: RateLimits = Field(default_factory=list)
    credits: CreditsSpec | None = None
    budget: BudgetSpec | None = None


class KeyUpdate(RequestModel):
    """Change a key; fields left out stay as they are, ``null`` clears a nullable field."""

    name: Name | None = None
    description: Description | None = None
    expires_at: AwareDatetime | None = None
    owner_id: ShortText | None = None
    meta: Meta | None = None
    permissions: Slugs | None = None
    roles: Slugs | None = None
    identity_id: IdentityId | None = None
    ip_allowlist: Entries | None = None
    allowed_origins: Entries | None = None
    allowed_endpoints: Entries | None = None
    blocked_endpoints: Entries | None = None
    require_tls: StrictBool | None = None
    max_tokens_per_request: MaxTokens | None = None
    max_concurrency: MaxConcurrency | None = None
    lease_ttl_seconds: LeaseTtl | None = None
    rate_limits: RateLimits | None = None
    credits: CreditsSpec | None = None
    """A new balance and refill policy: an explicit set of the balance."""
    budget: BudgetSpec | None = None


class KeyRotate(RequestModel):
    """Rotate a key's secret; the old secret stays valid ``grace_seconds`` (0 … 31 days)."""

    grace_seconds: StrictInt = Field(default=0, ge=0, le=31 * 24 * 3600)


class KeyRead(BaseModel):
    """An API key as management sees it: never its secret or digest."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    start: str
    status: KeyStatus
    expires_at: datetime | None
    owner_id: str | None
    identity_id: str | None
    meta: dict[str, object]
    permissions: list[str]
    roles: list[str]
    system: bool
    recoverable: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    ip_allowlist: list[str]
    allowed_origins: list[str]
    allowed_endpoints: list[str]
    blocked_endpoints: list[str]
    require_tls: bool
    max_tokens_per_request: int | None
    max_concurrency: int | None
    lease_ttl_seconds: int
    rate_limits: list[RateLimitSpec]
    credits: CreditsSpec | None
    """The configuration and the balance as last written (live balance: ``…/credits``)."""
    budget: BudgetSpec | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyRead:
        """Render a domain key."""
        policy = key.policy
        limits = key.limits
        return cls(
            ip_allowlist=list(policy.ip_allowlist),
            allowed_origins=list(policy.allowed_origins),
            allowed_endpoints=list(policy.allowed_endpoints),
            blocked_endpoints=list(policy.blocked_endpoints),
            require_tls=policy.require_tls,
            max_tokens_per_request=policy.max_tokens_per_request,
            max_concurrency=limits.max_concurrency,
            lease_ttl_seconds=limits.lease_ttl_seconds,
            rate_limits=[RateLimitSpec.of(limit) for limit in limits.rate_limits],
            credits=None if limits.credits is None else CreditsSpec.of(limits.credits),
            budget=None if limits.budget is None else BudgetSpec.of(limits.budget),
            id=key.id,
            tenant_id=key.tenant_id,
            name=key.name,
            description=key.description,
            start=key.start,
            status=key.status,
            expires_at=key.expires_at,
            owner_id=key.owner_id,
            identity_id=key.identity_id,
            meta=key.meta,
            permissions=list(key.permissions),
            roles=list(key.roles),
            system=key.system,
            recoverable=key.recoverable,
            created_at=key.created_at,
            updated_at=key.updated_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(BaseModel):
    """A new or rotated key with its secret: the only time the secret is shown."""

    key: KeyRead
    secret: str

"""Identity wire models: the platform's own customers, whose limits their keys share."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from keyrack.domain.models import Identity
from keyrack.schemas.common import Meta, RequestModel, ShortText
from keyrack.schemas.limits import CreditsRead, CreditsSpec, RateLimits, RateLimitSpec


class IdentityCreate(RequestModel):
    """Create an identity; its rate limits and credits are shared by all its keys."""

    external_id: ShortText
    meta: Meta = Field(default_factory=dict)
    rate_limits: RateLimits = Field(default_factory=list)
    credits: CreditsSpec | None = None


class IdentityUpdate(RequestModel):
    """Change an identity; fields left out stay as they are.

    ``rate_limits`` replaces the whole list. ``credits: null`` removes the credits; an object
    replaces the configuration and sets the balance to its ``remaining``.
    """

    external_id: ShortText | None = None
    meta: Meta | None = None
    rate_limits: RateLimits | None = None
    credits: CreditsSpec | None = None


class IdentityRead(BaseModel):
    """An identity; ``credits.remaining`` is the balance as last written to the database."""

    id: str
    tenant_id: str
    external_id: str
    meta: dict[str, object]
    rate_limits: list[RateLimitSpec]
    credits: CreditsRead | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, identity: Identity) -> IdentityRead:
        """Render a domain identity."""
        credits = identity.limits.credits
        return cls(
            id=identity.id,
            tenant_id=identity.tenant_id,
            external_id=identity.external_id,
            meta=identity.meta,
            rate_limits=[RateLimitSpec.of(limit) for limit in identity.limits.rate_limits],
            credits=None if credits is None else CreditsRead.of(credits.remaining, credits.refill),
            created_at=identity.created_at,
            updated_at=identity.updated_at,
        )

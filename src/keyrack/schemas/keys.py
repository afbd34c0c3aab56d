"""API key wire models (DESIGN.md §11). The secret appears only in ``KeyCreated``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StrictInt

from keyrack.domain.models import ApiKey, KeyStatus
from keyrack.schemas.common import Description, Meta, Name, RequestModel, ShortText

Slugs = Annotated[list[ShortText], Field(max_length=1000)]


class KeyCreate(RequestModel):
    """Create an API key in a tenant."""

    name: Name
    description: Description | None = None
    expires_at: AwareDatetime | None = None
    owner_id: ShortText | None = None
    meta: Meta = Field(default_factory=dict)
    permissions: Slugs = Field(default_factory=list)
    roles: Slugs = Field(default_factory=list)


class KeyUpdate(RequestModel):
    """Change a key; fields left out stay as they are, ``null`` clears a nullable field."""

    name: Name | None = None
    description: Description | None = None
    expires_at: AwareDatetime | None = None
    owner_id: ShortText | None = None
    meta: Meta | None = None
    permissions: Slugs | None = None
    roles: Slugs | None = None


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

    @classmethod
    def of(cls, key: ApiKey) -> KeyRead:
        """Render a domain key."""
        return cls(
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

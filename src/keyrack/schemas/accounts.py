"""Service account and root key wire models (DESIGN.md §11)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from keyrack.domain.models import RootKey, ServiceAccount
from keyrack.domain.permissions import Permission
from keyrack.schemas.common import Name, RequestModel


class ServiceAccountCreate(RequestModel):
    """Create a service account holding exactly these permissions."""

    name: Name
    permissions: Annotated[list[Permission], Field(max_length=64)]


class ServiceAccountRead(BaseModel):
    """A service account (``tenant_id`` is null for platform accounts)."""

    id: str
    tenant_id: str | None
    name: str
    permissions: list[Permission]
    created_at: datetime

    @classmethod
    def of(cls, account: ServiceAccount) -> ServiceAccountRead:
        """Render a domain account."""
        return cls(
            id=account.id,
            tenant_id=account.tenant_id,
            name=account.name,
            permissions=sorted(account.permissions),
            created_at=account.created_at,
        )


class ServiceAccountCreated(BaseModel):
    """A new service account and its first root key, shown once."""

    service_account: ServiceAccountRead
    root_key: str


class RootKeyRead(BaseModel):
    """A root key's public facts (never the key)."""

    id: str
    service_account_id: str
    tenant_id: str | None
    start: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, root_key: RootKey) -> RootKeyRead:
        """Render a domain root key."""
        return cls(
            id=root_key.id,
            service_account_id=root_key.service_account_id,
            tenant_id=root_key.tenant_id,
            start=root_key.start,
            created_at=root_key.created_at,
            revoked_at=root_key.revoked_at,
        )


class RootKeyCreated(BaseModel):
    """An additional root key with its secret, shown once."""

    root_key: RootKeyRead
    secret: str

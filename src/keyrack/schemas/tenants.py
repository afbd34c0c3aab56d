"""Tenant wire models (DESIGN.md §11)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, StrictStr

from keyrack.domain.models import Tenant
from keyrack.schemas.common import Name, RequestModel, Slug


class TenantCreate(RequestModel):
    """Create a tenant; ``slug`` defaults to one derived from the name, ``key_prefix`` to ``kr``."""

    name: Name
    slug: Slug | None = None
    key_prefix: StrictStr | None = None


class TenantUpdate(RequestModel):
    """Change a tenant's name, slug or key prefix (the prefix applies to keys created later)."""

    name: Name | None = None
    slug: Slug | None = None
    key_prefix: StrictStr | None = None


class TenantRead(BaseModel):
    """A tenant."""

    id: str
    name: str
    slug: str
    key_prefix: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantRead:
        """Render a domain tenant."""
        return cls(
            id=tenant.id,
            name=tenant.name,
            slug=tenant.slug,
            key_prefix=tenant.key_prefix,
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )

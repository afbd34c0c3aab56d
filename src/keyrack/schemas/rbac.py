"""Permission and role wire models (DESIGN.md §2 "Permission / role", §11 shapes and bounds).

Permission slugs follow the name grammar of ``keyrack.domain.permission_query``: lower-case
segments separated by dots, optionally ending in ``.*`` (``documents.*``), or ``*`` alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StrictStr, model_validator

from keyrack.domain.models import MAX_NAME_LENGTH, PermissionDef, Role
from keyrack.domain.permission_query import is_permission_name
from keyrack.schemas.common import Description, Name, RequestModel


def _check_permission_name(slug: str) -> str:
    if not is_permission_name(slug):
        raise ValueError(
            "not a permission name: lower-case segments of a-z, 0-9, '_', ':' and '-' "
            "separated by '.', optionally ending in '.*' (or '*' alone)"
        )
    return slug


PermissionName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_NAME_LENGTH, examples=["chat.write", "documents.*"]),
    AfterValidator(_check_permission_name),
]
PermissionNames = Annotated[list[PermissionName], Field(max_length=1000)]


class PermissionCreate(RequestModel):
    """Create a permission slug in a tenant (keys and roles also create them on first use)."""

    slug: PermissionName
    description: Description | None = None


class PermissionRead(BaseModel):
    """A permission of a tenant's API keys."""

    id: str
    tenant_id: str
    slug: str
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, permission: PermissionDef) -> PermissionRead:
        """Render a domain permission."""
        return cls(
            id=permission.id,
            tenant_id=permission.tenant_id,
            slug=permission.slug,
            description=permission.description,
            created_at=permission.created_at,
        )


class RoleCreate(RequestModel):
    """Create a role: a named bundle of permissions (missing ones are created)."""

    name: Name
    description: Description | None = None
    permissions: PermissionNames = Field(default_factory=list)


class RoleUpdate(RequestModel):
    """Change a role; fields left out stay as they are, ``null`` clears the description.

    ``permissions`` replaces the whole list. A new ``name`` is written to every key holding
    the role.
    """

    name: Name | None = None
    description: Description | None = None
    permissions: PermissionNames | None = None

    @model_validator(mode="after")
    def _not_null(self) -> RoleUpdate:
        for field in ("name", "permissions"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class RoleRead(BaseModel):
    """A role of a tenant's API keys."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    permissions: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, role: Role) -> RoleRead:
        """Render a domain role."""
        return cls(
            id=role.id,
            tenant_id=role.tenant_id,
            name=role.name,
            description=role.description,
            permissions=list(role.permissions),
            created_at=role.created_at,
            updated_at=role.updated_at,
        )

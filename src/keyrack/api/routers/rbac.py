"""``/v1/tenants/{tenant_id}/permissions`` and ``/v1/tenants/{tenant_id}/roles``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    RuntimeDep,
    TenantIdPath,
)
from keyrack.schemas.common import Page
from keyrack.schemas.rbac import (
    PermissionCreate,
    PermissionRead,
    RoleCreate,
    RoleRead,
    RoleUpdate,
)
from keyrack.services.rbac import NewPermission, NewRole, RoleChanges

PermissionIdPath = Annotated[str, Path(max_length=64, description="A permission id (`perm_…`).")]
RoleIdPath = Annotated[str, Path(max_length=64, description="A role id (`role_…`).")]

permissions = APIRouter(prefix="/v1/tenants/{tenant_id}/permissions", tags=["permissions"])
roles = APIRouter(prefix="/v1/tenants/{tenant_id}/roles", tags=["roles"])


@permissions.post("", status_code=201)
async def create_permission(
    tenant_id: TenantIdPath, body: PermissionCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> PermissionRead:
    """Create a permission slug (`chat.write`, `documents.*`) in the tenant."""
    spec = NewPermission(slug=body.slug, description=body.description)
    return PermissionRead.of(await runtime.rbac.create_permission(actor, tenant_id, spec))


@permissions.get("")
async def list_permissions(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[PermissionRead]:
    """List the tenant's permissions, oldest first."""
    page = await runtime.rbac.list_permissions(actor, tenant_id, limit=limit, cursor=cursor)
    return Page(items=[PermissionRead.of(p) for p in page.items], next_cursor=page.next_cursor)


@permissions.get("/{permission_id}")
async def get_permission(
    tenant_id: TenantIdPath,
    permission_id: PermissionIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> PermissionRead:
    """Read one permission."""
    return PermissionRead.of(await runtime.rbac.get_permission(actor, tenant_id, permission_id))


@permissions.delete("/{permission_id}", status_code=204)
async def delete_permission(
    tenant_id: TenantIdPath,
    permission_id: PermissionIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> Response:
    """Delete a permission; it is taken off every role and key of the tenant."""
    await runtime.rbac.delete_permission(actor, tenant_id, permission_id)
    return Response(status_code=204)


@roles.post("", status_code=201)
async def create_role(
    tenant_id: TenantIdPath, body: RoleCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> RoleRead:
    """Create a role; permissions it names that the tenant lacks are created."""
    spec = NewRole(
        name=body.name, description=body.description, permissions=tuple(body.permissions)
    )
    return RoleRead.of(await runtime.rbac.create_role(actor, tenant_id, spec))


@roles.get("")
async def list_roles(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[RoleRead]:
    """List the tenant's roles, oldest first."""
    page = await runtime.rbac.list_roles(actor, tenant_id, limit=limit, cursor=cursor)
    return Page(items=[RoleRead.of(r) for r in page.items], next_cursor=page.next_cursor)


@roles.get("/{role_id}")
async def get_role(
    tenant_id: TenantIdPath, role_id: RoleIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> RoleRead:
    """Read one role."""
    return RoleRead.of(await runtime.rbac.get_role(actor, tenant_id, role_id))


@roles.patch("/{role_id}")
async def update_role(
    tenant_id: TenantIdPath,
    role_id: RoleIdPath,
    body: RoleUpdate,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> RoleRead:
    """Change a role's name, description or permissions (keys holding it follow)."""
    values: dict[str, object] = {
        name: tuple(value) if isinstance(value := getattr(body, name), list) else value
        for name in body.model_fields_set
    }
    changes = RoleChanges(**values)  # type: ignore[arg-type]  # field types are checked by RoleUpdate
    return RoleRead.of(await runtime.rbac.update_role(actor, tenant_id, role_id, changes))


@roles.delete("/{role_id}", status_code=204)
async def delete_role(
    tenant_id: TenantIdPath, role_id: RoleIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Delete a role; it is taken off every key of the tenant."""
    await runtime.rbac.delete_role(actor, tenant_id, role_id)
    return Response(status_code=204)


router = APIRouter()
router.include_router(permissions)
router.include_router(roles)

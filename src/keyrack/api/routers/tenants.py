"""``/v1/tenants``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    RuntimeDep,
    TenantIdPath,
)
from keyrack.schemas.common import Page
from keyrack.schemas.tenants import TenantCreate, TenantRead, TenantUpdate
from keyrack.services.tenants import TenantChanges

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


@router.post("", status_code=201)
async def create_tenant(body: TenantCreate, actor: PrincipalDep, runtime: RuntimeDep) -> TenantRead:
    """Create a tenant (platform callers with `tenants.write`)."""
    tenant = await runtime.tenants.create(
        actor, name=body.name, slug=body.slug, key_prefix=body.key_prefix
    )
    return TenantRead.of(tenant)


@router.get("")
async def list_tenants(
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[TenantRead]:
    """List tenants; a tenant-scoped caller sees only its own."""
    page = await runtime.tenants.list(actor, limit=limit, cursor=cursor)
    return Page(items=[TenantRead.of(t) for t in page.items], next_cursor=page.next_cursor)


@router.get("/{tenant_id}")
async def get_tenant(
    tenant_id: TenantIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> TenantRead:
    """Read one tenant."""
    return TenantRead.of(await runtime.tenants.get(actor, tenant_id))


@router.patch("/{tenant_id}")
async def update_tenant(
    tenant_id: TenantIdPath, body: TenantUpdate, actor: PrincipalDep, runtime: RuntimeDep
) -> TenantRead:
    """Rename a tenant or change its slug or key prefix."""
    changes = TenantChanges(name=body.name, slug=body.slug, key_prefix=body.key_prefix)
    return TenantRead.of(await runtime.tenants.update(actor, tenant_id, changes))


@router.delete("/{tenant_id}", status_code=204)
async def delete_tenant(
    tenant_id: TenantIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Delete a tenant and everything it owns (platform callers)."""
    await runtime.tenants.delete(actor, tenant_id)
    return Response(status_code=204)

"""Service accounts and root keys, platform-wide and per tenant.

Platform accounts live at ``/v1/service-accounts``, a tenant's at
``/v1/tenants/{tenant_id}/service-accounts``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    AccountIdPath,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    RootKeyIdPath,
    RuntimeDep,
    TenantIdPath,
)
from keyrack.domain.permissions import Principal
from keyrack.runtime import Runtime
from keyrack.schemas.accounts import (
    RootKeyCreated,
    RootKeyRead,
    ServiceAccountCreate,
    ServiceAccountCreated,
    ServiceAccountRead,
)
from keyrack.schemas.common import Page

router = APIRouter(tags=["service accounts"])


async def _create(
    runtime: Runtime, actor: Principal, tenant_id: str | None, body: ServiceAccountCreate
) -> ServiceAccountCreated:
    account, secret = await runtime.accounts.create(
        actor, tenant_id, name=body.name, permissions=frozenset(body.permissions)
    )
    return ServiceAccountCreated(service_account=ServiceAccountRead.of(account), root_key=secret)


async def _list(
    runtime: Runtime, actor: Principal, tenant_id: str | None, limit: int, cursor: str | None
) -> Page[ServiceAccountRead]:
    page = await runtime.accounts.list(actor, tenant_id, limit=limit, cursor=cursor)
    return Page(items=[ServiceAccountRead.of(a) for a in page.items], next_cursor=page.next_cursor)


async def _add_root_key(
    runtime: Runtime, actor: Principal, tenant_id: str | None, account_id: str
) -> RootKeyCreated:
    root_key, secret = await runtime.accounts.add_root_key(actor, tenant_id, account_id)
    return RootKeyCreated(root_key=RootKeyRead.of(root_key), secret=secret)


async def _list_root_keys(
    runtime: Runtime, actor: Principal, tenant_id: str | None, account_id: str
) -> Page[RootKeyRead]:
    keys = await runtime.accounts.list_root_keys(actor, tenant_id, account_id)
    return Page(items=[RootKeyRead.of(k) for k in keys], next_cursor=None)


# Platform scope -------------------------------------------------------------------------------


@router.post("/v1/service-accounts", status_code=201)
async def create_platform_account(
    body: ServiceAccountCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> ServiceAccountCreated:
    """Create a platform service account; its first root key is shown once."""
    return await _create(runtime, actor, None, body)


@router.get("/v1/service-accounts")
async def list_platform_accounts(
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[ServiceAccountRead]:
    """List platform service accounts."""
    return await _list(runtime, actor, None, limit, cursor)


@router.get("/v1/service-accounts/{account_id}")
async def get_platform_account(
    account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> ServiceAccountRead:
    """Read a platform service account."""
    return ServiceAccountRead.of(await runtime.accounts.get(actor, None, account_id))


@router.get("/v1/service-accounts/{account_id}/root-keys")
async def list_platform_root_keys(
    account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Page[RootKeyRead]:
    """List a platform account's root keys (starts only)."""
    return await _list_root_keys(runtime, actor, None, account_id)


@router.post("/v1/service-accounts/{account_id}/root-keys", status_code=201)
async def add_platform_root_key(
    account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> RootKeyCreated:
    """Issue another root key for a platform account (shown once)."""
    return await _add_root_key(runtime, actor, None, account_id)


@router.delete("/v1/service-accounts/{account_id}/root-keys/{root_key_id}", status_code=204)
async def revoke_platform_root_key(
    account_id: AccountIdPath, root_key_id: RootKeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Revoke a platform account's root key."""
    await runtime.accounts.revoke_root_key(actor, None, account_id, root_key_id)
    return Response(status_code=204)


# Tenant scope ---------------------------------------------------------------------------------

_T = "/v1/tenants/{tenant_id}/service-accounts"


@router.post(_T, status_code=201)
async def create_tenant_account(
    tenant_id: TenantIdPath, body: ServiceAccountCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> ServiceAccountCreated:
    """Create a service account of one tenant; its first root key is shown once."""
    return await _create(runtime, actor, tenant_id, body)


@router.get(_T)
async def list_tenant_accounts(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[ServiceAccountRead]:
    """List a tenant's service accounts."""
    return await _list(runtime, actor, tenant_id, limit, cursor)


@router.get(_T + "/{account_id}")
async def get_tenant_account(
    tenant_id: TenantIdPath, account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> ServiceAccountRead:
    """Read a tenant's service account."""
    return ServiceAccountRead.of(await runtime.accounts.get(actor, tenant_id, account_id))


@router.get(_T + "/{account_id}/root-keys")
async def list_tenant_root_keys(
    tenant_id: TenantIdPath, account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Page[RootKeyRead]:
    """List a tenant account's root keys (starts only)."""
    return await _list_root_keys(runtime, actor, tenant_id, account_id)


@router.post(_T + "/{account_id}/root-keys", status_code=201)
async def add_tenant_root_key(
    tenant_id: TenantIdPath, account_id: AccountIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> RootKeyCreated:
    """Issue another root key for a tenant account (shown once)."""
    return await _add_root_key(runtime, actor, tenant_id, account_id)


@router.delete(_T + "/{account_id}/root-keys/{root_key_id}", status_code=204)
async def revoke_tenant_root_key(
    tenant_id: TenantIdPath,
    account_id: AccountIdPath,
    root_key_id: RootKeyIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> Response:
    """Revoke a tenant account's root key."""
    await runtime.accounts.revoke_root_key(actor, tenant_id, account_id, root_key_id)
    return Response(status_code=204)

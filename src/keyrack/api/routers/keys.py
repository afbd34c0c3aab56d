"""``/v1/tenants/{tenant_id}/keys``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    KeyIdPath,
    LimitQuery,
    PrincipalDep,
    RuntimeDep,
    TenantIdPath,
)
from keyrack.domain.models import KeyStatus
from keyrack.errors import InvalidInput
from keyrack.schemas.common import Page
from keyrack.schemas.keys import KeyCreate, KeyCreated, KeyRead, KeyRotate, KeyUpdate
from keyrack.services.keys import KeyChanges, NewKey
from keyrack.services.ports import KeyFilter

router = APIRouter(prefix="/v1/tenants/{tenant_id}/keys", tags=["keys"])

_NOT_NULL = ("name", "meta", "permissions", "roles")


def _changes(body: KeyUpdate) -> KeyChanges:
    values: dict[str, object] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name in _NOT_NULL:
            raise InvalidInput(f"{name} cannot be null")
        values[name] = tuple(value) if isinstance(value, list) else value
    return KeyChanges(**values)  # type: ignore[arg-type]  # field types are checked by KeyUpdate


@router.post("", status_code=201)
async def create_key(
    tenant_id: TenantIdPath, body: KeyCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyCreated:
    """Create a key; the secret in the answer is shown this once."""
    spec = NewKey(
        name=body.name,
        description=body.description,
        expires_at=body.expires_at,
        owner_id=body.owner_id,
        meta=body.meta,
        permissions=tuple(body.permissions),
        roles=tuple(body.roles),
    )
    key, secret = await runtime.keys.create(actor, tenant_id, spec)
    return KeyCreated(key=KeyRead.of(key), secret=secret)


@router.get("")
async def list_keys(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    status: Annotated[KeyStatus | None, Query()] = None,
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[KeyRead]:
    """List the tenant's keys, oldest first, optionally by status or owner."""
    page = await runtime.keys.list(
        actor,
        tenant_id,
        where=KeyFilter(status=status, owner_id=owner_id),
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[KeyRead.of(k) for k in page.items], next_cursor=page.next_cursor)


@router.get("/{key_id}")
async def get_key(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyRead:
    """Read one key (never its secret)."""
    return KeyRead.of(await runtime.keys.get(actor, tenant_id, key_id))


@router.patch("/{key_id}")
async def update_key(
    tenant_id: TenantIdPath,
    key_id: KeyIdPath,
    body: KeyUpdate,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> KeyRead:
    """Change a key's name, description, expiry, owner, meta, permissions or roles."""
    return KeyRead.of(await runtime.keys.update(actor, tenant_id, key_id, _changes(body)))


@router.delete("/{key_id}", status_code=204)
async def delete_key(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Delete a key; verify answers NOT_FOUND for it from now on."""
    await runtime.keys.delete(actor, tenant_id, key_id)
    return Response(status_code=204)


@router.post("/{key_id}/rotate")
async def rotate_key(
    tenant_id: TenantIdPath,
    key_id: KeyIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    body: Annotated[KeyRotate | None, Body()] = None,
) -> KeyCreated:
    """Give the key a new secret (same id); the old one lives on for `grace_seconds`."""
    grace = body.grace_seconds if body is not None else 0
    key, secret = await runtime.keys.rotate(actor, tenant_id, key_id, grace_seconds=grace)
    return KeyCreated(key=KeyRead.of(key), secret=secret)


@router.post("/{key_id}/revoke")
async def revoke_key(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyRead:
    """Revoke a key; this is final."""
    return KeyRead.of(await runtime.keys.set_status(actor, tenant_id, key_id, "revoke"))


@router.post("/{key_id}/disable")
async def disable_key(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyRead:
    """Disable a key until it is enabled again."""
    return KeyRead.of(await runtime.keys.set_status(actor, tenant_id, key_id, "disable"))


@router.post("/{key_id}/enable")
async def enable_key(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyRead:
    """Enable a disabled key (409 for a revoked one)."""
    return KeyRead.of(await runtime.keys.set_status(actor, tenant_id, key_id, "enable"))

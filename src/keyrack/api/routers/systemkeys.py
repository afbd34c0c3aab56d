"""``/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}``: get-or-create, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from keyrack.api.deps import (
    PrincipalDep,
    RuntimeDep,
    SystemKeyNamePath,
    TenantIdPath,
    UserIdPath,
)
from keyrack.schemas.keys import KeyRead
from keyrack.schemas.people import SystemKeyIssued, SystemKeyPut
from keyrack.services.systemkeys import SystemKeySpec

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/users/{user_id}/system-keys", tags=["system keys"]
)


@router.put(
    "/{name}",
    responses={201: {"model": SystemKeyIssued, "description": "The key was created"}},
)
async def put_system_key(
    tenant_id: TenantIdPath,
    user_id: UserIdPath,
    name: SystemKeyNamePath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    response: Response,
    body: Annotated[SystemKeyPut | None, Body()] = None,
) -> SystemKeyIssued:
    """Get the user's system key `name`: 201 when this call creates it, else 200.

    Every answer carries the key's secret, the same one each time (each return is audited).
    """
    spec = None
    if body is not None:
        spec = SystemKeySpec(
            description=body.description,
            expires_at=body.expires_at,
            meta=body.meta,
            permissions=tuple(body.permissions),
            roles=tuple(body.roles),
        )
    result = await runtime.system_keys.put(actor, tenant_id, user_id, name, spec)
    response.status_code = 201 if result.created else 200
    return SystemKeyIssued(key=KeyRead.of(result.key), secret=result.secret)


@router.delete("/{name}", status_code=204)
async def delete_system_key(
    tenant_id: TenantIdPath,
    user_id: UserIdPath,
    name: SystemKeyNamePath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> Response:
    """Delete the user's system key `name` (404 if absent)."""
    await runtime.system_keys.delete(actor, tenant_id, user_id, name)
    return Response(status_code=204)

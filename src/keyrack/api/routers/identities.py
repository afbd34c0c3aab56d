"""``/v1/tenants/{tenant_id}/identities``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    RuntimeDep,
    TenantIdPath,
)
from keyrack.domain.credits import Credits
from keyrack.errors import InvalidInput
from keyrack.schemas.common import Page
from keyrack.schemas.identities import IdentityCreate, IdentityRead, IdentityUpdate
from keyrack.schemas.limits import CreditsSpec
from keyrack.services.identities import IdentityChanges, NewIdentity

router = APIRouter(prefix="/v1/tenants/{tenant_id}/identities", tags=["identities"])

IdentityIdPath = Annotated[str, Path(max_length=64, description="An identity id (`idn_…`).")]

_NOT_NULL = ("external_id", "meta", "rate_limits")


def _credits(spec: CreditsSpec | None) -> Credits | None:
    # The service stamps the balance with the time of the set; 0 here is a placeholder.
    return None if spec is None else spec.to_domain(now_ms=0)


def _changes(body: IdentityUpdate) -> IdentityChanges:
    values: dict[str, object] = {}
    for name in body.model_fields_set:
        if getattr(body, name) is None and name in _NOT_NULL:
            raise InvalidInput(f"{name} cannot be null", field=name)
    if "external_id" in body.model_fields_set:
        values["external_id"] = body.external_id
    if "meta" in body.model_fields_set:
        values["meta"] = body.meta
    if body.rate_limits is not None:
        values["rate_limits"] = tuple(limit.to_domain() for limit in body.rate_limits)
    if "credits" in body.model_fields_set:
        values["credits"] = _credits(body.credits)
    return IdentityChanges(**values)  # type: ignore[arg-type]  # field types are checked by IdentityUpdate


@router.post("", status_code=201)
async def create_identity(
    tenant_id: TenantIdPath, body: IdentityCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> IdentityRead:
    """Create an identity; its rate limits and credits are shared by all its keys."""
    spec = NewIdentity(
        external_id=body.external_id,
        meta=body.meta,
        rate_limits=tuple(limit.to_domain() for limit in body.rate_limits),
        credits=_credits(body.credits),
    )
    return IdentityRead.of(await runtime.identities.create(actor, tenant_id, spec))


@router.get("")
async def list_identities(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    external_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[IdentityRead]:
    """List the tenant's identities, oldest first; `external_id` finds one."""
    page = await runtime.identities.list(
        actor, tenant_id, external_id=external_id, limit=limit, cursor=cursor
    )
    return Page(items=[IdentityRead.of(i) for i in page.items], next_cursor=page.next_cursor)


@router.get("/{identity_id}")
async def get_identity(
    tenant_id: TenantIdPath, identity_id: IdentityIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> IdentityRead:
    """Read one identity."""
    return IdentityRead.of(await runtime.identities.get(actor, tenant_id, identity_id))


@router.patch("/{identity_id}")
async def update_identity(
    tenant_id: TenantIdPath,
    identity_id: IdentityIdPath,
    body: IdentityUpdate,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> IdentityRead:
    """Change an identity; `credits` replaces the balance, `credits: null` removes it."""
    updated = await runtime.identities.update(actor, tenant_id, identity_id, _changes(body))
    return IdentityRead.of(updated)


@router.delete("/{identity_id}", status_code=204)
async def delete_identity(
    tenant_id: TenantIdPath, identity_id: IdentityIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Delete an identity; its keys stay, without the identity's shared limits."""
    await runtime.identities.delete(actor, tenant_id, identity_id)
    return Response(status_code=204)

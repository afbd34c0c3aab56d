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
from keyrack.domain.models import KeyStatus, Limits
from keyrack.domain.policy import build_policy
from keyrack.errors import InvalidInput
from keyrack.schemas.common import Page
from keyrack.schemas.keys import KeyCreate, KeyCreated, KeyRead, KeyRotate, KeyUpdate
from keyrack.schemas.limits import BudgetSpec, CreditsSpec, RateLimitSpec
from keyrack.services.keys import KeyChanges, NewKey
from keyrack.services.ports import KeyFilter

router = APIRouter(prefix="/v1/tenants/{tenant_id}/keys", tags=["keys"])

_NOT_NULL = (
    "name",
    "meta",
    "permissions",
    "roles",
    "ip_allowlist",
    "allowed_origins",
    "allowed_endpoints",
    "blocked_endpoints",
    "require_tls",
    "lease_ttl_seconds",
    "rate_limits",
)


def _domain(value: object) -> object:
    """A wire value in its domain form (lists become tuples, limit specs domain values)."""
    if isinstance(value, list):
        return tuple(_domain(item) for item in value)
    if isinstance(value, RateLimitSpec | BudgetSpec):
        return value.to_domain()
    if isinstance(value, CreditsSpec):
        return value.to_domain(now_ms=0)  # the service stamps the time it is set
    return value


def _changes(body: KeyUpdate) -> KeyChanges:
    values: dict[str, object] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name in _NOT_NULL:
            raise InvalidInput(f"{name} cannot be null", field=name)
        values[name] = _domain(value)
    return KeyChanges(**values)  # type: ignore[arg-type]  # field types are checked by KeyUpdate


def new_key(body: KeyCreate) -> NewKey:
    """The service's ``NewKey`` for a create body.

    Raises:
        InvalidInput: The policy is malformed (a CIDR, an origin or a pattern).
    """
    return NewKey(
        name=body.name,
        description=body.description,
        expires_at=body.expires_at,
        owner_id=body.owner_id,
        meta=body.meta,
        permissions=tuple(body.permissions),
        roles=tuple(body.roles),
        identity_id=body.identity_id,
        policy=build_policy(
            ip_allowlist=body.ip_allowlist,
            allowed_origins=body.allowed_origins,
            allowed_endpoints=body.allowed_endpoints,
            blocked_endpoints=body.blocked_endpoints,
            require_tls=body.require_tls,
            max_tokens_per_request=body.max_tokens_per_request,
        ),
        limits=Limits(
            rate_limits=tuple(spec.to_domain() for spec in body.rate_limits),
            credits=None if body.credits is None else body.credits.to_domain(now_ms=0),
            budget=None if body.budget is None else body.budget.to_domain(),
            max_concurrency=body.max_concurrency,
            lease_ttl_seconds=body.lease_ttl_seconds,
        ),
    )


@router.post("", status_code=201)
async def create_key(
    tenant_id: TenantIdPath, body: KeyCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> KeyCreated:
    """Create a key; the secret in the answer is shown this once."""
    key, secret = await runtime.keys.create(actor, tenant_id, new_key(body))
    return KeyCreated(key=KeyRead.of(key), secret=secret)


@router.get("")
async def list_keys(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    status: Annotated[KeyStatus | None, Query()] = None,
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    include_system: Annotated[
        bool, Query(description="Also list system keys (members never see them).")
    ] = False,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[KeyRead]:
    """List the tenant's keys, oldest first, optionally by status or owner."""
    page = await runtime.keys.list(
        actor,
        tenant_id,
        where=KeyFilter(status=status, owner_id=owner_id, include_system=include_system),
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
    """Change any field of a key; fields left out stay as they are (a new `credits` is a set)."""
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

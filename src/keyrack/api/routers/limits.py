"""``/v1/ratelimit``, ``/v1/leases/{lease_id}/release`` and the credits of keys and identities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from keyrack.api.deps import KeyIdPath, PrincipalDep, RuntimeDep, TenantIdPath
from keyrack.schemas.limits import (
    CreditsOperation,
    CreditsRead,
    LeaseReleased,
    RateLimitCheck,
    RateLimitChecked,
)
from keyrack.services.credits import Balance

router = APIRouter(tags=["limits"])

IdentityIdPath = Annotated[str, Path(max_length=64, description="An identity id (`idn_…`).")]
LeaseIdPath = Annotated[str, Path(max_length=128, description="A lease id from verify.")]


def _balance(balance: Balance) -> CreditsRead:
    return CreditsRead.of(balance.remaining, balance.refill)


@router.post("/v1/ratelimit")
async def ratelimit(
    body: RateLimitCheck, actor: PrincipalDep, runtime: RuntimeDep
) -> RateLimitChecked:
    """Rate limit anything: `success: false` when `identifier` is over its limit (always 200)."""
    answer = await runtime.limit_api.ratelimit(
        actor,
        tenant_id=body.tenant_id,
        namespace=body.namespace,
        identifier=body.identifier,
        limit=body.limit,
        window_seconds=body.window_seconds,
        cost=body.cost,
    )
    report = answer.report
    return RateLimitChecked(
        success=answer.success,
        limit=report.limit,
        remaining=report.remaining,
        reset_at=datetime.fromtimestamp(report.reset_at_ms / 1000, UTC),
    )


@router.post("/v1/leases/{lease_id}/release")
async def release_lease(
    lease_id: LeaseIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> LeaseReleased:
    """Give a concurrency slot back (idempotent: a repeat answers `released: false`)."""
    return LeaseReleased(released=await runtime.limit_api.release(actor, lease_id))


@router.get("/v1/tenants/{tenant_id}/keys/{key_id}/credits")
async def get_key_credits(
    tenant_id: TenantIdPath, key_id: KeyIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> CreditsRead:
    """The key's live balance (refills applied); `remaining: null` is unlimited."""
    return _balance(await runtime.credits.get(actor, tenant_id, key_id))


@router.post("/v1/tenants/{tenant_id}/keys/{key_id}/credits")
async def change_key_credits(
    tenant_id: TenantIdPath,
    key_id: KeyIdPath,
    body: CreditsOperation,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> CreditsRead:
    """Set, increment or decrement the key's balance atomically."""
    balance = await runtime.credits.change(
        actor, tenant_id, _must_be(key_id, "key_"), op=body.op, amount=body.amount
    )
    return _balance(balance)


@router.get("/v1/tenants/{tenant_id}/identities/{identity_id}/credits")
async def get_identity_credits(
    tenant_id: TenantIdPath, identity_id: IdentityIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> CreditsRead:
    """The identity's live balance, shared by its keys that have no balance of their own."""
    return _balance(await runtime.credits.get(actor, tenant_id, _must_be(identity_id, "idn_")))


@router.post("/v1/tenants/{tenant_id}/identities/{identity_id}/credits")
async def change_identity_credits(
    tenant_id: TenantIdPath,
    identity_id: IdentityIdPath,
    body: CreditsOperation,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> CreditsRead:
    """Set, increment or decrement the identity's balance atomically."""
    balance = await runtime.credits.change(
        actor, tenant_id, _must_be(identity_id, "idn_"), op=body.op, amount=body.amount
    )
    return _balance(balance)


def _must_be(object_id: str, prefix: str) -> str:
    """A path id of the right kind; any other reads as an unknown object (404)."""
    return object_id if object_id.startswith(prefix) else prefix + "0"

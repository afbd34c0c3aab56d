"""Limits outside verify: the standalone rate limit endpoint and lease release.

``POST /v1/ratelimit`` limits anything a platform names (a user id, an IP, a model), not only
keys: the counter lives in the caller's tenant (or the platform's own namespace for a platform
caller that names no tenant) under ``namespace`` and ``identifier``, with the same algorithm,
store and failure policy as verify's rate limits.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from keyrack.domain import leases
from keyrack.domain.limits import LimitRequest, RateCharge, RateReport, key_slot
from keyrack.domain.outcome import Outcome
from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import LeaseNotFound, PermissionDenied, TenantNotFound
from keyrack.services.authz import authorize
from keyrack.services.ports import LimitStore, UnitOfWorkFactory

PLATFORM_NAMESPACE: Final = "_platform"
"""The counter namespace of platform callers that name no tenant (never a tenant id)."""


class RateLimitAnswer(NamedTuple):
    """The standalone limit's decision and state."""

    success: bool
    report: RateReport


def _slot(namespace: str, identifier: str) -> str:
    # The namespace's length keeps ("a:b", "c") and ("a", "b:c") apart.
    return f"n:{len(namespace)}:{namespace}:{identifier}"


class LimitService:
    """Standalone rate limits and concurrency lease release."""

    def __init__(self, *, uow: UnitOfWorkFactory, limits: LimitStore) -> None:
        self._uow = uow
        self._limits = limits

    async def ratelimit(
        self,
        actor: Principal,
        *,
        tenant_id: str | None,
        namespace: str,
        identifier: str,
        limit: int,
        window_seconds: int,
        cost: int = 1,
    ) -> RateLimitAnswer:
        """Charge ``cost`` to the limit named by ``namespace`` and ``identifier``.

        Args:
            actor: The caller (needs ``keys.verify``).
            tenant_id: Whose namespace; ``None`` is the caller's tenant, or the platform's
                namespace for a platform caller.
            namespace: A name for the kind of thing limited (``"chat"``).
            identifier: What is limited (``"user_42"``).
            limit: Units per window, 1 … 2**53 - 1.
            window_seconds: 1 s … 31 days.
            cost: Units this request uses (0 peeks).

        Raises:
            InvalidInput: A value is out of bounds.
            TenantNotFound: The tenant does not exist or is not the caller's.
            PermissionDenied: The caller lacks ``keys.verify``.
        """
        scope = actor.tenant_id if tenant_id is None else tenant_id
        authorize(actor, Permission.KEYS_VERIFY, tenant_id=scope)
        if scope is not None and tenant_id is not None:
            async with self._uow() as uow:
                tenant = await uow.tenants.get(scope)
            if tenant is None:
                raise TenantNotFound
        rate = RateLimit(namespace, limit, window_seconds * 1000)
        request = LimitRequest(
            scope or PLATFORM_NAMESPACE, (RateCharge(_slot(namespace, identifier), rate, cost),)
        )
        answer = await self._limits.apply(request)
        return RateLimitAnswer(answer.outcome is Outcome.VALID, answer.rates[0])

    async def release(self, actor: Principal, lease_id: str) -> bool:
        """Give a concurrency lease back; whether it was still held (a repeat is harmless).

        Raises:
            LeaseNotFound: Not a lease id, or a lease of a tenant the caller cannot see.
            PermissionDenied: The caller lacks ``keys.verify``.
            BackendUnavailable: The limit store is down.
        """
        owner = leases.parse_lease_id(lease_id)
        if owner is None:
            raise LeaseNotFound
        tenant_id, key_id = owner
        try:
            authorize(actor, Permission.KEYS_VERIFY, tenant_id=tenant_id)
        except TenantNotFound:
            raise LeaseNotFound from None
        except PermissionDenied:
            raise
        return await self._limits.release(tenant_id, key_slot(key_id), lease_id)

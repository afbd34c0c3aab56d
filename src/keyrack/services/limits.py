"""The failure policy around the shared limit store (DESIGN.md §10).

When the shared store (Redis) cannot be reached, verify keeps answering:

- **rate limits fall back to this process's own counters** (a ``MemoryLimitStore``): still
  enforced, per replica instead of across replicas; each fallback is logged and counted;
- **credits, budgets and concurrency fail closed**: a request that would charge them answers
  ``LIMITS_UNAVAILABLE`` (``valid: false``), because admitting it could spend money or slots
  that no replica can account for;
- a dry run (a request already denied by an earlier check) reports no counters.

After a failure the shared store is not tried again for ``retry_seconds``, so a dead Redis
costs one connection timeout per period instead of one per verify.
"""

from __future__ import annotations

import logging
from typing import Final

from keyrack.domain.limits import CreditCharge, CreditState, LimitAnswer, LimitRequest
from keyrack.domain.verification import Outcome
from keyrack.errors import BackendUnavailable
from keyrack.services.ports import Clock, LimitStore

logger = logging.getLogger(__name__)

_UNAVAILABLE: Final = LimitAnswer(Outcome.LIMITS_UNAVAILABLE)


class ResilientLimits:
    """A ``LimitStore`` that applies the failure policy over a shared store and a local one.

    Attributes:
        fallback_count: Verifies whose rate limits were decided locally because the shared
            store was unreachable.
        fail_closed_count: Verifies refused with ``LIMITS_UNAVAILABLE``.
    """

    def __init__(
        self,
        shared: LimitStore,
        local: LimitStore,
        *,
        clock: Clock,
        retry_seconds: float = 1.0,
    ) -> None:
        self._shared = shared
        self._local = local
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self.fallback_count = 0
        self.fail_closed_count = 0

    def _is_down(self) -> bool:
        return self._down_until > self._clock.now()

    def _mark_down(self, exc: BackendUnavailable) -> None:
        self._down_until = self._clock.now() + self._retry_seconds
        logger.warning("limits.shared_store_unavailable", extra={"error": type(exc).__name__})

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """Apply on the shared store, or follow the failure policy when it is down."""
        if not self._is_down():
            try:
                return await self._shared.apply(request, dry_run=dry_run)
            except BackendUnavailable as exc:
                self._mark_down(exc)
        if dry_run:
            return LimitAnswer(Outcome.VALID)
        if request.credits is not None or request.budget is not None or request.lease is not None:
            self.fail_closed_count += 1
            return _UNAVAILABLE
        self.fallback_count += 1
        logger.warning("limits.local_fallback", extra={"tenant_id": request.tenant_id})
        return await self._local.apply(request)

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        """Release on the shared store (leases are never taken locally).

        Raises:
            BackendUnavailable: The shared store is down.
        """
        return await self._shared.release(tenant_id, slot, lease_id)

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        """Set on the shared store.

        Raises:
            BackendUnavailable: The shared store is down.
        """
        await self._shared.set_credits(tenant_id, slot, state)

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        """Adjust on the shared store.

        Raises:
            BackendUnavailable: The shared store is down.
        """
        return await self._shared.adjust_credits(tenant_id, charge, delta)

    async def close(self) -> None:
        """Close both stores."""
        try:
            await self._shared.close()
        finally:
            await self._local.close()

"""In-process backends: the embedded default and the reference for every other backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, cast

from keyrack.domain import limits
from keyrack.domain.limits import (
    BudgetState,
    CreditCharge,
    CreditState,
    LimitAnswer,
    LimitRequest,
    LimitStates,
)
from keyrack.domain.ratelimit import State

T = TypeVar("T")


class MemoryCache(Generic[T]):
    """A bounded dict cache by digest with per-owner invalidation.

    When full it evicts in insertion order (oldest first), which costs nothing on a hit, unlike
    an LRU's reordering; entries also expire by time, so hot keys are simply reloaded.
    """

    __slots__ = ("_entries", "_max_entries", "_owner_of", "_owners")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._entries: dict[bytes, tuple[T | None, float]] = {}
        self._owners: dict[str, set[bytes]] = {}
        self._owner_of: dict[bytes, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> tuple[T | None, float] | None:
        """``(value_or_None, expires_at)`` for a cached digest, or ``None``."""
        return self._entries.get(digest)

    def put(self, digest: bytes, value: T | None, *, owner: str | None, expires_at: float) -> None:
        """Cache a value or a miss until ``expires_at``, evicting the oldest entry when full."""
        if digest in self._entries:
            self._drop(digest)
        elif len(self._entries) >= self._max_entries:
            self._drop(next(iter(self._entries)))
        self._entries[digest] = (value, expires_at)
        if owner is not None:
            self._owners.setdefault(owner, set()).add(digest)
            self._owner_of[digest] = owner

    def _drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        owner = self._owner_of.pop(digest, None)
        if owner is not None:
            # Invariant: a digest with an owner is in that owner's set.
            digests = self._owners[owner]
            digests.discard(digest)
            if not digests:
                del self._owners[owner]

    def invalidate(self, owner: str) -> None:
        """Drop every entry owned by ``owner``."""
        for digest in self._owners.pop(owner, set()):
            self._entries.pop(digest, None)
            self._owner_of.pop(digest, None)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._owners.clear()
        self._owner_of.clear()


class MemoryLimitStore:
    """The in-process limit store: ``keyrack.domain.limits.apply`` over dicts.

    Exact within one process (each call runs to completion without awaiting, so calls never
    interleave); every process of a multi-process deployment without Redis has its own counters.
    Each tenant's counters live in their own dicts, so a tenant can never read another's slot.
    Expired leases are dropped when their slot is next charged.
    """

    __slots__ = ("_clock", "_tenants")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tenants: dict[str, LimitStates] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _of(self, tenant_id: str) -> LimitStates:
        states = self._tenants.get(tenant_id)
        if states is None:
            states = self._tenants[tenant_id] = LimitStates({}, {}, {}, {})
        return states

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """Decide and consume atomically (see ``keyrack.domain.limits.apply``)."""
        return self.apply_now(request, dry_run=dry_run)

    def apply_now(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """``apply`` without the coroutine (synchronous callers and tests)."""
        now_ms = int(self._clock() * 1000)
        states = self._tenants.get(request.tenant_id) or self._of(request.tenant_id)
        answer = limits.apply(states, request, now_ms=now_ms, dry_run=dry_run)
        if answer.new_rates:
            rates = cast(dict[str, State], states.rates)
            for slot, state in answer.new_rates:
                rates[slot] = state
        if answer.new_credits is not None and request.credits is not None:
            cast(dict[str, CreditState], states.credits)[request.credits.slot] = answer.new_credits
        if answer.new_budget is not None and request.budget is not None:
            cast(dict[str, BudgetState], states.budgets)[request.budget.slot] = answer.new_budget
        lease = request.lease
        if answer.lease_id is not None and lease is not None:
            held = cast(dict[str, dict[str, int]], states.leases)
            live = held.setdefault(lease.slot, {})
            for lease_id in [lid for lid, expires in live.items() if expires <= now_ms]:
                del live[lease_id]
            live[answer.lease_id] = now_ms + lease.ttl_ms
        return answer

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        """Give a lease back; whether it was live."""
        held = cast(dict[str, dict[str, int]], self._of(tenant_id).leases)
        live = held.get(slot)
        if not live:
            return False
        expires = live.pop(lease_id, None)
        if not live:
            del held[slot]
        return expires is not None and expires > self._now_ms()

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        """Replace a balance."""
        cast(dict[str, CreditState], self._of(tenant_id).credits)[slot] = state

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        """Add ``delta`` to the current balance; ``None`` (and no change) if out of bounds."""
        balances = cast(dict[str, CreditState], self._of(tenant_id).credits)
        adjusted = limits.adjust_credits(charge, balances.get(charge.slot), delta)
        if adjusted is not None:
            balances[charge.slot] = adjusted
        return adjusted

    async def close(self) -> None:
        """Nothing to release."""

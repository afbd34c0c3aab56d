"""Write-behind of what verify learns: ``last_used_at``, pepper upgrades, counter snapshots.

Verify only records into dicts (no I/O on the hot path); a background task flushes them in one
batched transaction every few seconds and once more on shutdown.
"""

from __future__ import annotations

import logging

from keyrack.domain.limits import BudgetState, CreditState, LimitAnswer, LimitRequest
from keyrack.errors import BackendUnavailable
from keyrack.services.clock import to_datetime
from keyrack.services.ports import (
    CounterSnapshot,
    LastUsed,
    Rehash,
    RootRehash,
    UnitOfWorkFactory,
)

logger = logging.getLogger(__name__)

MAX_PENDING = 1_000_000


class WriteBehind:
    """Buffers verify's deferred writes and flushes them in batches."""

    __slots__ = ("_budgets", "_credits", "_last_used", "_rehashes", "_root_rehashes", "_uow")

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow
        self._last_used: dict[str, tuple[str, float]] = {}
        self._rehashes: dict[str, Rehash] = {}
        self._root_rehashes: dict[str, RootRehash] = {}
        self._credits: dict[str, tuple[str, CreditState]] = {}
        self._budgets: dict[str, tuple[str, BudgetState]] = {}

    def touch(self, tenant_id: str, key_id: str, now: float) -> None:
        """Remember that ``key_id`` was used at ``now`` (latest wins)."""
        if len(self._last_used) < MAX_PENDING:
            self._last_used[key_id] = (tenant_id, now)

    def rehash(self, item: Rehash) -> None:
        """Schedule a secret's digest upgrade to the current pepper."""
        self._rehashes[item.secret_id] = item

    def rehash_root(self, item: RootRehash) -> None:
        """Schedule a root key's digest upgrade to the current pepper."""
        self._root_rehashes[item.root_key_id] = item

    def counters(self, request: LimitRequest, answer: LimitAnswer) -> None:
        """Remember the credits and budget counters a verify left (latest wins per slot)."""
        tenant = request.tenant_id
        credits = answer.new_credits
        if credits is not None and request.credits is not None:
            self._credits[request.credits.slot] = (tenant, credits)
        budget = answer.new_budget
        if budget is not None and request.budget is not None:
            self._budgets[request.budget.slot] = (tenant, budget)

    def _snapshots(
        self,
        credits: dict[str, tuple[str, CreditState]],
        budgets: dict[str, tuple[str, BudgetState]],
    ) -> list[CounterSnapshot]:
        snapshots = [
            CounterSnapshot(tenant, _owner(slot), credits=tuple(state))  # type: ignore[arg-type]  # a CreditState is the (remaining, refilled_at_ms, version) triple
            for slot, (tenant, state) in credits.items()
        ]
        snapshots += [
            CounterSnapshot(tenant, _owner(slot), budget=tuple(state))  # type: ignore[arg-type]  # a BudgetState is the (spent, period_start_ms) pair
            for slot, (tenant, state) in budgets.items()
        ]
        return snapshots

    @property
    def pending(self) -> int:
        """How many writes wait for the next flush."""
        return (
            len(self._last_used)
            + len(self._rehashes)
            + len(self._root_rehashes)
            + len(self._credits)
            + len(self._budgets)
        )

    async def flush(self) -> int:
        """Write everything pending in one transaction; on failure keep it for the next try.

        Returns:
            The number of rows written.
        """
        if not self.pending:
            return 0
        last_used, self._last_used = self._last_used, {}
        rehashes, self._rehashes = self._rehashes, {}
        root_rehashes, self._root_rehashes = self._root_rehashes, {}
        credits, self._credits = self._credits, {}
        budgets, self._budgets = self._budgets, {}
        counters = self._snapshots(credits, budgets)
        items = [
            LastUsed(tenant_id=tenant, key_id=key_id, at=to_datetime(at))
            for key_id, (tenant, at) in last_used.items()
        ]
        try:
            async with self._uow() as uow:
                if items:
                    await uow.usage.write_last_used(items)
                if rehashes:
                    await uow.usage.write_rehashes(list(rehashes.values()))
                if root_rehashes:
                    await uow.usage.write_root_rehashes(list(root_rehashes.values()))
                if counters:
                    await uow.usage.write_counters(counters)
                await uow.commit()
        except BackendUnavailable:
            count = len(items) + len(rehashes) + len(root_rehashes) + len(counters)
            logger.warning("writebehind.flush_failed", extra={"pending": count})
            for key_id, value in last_used.items():
                self._last_used.setdefault(key_id, value)
            for secret_id, item in rehashes.items():
                self._rehashes.setdefault(secret_id, item)
            for root_key_id, root_item in root_rehashes.items():
                self._root_rehashes.setdefault(root_key_id, root_item)
            for slot, pending in credits.items():
                self._credits.setdefault(slot, pending)
            for slot, waiting in budgets.items():
                self._budgets.setdefault(slot, waiting)
            return 0
        return len(items) + len(rehashes) + len(root_rehashes) + len(counters)


def _owner(slot: str) -> str:
    """The key or identity id of a counter slot (``k:key_…`` → ``key_…``)."""
    return slot[2:]

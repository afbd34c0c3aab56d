"""In-process backends: the embedded default and the reference for every other backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar

from keyrack.backends._memlimits import Counters
from keyrack.domain import limits
from keyrack.domain.limits import (
    NEVER,
    BudgetState,
    CreditCharge,
    CreditState,
    LimitAnswer,
    LimitRequest,
    LimitStates,
    RateReport,
    live_leases,
)
from keyrack.domain.outcome import Outcome
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


_VALID: Final = Outcome.VALID
# Tuples built on every verify skip the Python-level ``__new__`` of their named tuple class.
_new: Final = tuple.__new__


class MemoryLimitStore:
    """The in-process limit store: ``keyrack.domain.limits.apply`` over per-slot counters.

    Every call answers exactly what ``limits.apply`` answers over the stored counters, and
    stores what that answer says to write. Two ways lead there:

    - **The shortcut**, for a request that every limit admits while each rate limit charges its
      slot's newest bucket with nothing leaving the window (see ``_memlimits.Window``): each
      rate decision is then ``total + cost <= limit`` on a running total, each new state
      differs from the stored one only in its newest count, and the answer is built directly.
      A recurring tuple of rate charges is bound to its windows once (``Counters.compile``).
      This is a warm verify of a key in use.
    - **The reference** for everything else (a denial, a dry run, a new slot or bucket, a
      changed window, a slot charged twice in one request): ``limits.apply`` itself, its
      answer then written back as it says.

    Either way everything is decided before anything is written, so several limits are
    all-or-nothing and a denied request consumes nothing. ``tests/unit/backends/
    test_memory_limits.py`` drives this store and the bare ``limits.apply`` with the same
    random sequences and requires identical answers and stored counters.

    Exact within one process (each call runs to completion without awaiting, so calls never
    interleave); every process of a multi-process deployment without Redis has its own counters.
    Each tenant's counters live in their own dicts, so a tenant can never read another's slot.
    Expired leases are dropped when their slot is next charged.
    """

    __slots__ = ("_clock", "_tenants")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tenants: dict[str, Counters] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _of(self, tenant_id: str) -> Counters:
        counters = self._tenants.get(tenant_id)
        if counters is None:
            counters = self._tenants[tenant_id] = Counters()
        return counters

    def snapshot(self, tenant_id: str) -> LimitStates:
        """A copy of every counter stored for ``tenant_id`` (for tests and diagnostics)."""
        counters = self._tenants.get(tenant_id) or Counters()
        return LimitStates(
            {slot: window.state for slot, window in counters.rates.items()},
            dict(counters.credits),
            dict(counters.budgets),
            {slot: dict(held) for slot, held in counters.leases.items()},
        )

    def apply_now(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """``apply`` without an event loop (it never awaits: synchronous callers and tests)."""
        step = self.apply(request, dry_run=dry_run)
        try:
            step.send(None)
        except StopIteration as done:
            answer: LimitAnswer = done.value
            return answer
        raise AssertionError("MemoryLimitStore.apply awaited")  # pragma: no cover - it never does

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:  # noqa: PLR0915  # one flat pass: it runs on every verify of a key with limits
        """Decide and consume atomically (see ``keyrack.domain.limits.apply``)."""
        now_ms = int(self._clock() * 1000)
        tenant_id, charges, charge_c, charge_b, lease = request
        counters = self._tenants.get(tenant_id)
        if counters is None:
            counters = self._tenants[tenant_id] = Counters()
        if dry_run:
            return _reference(counters, request, now_ms, dry_run=True)
        # The shortcut: decide everything, writing nothing; any other case is the reference's.
        compiled = counters.compiled.get(id(charges))
        if compiled is not None and compiled[0] is charges:
            rows = compiled[1]
            for window, limit, cost, _, _, allowed in rows:
                if (
                    window.limit is not limit
                    or now_ms >= window.until_ms
                    or window.total + cost > allowed
                ):
                    return _reference(counters, request, now_ms)
        else:
            compiled_rows = counters.compile(charges, now_ms)
            if compiled_rows is None:
                return _reference(counters, request, now_ms)
            rows = compiled_rows
        credits = new_credits = None
        if charge_c is not None:
            # ``limits.current_credits``: seeded from a newer snapshot, refilled when due.
            slot_c, seed, seed_refilled_at, seed_version, refill, boundary, cost_c = charge_c
            stored_c = counters.credits.get(slot_c)
            credits = stored_c
            if credits is None or credits[2] < seed_version:
                credits = _new(CreditState, (seed, seed_refilled_at, seed_version))
            if boundary != NEVER and credits[1] < boundary:
                credits = _new(CreditState, (refill, boundary, credits[2]))
            if cost_c > credits[0]:
                return _reference(counters, request, now_ms)
            if cost_c:
                new_credits = _new(CreditState, (credits[0] - cost_c, credits[1], credits[2]))
            elif credits != stored_c:
                new_credits = credits  # seeded or refilled: worth writing even unspent
        budget = new_budget = None
        if charge_b is not None:
            # ``limits.current_budget``: seeded from the snapshot, rolled over when due.
            slot_b, cap, _, start, seed_spent, seed_start, spend = charge_b
            stored_b = counters.budgets.get(slot_b)
            budget = stored_b
            if budget is None:
                budget = _new(BudgetState, (seed_spent, seed_start))
            if start != NEVER and budget[1] < start:
                budget = _new(BudgetState, (0, start))
            if spend:
                if spend > cap - budget[0]:
                    return _reference(counters, request, now_ms)
                new_budget = _new(BudgetState, (budget[0] + spend, budget[1]))
            elif budget != stored_b:
                new_budget = budget
        if lease is not None and (
            live_leases(counters.leases.get(lease.slot), now_ms) >= lease.max_concurrency
        ):
            return _reference(counters, request, now_ms)
        # Admitted: add each cost to its slot's newest bucket.
        reports = []
        new_rates = []
        for window, _, cost, slot, name, allowed in rows:
            state = window.state
            counts = state[2]
            new_counts = counts[:-1] + (counts[-1] + cost,)  # noqa: RUF005  # faster than unpacking, measured
            window.state = new_state = _new(State, (state[0], state[1], new_counts))
            window.total = total = window.total + cost
            new_rates.append((slot, new_state))
            reports.append(_new(RateReport, (name, allowed, allowed - total, window.reset_at_ms)))
        if new_credits is not None and charge_c is not None:
            counters.credits[charge_c.slot] = new_credits
        if new_budget is not None and charge_b is not None:
            counters.budgets[charge_b.slot] = new_budget
        lease_id = None
        if lease is not None:
            lease_id = lease.lease_id
            counters.take_lease(lease, now_ms)
        return _new(
            LimitAnswer,
            (
                _VALID,
                tuple(reports),
                new_credits or credits,
                new_budget or budget,
                lease_id,
                tuple(new_rates),
                new_credits,
                new_budget,
            ),
        )

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        """Give a lease back; whether it was live."""
        held = self._of(tenant_id).leases
        live = held.get(slot)
        if not live:
            return False
        expires = live.pop(lease_id, None)
        if not live:
            del held[slot]
        return expires is not None and expires > self._now_ms()

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        """Replace a balance."""
        self._of(tenant_id).credits[slot] = state

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        """Add ``delta`` to the current balance; ``None`` (and no change) if out of bounds."""
        balances = self._of(tenant_id).credits
        adjusted = limits.adjust_credits(charge, balances.get(charge.slot), delta)
        if adjusted is not None:
            balances[charge.slot] = adjusted
        return adjusted

    async def close(self) -> None:
        """Nothing to release."""


def _reference(
    counters: Counters, request: LimitRequest, now_ms: int, *, dry_run: bool = False
) -> LimitAnswer:
    """``limits.apply`` over the stored counters, then write what its answer says."""
    charges = request.rates
    answer = limits.apply(
        counters.states(charge.slot for charge in charges), request, now_ms=now_ms, dry_run=dry_run
    )
    if answer.new_rates:
        # One new state per charge with a cost, in request order (the last write wins).
        charged = [charge for charge in charges if charge.cost]
        for (slot, state), charge in zip(answer.new_rates, charged, strict=True):
            counters.store_rate(slot, state, charge.limit)
    if answer.new_credits is not None and request.credits is not None:
        counters.credits[request.credits.slot] = answer.new_credits
    if answer.new_budget is not None and request.budget is not None:
        counters.budgets[request.budget.slot] = answer.new_budget
    if answer.lease_id is not None and request.lease is not None:
        counters.take_lease(request.lease, now_ms)
    return answer

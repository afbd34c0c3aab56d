"""One verify's limits as one atomic step: rate limits, concurrency, credits and budget.

DESIGN.md §4 orders the limit checks ``RATE_LIMITED`` → ``CONCURRENCY_LIMITED`` →
``USAGE_EXCEEDED`` → ``BUDGET_EXCEEDED``, makes several limits all-or-nothing, and lets a
denied request consume nothing. ``apply`` is that whole step as a pure function of the stored
counters: it reads every counter the request touches, decides, and only when everything admits
returns the new counters to write. The in-memory backend is ``apply`` plus a dict; the Redis
backend runs the same transition in one Lua script and a differential test holds the two equal.

Everything here is integers (epoch milliseconds, units, micro-units) below 2**53, so a Lua port
(doubles) computes the same answers. Calendar arithmetic stays out of it: the caller passes the
latest credits refill instant (``keyrack.domain.credits.refill_boundary_ms``) and the current
budget period start (``keyrack.domain.budget.period_start_ms``), computed from its own clock.

Counters live in a tenant's namespace under a *slot* name: ``k:<key_id>:<limit>`` for a key's
rate limit, ``i:<identity_id>:<limit>`` for an identity's, ``n:<namespace>:<identifier>`` for
the standalone limit endpoint, ``k:<key_id>`` / ``i:<identity_id>`` for credits, budget and
leases (each kind in its own map).

**Seeding.** The database keeps a snapshot of credits and budget counters (written behind) so
they survive a restart of an in-memory backend or the loss of Redis data; a charge carries the
snapshot, used only when the backend holds no counter yet. Credits also carry a *version*,
bumped by every explicit ``set`` through the management API: a snapshot with a newer version
than the stored counter replaces it, so a set is never undone by an older counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple

from keyrack.domain import ratelimit
from keyrack.domain.budget import Budget
from keyrack.domain.credits import MAX_AMOUNT, Credits
from keyrack.domain.outcome import Outcome
from keyrack.domain.ratelimit import RateLimit

__all__ = [
    "NEVER",
    "BudgetCharge",
    "BudgetState",
    "CreditCharge",
    "CreditState",
    "LeaseCharge",
    "LimitAnswer",
    "LimitPlan",
    "LimitRequest",
    "LimitStates",
    "RateCharge",
    "RateReport",
    "adjust_credits",
    "apply",
    "build_plan",
    "current_budget",
    "current_credits",
    "identity_slot",
    "key_slot",
    "live_leases",
]

NEVER: Final = -1
"""A refill boundary or period start that never comes (``refill: never``, ``period: never``)."""


class RateCharge(NamedTuple):
    """One named rate limit a request is charged to."""

    slot: str
    limit: RateLimit
    cost: int


class LimitPlan(NamedTuple):
    """What a key charges on every verify, with the slots its counters live in.

    Built once when a key's record is loaded (``build_plan``) and cached with it.

    Attributes:
        rates: ``(slot, limit)`` for each rate limit of the key and of its identity.
        unit_rates: The same as charges of cost 1 (the common request), built once.
        credits_slot: Whose balance is spent: the key's if it has credits, else its identity's.
        credits: That balance's configuration and database snapshot.
        credits_version: The snapshot's version.
        budget_slot: The key's budget slot (budgets live on keys only).
        budget: The budget's configuration and snapshot.
        lease_slot: The key's concurrency slot.
        max_concurrency: Leases allowed at once (0 when unlimited: no lease is taken).
        lease_ttl_ms: How long an unreleased lease holds its slot.
    """

    rates: tuple[tuple[str, RateLimit], ...] = ()
    unit_rates: tuple[RateCharge, ...] = ()
    credits_slot: str | None = None
    credits: Credits | None = None
    credits_version: int = 0
    budget_slot: str | None = None
    budget: Budget | None = None
    lease_slot: str | None = None
    max_concurrency: int = 0
    lease_ttl_ms: int = 60_000


def key_slot(key_id: str) -> str:
    """The counter slot of a key's credits, budget and leases."""
    return "k:" + key_id


def identity_slot(identity_id: str) -> str:
    """The counter slot of an identity's credits."""
    return "i:" + identity_id


def build_plan(
    *,
    key_id: str,
    rate_limits: tuple[RateLimit, ...],
    credits: Credits | None,
    credits_version: int,
    budget: Budget | None,
    max_concurrency: int | None,
    lease_ttl_seconds: int,
    identity_id: str | None = None,
    identity_rate_limits: tuple[RateLimit, ...] = (),
    identity_credits: Credits | None = None,
    identity_credits_version: int = 0,
) -> LimitPlan | None:
    """Merge a key's limits with its identity's.

    A key's rate limit shadows its identity's limit of the same name; the identity's other
    limits are shared by every key of the identity (their slot is the identity's). Credits are
    the key's own when it has a balance, else the identity's.

    Returns:
        The plan, or ``None`` when nothing would be charged.
    """
    names = {limit.name for limit in rate_limits}
    rates = [(f"k:{key_id}:{limit.name}", limit) for limit in rate_limits]
    if identity_id is not None:
        rates += [
            (f"i:{identity_id}:{limit.name}", limit)
            for limit in identity_rate_limits
            if limit.name not in names
        ]
    credits_slot: str | None = None
    if credits is not None and credits.remaining is not None:
        credits_slot = key_slot(key_id)
    elif (
        identity_id is not None
        and identity_credits is not None
        and identity_credits.remaining is not None
    ):
        credits_slot, credits, credits_version = (
            identity_slot(identity_id),
            identity_credits,
            identity_credits_version,
        )
    else:
        credits = None
    if not rates and credits_slot is None and budget is None and not max_concurrency:
        return None
    return LimitPlan(
        rates=tuple(rates),
        unit_rates=tuple(RateCharge(slot, limit, 1) for slot, limit in rates),
        credits_slot=credits_slot,
        credits=credits,
        credits_version=credits_version,
        budget_slot=None if budget is None else key_slot(key_id),
        budget=budget,
        lease_slot=key_slot(key_id) if max_concurrency else None,
        max_concurrency=max_concurrency or 0,
        lease_ttl_ms=lease_ttl_seconds * 1000,
    )


class CreditCharge(NamedTuple):
    """The credits a request spends, with the database snapshot to seed from.

    Attributes:
        slot: Whose balance (``k:<key_id>`` or ``i:<identity_id>``).
        seed_remaining: The snapshot's balance.
        seed_refilled_at_ms: The refill instant the snapshot reflects.
        seed_version: The snapshot's version; a newer one replaces the stored counter.
        refill_amount: The balance a refill sets.
        boundary_ms: The latest scheduled refill instant at or before now, or ``NEVER``.
        cost: Units to spend.
    """

    slot: str
    seed_remaining: int
    seed_refilled_at_ms: int
    seed_version: int
    refill_amount: int
    boundary_ms: int
    cost: int


class BudgetCharge(NamedTuple):
    """The micro-units a request spends against a budget, with the snapshot to seed from.

    Attributes:
        slot: Whose budget (``k:<key_id>``).
        limit: Micro-units per period.
        soft_limit: Spend at which ``soft_limit_reached`` turns true.
        period_start_ms: Start of the current period, or ``NEVER``.
        seed_spent: The snapshot's spend.
        seed_period_start_ms: The period the snapshot's spend belongs to.
        spend: Micro-units to charge.
    """

    slot: str
    limit: int
    soft_limit: int
    period_start_ms: int
    seed_spent: int
    seed_period_start_ms: int
    spend: int


class LeaseCharge(NamedTuple):
    """A concurrency slot to take: at most ``max_concurrency`` live leases per slot."""

    slot: str
    max_concurrency: int
    ttl_ms: int
    lease_id: str


class LimitRequest(NamedTuple):
    """Every counter one verify touches, in one tenant's namespace."""

    tenant_id: str
    rates: tuple[RateCharge, ...] = ()
    credits: CreditCharge | None = None
    budget: BudgetCharge | None = None
    lease: LeaseCharge | None = None


class CreditState(NamedTuple):
    """A stored balance: what is left, the refill it reflects, the version it descends from."""

    remaining: int
    refilled_at_ms: int
    version: int


class BudgetState(NamedTuple):
    """A stored budget counter: micro-units spent in the period starting ``period_start_ms``."""

    spent: int
    period_start_ms: int


class LimitStates(NamedTuple):
    """Read-only views of the stored counters ``apply`` needs (missing slots: nothing stored)."""

    rates: Mapping[str, ratelimit.State]
    credits: Mapping[str, CreditState]
    budgets: Mapping[str, BudgetState]
    leases: Mapping[str, Mapping[str, int]]
    """Per slot, live lease ids and their expiry (epoch ms)."""


class RateReport(NamedTuple):
    """One rate limit's state for the response."""

    name: str
    limit: int
    remaining: int
    reset_at_ms: int


class LimitAnswer(NamedTuple):
    """The decision and what to report and persist.

    Attributes:
        outcome: ``VALID`` or the first failing limit's code.
        rates: One report per rate charge, in request order.
        credits: The balance after this request (before it when denied), or ``None``.
        budget: The budget counter after this request (before it when denied), or ``None``.
        lease_id: The lease taken, when admitted with a lease charge: the backend records it
            in the charge's slot until ``now_ms + ttl_ms`` (and may drop expired ones).
        new_rates: Rate states to write (empty unless admitted).
        new_credits: Balance to write, or ``None``.
        new_budget: Budget counter to write, or ``None``.
    """

    outcome: Outcome
    rates: tuple[RateReport, ...] = ()
    credits: CreditState | None = None
    budget: BudgetState | None = None
    lease_id: str | None = None
    new_rates: tuple[tuple[str, ratelimit.State], ...] = ()
    new_credits: CreditState | None = None
    new_budget: BudgetState | None = None


_EMPTY_STATE: Final = ratelimit.State()
_VALID: Final = Outcome.VALID
# Named tuples built on the hot path go through ``tuple.__new__``: their generated
# ``__new__`` is a Python function and costs several times as much.
_new: Final = tuple.__new__


def current_credits(charge: CreditCharge, stored: CreditState | None) -> CreditState:
    """The balance as it stands now: seeded from the snapshot if newer, refilled if due."""
    if stored is None or stored.version < charge.seed_version:
        stored = CreditState(charge.seed_remaining, charge.seed_refilled_at_ms, charge.seed_version)
    boundary = charge.boundary_ms
    if boundary != NEVER and stored.refilled_at_ms < boundary:
        return CreditState(charge.refill_amount, boundary, stored.version)
    return stored


def current_budget(charge: BudgetCharge, stored: BudgetState | None) -> BudgetState:
    """The budget counter as it stands now: seeded from the snapshot, rolled over if due."""
    if stored is None:
        stored = BudgetState(charge.seed_spent, charge.seed_period_start_ms)
    start = charge.period_start_ms
    if start != NEVER and stored.period_start_ms < start:
        return BudgetState(0, start)
    return stored


def adjust_credits(
    charge: CreditCharge, stored: CreditState | None, delta: int
) -> CreditState | None:
    """Add ``delta`` (negative: take away) to the current balance.

    Returns:
        The new balance, or ``None`` when taking away more than is left (nothing changes) or
        adding past ``MAX_AMOUNT``.
    """
    current = current_credits(charge, stored)
    remaining = current.remaining + delta
    if not 0 <= remaining <= MAX_AMOUNT:
        return None
    return CreditState(remaining, current.refilled_at_ms, current.version)


def live_leases(leases: Mapping[str, int] | None, now_ms: int) -> int:
    """How many of ``leases`` have not expired at ``now_ms``."""
    if not leases:
        return 0
    return sum(1 for expires in leases.values() if expires > now_ms)


def apply(
    states: LimitStates, request: LimitRequest, *, now_ms: int, dry_run: bool = False
) -> LimitAnswer:
    """Decide every limit of ``request`` at once.

    Args:
        states: The stored counters.
        request: What the request is charged.
        now_ms: Epoch milliseconds (the backend's clock).
        dry_run: Report the current state without consuming anything or taking a lease (for a
            request already denied by an earlier check).

    Returns:
        The first failing limit's outcome in the contract's order, or ``VALID``; when valid and
        not a dry run, the counters to write and the lease taken.
    """
    outcome = _VALID
    reports: list[RateReport] = []
    new_rates: list[tuple[str, ratelimit.State]] = []
    rate_states = states.rates
    check = ratelimit.check
    for slot, limit, cost in request.rates:
        state = rate_states.get(slot, _EMPTY_STATE)
        decision = check(state, limit, now_ms=now_ms, cost=0 if dry_run else cost)
        if not decision.allowed:
            outcome = Outcome.RATE_LIMITED
        elif cost and not dry_run:
            new_rates.append((slot, decision.state))
        reports.append(_new(RateReport, (limit.name, limit.limit, decision[1], decision[2])))
    lease = request.lease
    if (
        lease is not None
        and outcome is _VALID
        and not dry_run
        and live_leases(states.leases.get(lease.slot), now_ms) >= lease.max_concurrency
    ):
        outcome = Outcome.CONCURRENCY_LIMITED
    credits = new_credits = None
    charge_c = request.credits
    if charge_c is not None:
        stored_credits = states.credits.get(charge_c.slot)
        credits = current_credits(charge_c, stored_credits)
        cost = charge_c.cost
        if not dry_run:
            if cost > credits.remaining:
                if outcome is _VALID:
                    outcome = Outcome.USAGE_EXCEEDED
            elif cost:
                new_credits = _new(
                    CreditState, (credits[0] - cost, credits.refilled_at_ms, credits.version)
                )
            elif credits != stored_credits:
                new_credits = credits  # seeded or refilled: worth writing even unspent
    budget = new_budget = None
    charge_b = request.budget
    if charge_b is not None:
        stored_budget = states.budgets.get(charge_b.slot)
        budget = current_budget(charge_b, stored_budget)
        spend = charge_b.spend
        if not dry_run:
            if spend and spend > charge_b.limit - budget.spent:
                if outcome is _VALID:
                    outcome = Outcome.BUDGET_EXCEEDED
            elif spend:
                new_budget = _new(BudgetState, (budget.spent + spend, budget.period_start_ms))
            elif budget != stored_budget:
                new_budget = budget
    if outcome is not _VALID or dry_run:
        if outcome is not _VALID and new_rates:
            # Nothing is consumed: report every charged limit as it stands.
            reports = [
                _new(
                    RateReport,
                    (
                        c.limit.name,
                        c.limit.limit,
                        *check(
                            rate_states.get(c.slot, _EMPTY_STATE), c.limit, now_ms=now_ms, cost=0
                        )[1:3],
                    ),
                )
                for c in request.rates
            ]
        return LimitAnswer(outcome, tuple(reports), credits, budget)
    return _new(
        LimitAnswer,
        (
            _VALID,
            tuple(reports),
            new_credits or credits,
            new_budget or budget,
            None if lease is None else lease.lease_id,
            tuple(new_rates),
            new_credits,
            new_budget,
        ),
    )

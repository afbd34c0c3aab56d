"""``MemoryLimitStore`` against the pure ``limits.apply``: the same random sequences, identical
answers and identical stored counters.

The oracle, ``ReferenceStore``, is ``keyrack.domain.limits.apply`` over plain dicts, its answer
written back as it says (the memory store as it was before it kept compiled counters). Hypothesis
draws a few recurring requests per sequence (the store compiles a rate-charge tuple that comes
back, so the very same tuples are sent again, as verify does) and mixes in fresh copies of them,
dry runs, releases, explicit sets and adjustments, for two tenants, while time stands, creeps
within a bucket, crosses buckets, jumps days ahead or steps back. Limits switch between windows
of the same and of another bucket width, and between equal but distinct ``RateLimit`` objects.
Costs reach the limits' edges and beyond them, so admissions, denials and refused inputs all
occur. After every step both stores must have answered alike (or raised alike) and must hold
the same counters for both tenants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keyrack.backends._memlimits import MAX_COMPILED, Counters
from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain import limits
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    BudgetState,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitAnswer,
    LimitRequest,
    LimitStates,
    RateCharge,
)
from keyrack.domain.ratelimit import MAX_COST, RateLimit, State
from keyrack.domain.verification import Outcome
from keyrack.errors import InvalidInput

T0 = 1_800_000_000_000
DAY = 86_400_000
HOUR = 3_600_000
MAX = 2**53 - 1
TENANTS = ("ten_a", "ten_b")
SLOTS = ("k:key_a:requests", "k:key_a:tokens", "i:idt_b:requests")
CREDIT_SLOTS = ("k:key_a", "i:idt_b")
LEASE_IDS = ("l0", "l1", "l2")


class ReferenceStore:
    """``limits.apply`` over plain dicts, its answer written back as it says: the oracle."""

    def __init__(self) -> None:
        self.tenants: dict[str, LimitStates] = {}

    def _of(self, tenant_id: str) -> LimitStates:
        return self.tenants.setdefault(tenant_id, LimitStates({}, {}, {}, {}))

    def apply(self, request: LimitRequest, now_ms: int, *, dry_run: bool) -> LimitAnswer:
        states = self._of(request.tenant_id)
        answer = limits.apply(states, request, now_ms=now_ms, dry_run=dry_run)
        for slot, state in answer.new_rates:
            states.rates[slot] = state  # type: ignore[index]  # our own dicts behind the Mapping views
        if answer.new_credits is not None and request.credits is not None:
            states.credits[request.credits.slot] = answer.new_credits  # type: ignore[index]  # as above
        if answer.new_budget is not None and request.budget is not None:
            states.budgets[request.budget.slot] = answer.new_budget  # type: ignore[index]  # as above
        lease = request.lease
        if answer.lease_id is not None and lease is not None:
            live = states.leases.setdefault(lease.slot, {})  # type: ignore[attr-defined]  # as above
            for lease_id in [lid for lid, expires in live.items() if expires <= now_ms]:
                del live[lease_id]
            live[answer.lease_id] = now_ms + lease.ttl_ms
        return answer

    def release(self, tenant_id: str, slot: str, lease_id: str, now_ms: int) -> bool:
        held = self._of(tenant_id).leases
        live = held.get(slot)
        if not live:
            return False
        expires = live.pop(lease_id, None)  # type: ignore[attr-defined]  # our own dicts
        if not live:
            del held[slot]  # type: ignore[attr-defined]  # as above
        return expires is not None and expires > now_ms

    def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        self._of(tenant_id).credits[slot] = state  # type: ignore[index]  # our own dicts

    def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        balances = self._of(tenant_id).credits
        adjusted = limits.adjust_credits(charge, balances.get(charge.slot), delta)
        if adjusted is not None:
            balances[charge.slot] = adjusted  # type: ignore[index]  # our own dicts
        return adjusted

    def snapshot(self, tenant_id: str) -> LimitStates:
        states = self._of(tenant_id)
        return LimitStates(
            dict(states.rates),
            dict(states.credits),
            dict(states.budgets),
            {slot: dict(held) for slot, held in states.leases.items()},
        )


class Clock:
    """The memory store's clock, read as ``int(now * 1000) == now_ms`` exactly."""

    def __init__(self) -> None:
        self.now_ms = T0

    def now(self) -> float:
        return (self.now_ms + 0.5) / 1000


# Limits a slot switches between: two windows sharing a bucket width (1001 and 1020 ms: 51 ms
# buckets), one of another width, an equal twin of the first (a distinct object), and roomy
# ones (the shortcut's usual case: a busy key far from its limits).
TIGHT = (
    RateLimit("requests", 4, 1_001),
    RateLimit("requests", 4, 1_020),
    RateLimit("requests", 3, 7_000),
    RateLimit("requests", 4, 1_001),
)
ROOMY = (
    RateLimit("requests", 2**40, 1_001),
    RateLimit("requests", 2**40, 1_020),
    RateLimit("tokens", MAX, 60_000),
    RateLimit("tokens", 2**40, DAY),
)

small_or_big = st.one_of(st.integers(0, 3), st.integers(2**39, 2**41), st.just(MAX))
rate_costs = st.one_of(
    st.integers(0, 3),
    st.integers(2**39, 2**41),
    st.just(MAX),
    st.sampled_from([-1, MAX_COST + 1]),  # refused by ``check``: both stores raise
)
# Any charges (a slot twice, zero or refused costs), or distinct slots and small costs.
charge_tuples = st.one_of(
    st.lists(
        st.builds(RateCharge, st.sampled_from(SLOTS), st.sampled_from(TIGHT + ROOMY), rate_costs),
        max_size=3,
    ),
    st.lists(
        st.builds(
            RateCharge, st.sampled_from(SLOTS), st.sampled_from(ROOMY + TIGHT), st.integers(1, 3)
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda charge: charge.slot,
    ),
).map(tuple)
periods = st.sampled_from([None, DAY, HOUR])


@dataclass(frozen=True)
class Template:
    """One recurring request: its rate-charge tuple (the very object resent) and the rest."""

    rates: tuple[RateCharge, ...]
    credits: tuple[int, int, int, int | None, int] | None  # slot index, seed, version, period, cost
    budget: tuple[int, int, int | None, int] | None  # limit, seed spent, period, spend
    lease: tuple[int, int] | None  # max concurrency, ttl


templates = st.builds(
    Template,
    rates=charge_tuples,
    credits=st.none()
    | st.tuples(
        st.integers(0, 1),
        st.integers(0, 6) | st.just(MAX),
        st.integers(1, 3),
        periods,
        small_or_big,
    ),
    budget=st.none()
    | st.tuples(st.integers(0, 8) | st.just(MAX), st.integers(0, 5), periods, small_or_big),
    lease=st.none() | st.tuples(st.integers(0, 2), st.sampled_from([1_000, 3_000])),
)

time_steps = st.one_of(
    st.just(0),
    st.integers(1, 20),
    st.integers(1, 20),
    st.integers(21, 1_200),
    st.integers(HOUR, 2 * DAY),
    st.integers(-1_500, -1),
)

# Resend a template's very tuple (most of the time), or a fresh copy of it.
applies = st.tuples(
    st.just("apply"),
    st.integers(0, 3),
    st.sampled_from(["same", "same", "same", "copy"]),
    st.sampled_from([False, False, False, False, True]),
    st.sampled_from(LEASE_IDS),
)
operations = st.one_of(
    applies,
    applies,
    applies,
    applies,
    st.tuples(st.just("release"), st.sampled_from(LEASE_IDS)),
    st.tuples(st.just("set"), st.integers(0, 1), st.integers(0, 9), st.integers(1, 3)),
    st.tuples(st.just("adjust"), st.integers(0, 1), st.integers(-4, 4), periods),
)


def boundary(period: int | None, now_ms: int) -> int:
    return NEVER if period is None else now_ms - now_ms % period


def credit_charge(drawn: tuple[int, int, int, int | None, int], now_ms: int) -> CreditCharge:
    index, seed, version, period, cost = drawn
    return CreditCharge(
        CREDIT_SLOTS[index], seed, T0 - 1_000, version, 5, boundary(period, now_ms), cost
    )


def request_for(
    tenant: str, template: Template, rates: tuple[RateCharge, ...], now_ms: int, lease_id: str
) -> LimitRequest:
    credits = None if template.credits is None else credit_charge(template.credits, now_ms)
    budget = None
    if template.budget is not None:
        cap, seed_spent, period, spend = template.budget
        budget = BudgetCharge(
            "k:key_a", cap, cap * 8 // 10, boundary(period, now_ms), seed_spent, T0 - DAY, spend
        )
    lease = None
    if template.lease is not None:
        lease = LeaseCharge("k:key_a", *template.lease, lease_id)
    return LimitRequest(tenant, rates, credits, budget, lease)


def applied(store, request: LimitRequest, now_ms: int, *, dry_run: bool):
    """What ``apply`` answered, or the type of what it raised (both stores refuse alike)."""
    try:
        if isinstance(store, ReferenceStore):
            return store.apply(request, now_ms, dry_run=dry_run)
        return store.apply_now(request, dry_run=dry_run)
    except InvalidInput as exc:
        return type(exc)


@settings(
    max_examples=int(os.environ.get("KEYRACK_MEMORY_DIFF_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    pool=st.lists(templates, min_size=1, max_size=4),
    start=st.integers(0, DAY),
    sequence=st.lists(
        st.tuples(time_steps, st.sampled_from((*TENANTS, TENANTS[0])), operations),
        min_size=1,
        max_size=60,
    ),
)
def test_the_memory_store_answers_and_stores_like_the_pure_apply(pool, start, sequence):
    clock = Clock()
    clock.now_ms = now_ms = T0 + start
    store = MemoryLimitStore(clock.now)
    reference = ReferenceStore()
    for dt, tenant, operation in sequence:
        now_ms += dt
        clock.now_ms = now_ms
        kind = operation[0]
        if kind == "apply":
            _, index, send, dry_run, lease_id = operation
            template = pool[index % len(pool)]
            rates = template.rates if send == "same" else (*template.rates,)  # a new tuple
            request = request_for(tenant, template, rates, now_ms, lease_id)
            expected = applied(reference, request, now_ms, dry_run=dry_run)
            actual = applied(store, request, now_ms, dry_run=dry_run)
            event(f"apply: {getattr(expected, 'outcome', expected)}")
        elif kind == "release":
            expected = reference.release(tenant, "k:key_a", operation[1], now_ms)
            actual = run(store.release(tenant, "k:key_a", operation[1]))
        elif kind == "set":
            _, index, remaining, version = operation
            state = CreditState(remaining, now_ms, version)
            reference.set_credits(tenant, CREDIT_SLOTS[index], state)
            run(store.set_credits(tenant, CREDIT_SLOTS[index], state))
            expected = actual = None
        else:
            _, index, delta, period = operation
            charge = credit_charge((index, 7, 1, period, 0), now_ms)
            expected = reference.adjust_credits(tenant, charge, delta)
            actual = run(store.adjust_credits(tenant, charge, delta))
        assert expected == actual, (dt, tenant, operation)
        for each in TENANTS:
            assert reference.snapshot(each) == store.snapshot(each), (dt, tenant, operation)


def run(step):
    """Run a coroutine of the memory store, which never awaits, to its result."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the memory store awaited")


class Pair:
    """The memory store and the oracle side by side on one clock: every call must agree."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = MemoryLimitStore(self.clock.now)
        self.reference = ReferenceStore()

    def at(self, now_ms: int) -> Pair:
        self.clock.now_ms = now_ms
        return self

    def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        now_ms = self.clock.now_ms
        expected = self.reference.apply(request, now_ms, dry_run=dry_run)
        actual = self.store.apply_now(request, dry_run=dry_run)
        assert expected == actual
        self.check(request.tenant_id)
        return actual

    def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        expected = self.reference.release(tenant_id, slot, lease_id, self.clock.now_ms)
        actual = run(self.store.release(tenant_id, slot, lease_id))
        assert expected == actual
        self.check(tenant_id)
        return actual

    def check(self, tenant_id: str) -> None:
        assert self.reference.snapshot(tenant_id) == self.store.snapshot(tenant_id)


BUSY = (
    RateCharge("k:key_a:second", RateLimit("second", MAX, 1_000), 1),
    RateCharge("k:key_a:minute", RateLimit("minute", MAX, 60_000), 1),
    RateCharge("k:key_a:day", RateLimit("day", MAX, DAY), 1),
)


class TestAgainstTheOracle:
    def test_a_busy_key_is_charged_exactly_through_buckets_and_windows(self):
        pair = Pair()
        credits = CreditCharge("k:key_a", 10_000, T0 - DAY, 1, 0, NEVER, 1)
        budget = BudgetCharge("k:key_a", 10**9, 8 * 10**8, T0 - T0 % DAY, 0, 0, 3)
        request = LimitRequest("ten_a", BUSY, credits, budget)

        answers = [pair.at(T0 + 7 * i).apply(request) for i in range(400)]

        assert {Outcome.VALID} == {answer.outcome for answer in answers}
        assert CreditState(10_000 - 400, T0 - DAY, 1) == answers[-1].credits
        assert BudgetState(1_200, T0 - T0 % DAY) == answers[-1].budget
        # The one-second window counts its 21 buckets of 50 ms whole: at 2.793 s, every request
        # since 1.750 s (the 250th to the 400th).
        assert MAX - 150 == answers[-1].rates[0].remaining

    def test_a_tight_limit_refuses_then_frees_as_buckets_leave(self):
        pair = Pair()
        tight = (RateCharge("k:key_a:second", RateLimit("second", 3, 1_000), 1),)
        request = LimitRequest("ten_a", tight)

        outcomes = [pair.at(T0 + 100 * i).apply(request).outcome for i in range(25)]

        # The first bucket (0-49 ms) is counted until 1.049 s: 0.3 … 1.0 s are refused.
        assert [Outcome.VALID] * 3 + [Outcome.RATE_LIMITED] * 8 + [Outcome.VALID] == outcomes[:12]

    def test_a_slot_charged_twice_in_one_request_keeps_the_last_write(self):
        pair = Pair()
        limit = RateLimit("requests", MAX, 60_000)
        twice = (RateCharge("k:key_a:r", limit, 1), RateCharge("k:key_a:r", limit, 2))
        request = LimitRequest("ten_a", twice)

        answers = [pair.at(T0 + i).apply(request) for i in range(3)]

        # Each charge is decided on the stored state and the second one's state is what stays,
        # so every request adds 2.
        assert [MAX - 1, MAX - 2] == [report.remaining for report in answers[0].rates]
        assert [MAX - 5, MAX - 6] == [report.remaining for report in answers[2].rates]

    def test_an_unspent_refill_and_rollover_are_written_on_the_shortcut(self):
        pair = Pair()
        rates = BUSY[:1]
        pair.at(T0).apply(LimitRequest("ten_a", rates))
        credits = CreditCharge("k:key_a", 4, T0 - DAY, 1, 9, T0 - T0 % DAY, 0)
        budget = BudgetCharge("k:key_a", 100, 80, T0 - T0 % DAY, 50, T0 - 2 * DAY, 0)

        answer = pair.at(T0 + 1).apply(LimitRequest("ten_a", rates, credits, budget))
        again = pair.at(T0 + 2).apply(LimitRequest("ten_a", rates, credits, budget))

        assert CreditState(9, T0 - T0 % DAY, 1) == answer.new_credits
        assert BudgetState(0, T0 - T0 % DAY) == answer.new_budget
        assert (None, None) == (again.new_credits, again.new_budget)

    def test_denials_past_the_shortcut_consume_nothing(self):
        pair = Pair()
        rates = BUSY[:2]
        pair.at(T0).apply(LimitRequest("ten_a", rates))
        credits = CreditCharge("k:key_a", 1, T0, 1, 0, NEVER, 2)
        budget = BudgetCharge("k:key_a", 10, 8, NEVER, 9, 0, 2)
        lease = LeaseCharge("k:key_a", 0, 1_000, "l0")

        refused = [
            pair.at(T0 + 1).apply(LimitRequest("ten_a", rates, credits=credits)),
            pair.at(T0 + 2).apply(LimitRequest("ten_a", rates, budget=budget)),
            pair.at(T0 + 3).apply(LimitRequest("ten_a", rates, lease=lease)),
        ]

        assert [Outcome.USAGE_EXCEEDED, Outcome.BUDGET_EXCEEDED, Outcome.CONCURRENCY_LIMITED] == [
            answer.outcome for answer in refused
        ]
        assert [MAX - 1, MAX - 1] == [report.remaining for report in refused[2].rates]

    def test_leases_are_taken_released_and_expire_alike(self):
        pair = Pair()
        rates = BUSY[:1]
        for i, lease_id in enumerate(LEASE_IDS):
            lease = LeaseCharge("k:key_a", 2, 1_000, lease_id)
            pair.at(T0 + i).apply(LimitRequest("ten_a", rates, lease=lease))

        assert pair.release("ten_a", "k:key_a", "l0") is True
        assert pair.release("ten_a", "k:key_a", "l0") is False
        assert pair.at(T0 + 1_001).release("ten_a", "k:key_a", "l1") is False
        assert pair.release("ten_b", "k:key_a", "l1") is False


class TestCompiledCharges:
    def test_are_bounded_per_tenant(self):
        counters = Counters()
        limit = RateLimit("requests", MAX, 60_000)
        counters.store_rate("k:key_a:r", State(3_000, (T0 // 3_000,), (1,)), limit)

        for _ in range(MAX_COMPILED + 1):
            charges = (RateCharge("k:key_a:r", limit, 1),)
            assert counters.compile(charges, T0) is not None

        assert 1 == len(counters.compiled)

    def test_a_slot_twice_is_not_compiled(self):
        counters = Counters()
        limit = RateLimit("requests", MAX, 60_000)
        counters.store_rate("k:key_a:r", State(3_000, (T0 // 3_000,), (1,)), limit)
        charge = RateCharge("k:key_a:r", limit, 1)

        assert counters.compile((charge, charge), T0) is None
        assert {} == counters.compiled

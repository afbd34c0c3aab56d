"""The Redis script against the reference: the same random sequences, identical answers.

Hypothesis draws sequences of operations (``apply`` with several rate limits whose windows
change mid-sequence, credits, a budget and a lease; ``release``; ``set_credits``;
``adjust_credits``) while time advances, stands still, jumps days ahead or goes back a little.
``MemoryLimitStore`` (``keyrack.domain.limits.apply`` over dicts) and ``RedisLimitStore`` read
the same fake clock and must answer every step identically, ``LimitAnswer`` for ``LimitAnswer``
(outcome, reports, balances, lease and the new states to write behind).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit
from tests.fakes import FakeClock
from tests.integration.backends.conftest import fake_now_ms, need_redis_url, new_tenant, set_ms

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = 1_800_000_000_000
DAY = 86_400_000
HOUR = 3_600_000
MAX = 2**53 - 1
SLOTS = ("k:key_a:requests", "k:key_a:tokens", "i:idt_b:requests")
LEASE_IDS = ("l0", "l1", "l2", "l3")

small_or_big = st.one_of(st.integers(0, 4), st.integers(2**40, 2**52))
limit_values = st.one_of(st.integers(1, 8), st.just(MAX))
limits = st.builds(
    RateLimit,
    name=st.sampled_from(["requests", "tokens"]),
    limit=limit_values,
    window_ms=st.sampled_from([1_000, 2_000, 7_000, 60_000, DAY]),
)
# Time moves forward a little, a lot (a refill or a new budget period), stands, or steps back.
time_steps = st.one_of(
    st.just(0),
    st.integers(1, 120),
    st.integers(100, 6_000),
    st.sampled_from([1_000, 3_000, 10_000]),  # exactly a lease's lifetime
    st.integers(HOUR, 2 * DAY),
    st.integers(-3_000, -1),
)
periods = st.sampled_from([None, DAY, HOUR])


@dataclass(frozen=True)
class Policy:
    """What stays fixed through one sequence: the snapshots and the candidate limits."""

    windows: tuple[tuple[RateLimit, RateLimit], ...]  # per slot: two limits it switches between
    credit_seed: int
    refill_amount: int
    budget_limit: int
    budget_seed: int


policies = st.builds(
    Policy,
    windows=st.tuples(*[st.tuples(limits, limits) for _ in SLOTS]),
    credit_seed=st.one_of(st.integers(0, 12), st.just(MAX)),
    refill_amount=st.one_of(st.integers(0, 12), st.just(MAX)),
    budget_limit=st.one_of(st.integers(0, 1_000), st.just(MAX)),
    budget_seed=st.integers(0, 500),
)


@st.composite
def apply_steps(draw):
    rates = draw(
        st.lists(
            st.tuples(st.integers(0, len(SLOTS) - 1), st.booleans(), small_or_big),
            max_size=3,
        )
    )
    credit = draw(st.none() | st.tuples(st.sampled_from([1, 1, 2]), periods, small_or_big))
    budget = draw(st.none() | st.tuples(periods, small_or_big))
    lease = draw(
        st.none()
        | st.tuples(
            st.integers(1, 2), st.sampled_from([1_000, 3_000, 10_000]), st.sampled_from(LEASE_IDS)
        )
    )
    dry_run = draw(st.sampled_from([False, False, False, True]))
    return ("apply", rates, credit, budget, lease, dry_run)


steps = st.tuples(
    time_steps,
    st.one_of(
        apply_steps(),
        apply_steps(),
        apply_steps(),
        st.tuples(st.just("release"), st.sampled_from(LEASE_IDS)),
        st.tuples(
            st.just("set"),
            st.integers(0, 20),
            st.integers(1, 3),
        ),
        st.tuples(st.just("adjust"), st.integers(-6, 6), periods),
    ),
)


def boundary(period: int | None, now_ms: int) -> int:
    return NEVER if period is None else now_ms - now_ms % period


def credit_charge(policy: Policy, now_ms: int, version: int, period: int | None, cost: int):
    return CreditCharge(
        "k:key_a",
        policy.credit_seed,
        T0 - 1_000,
        version,
        policy.refill_amount,
        boundary(period, now_ms),
        cost,
    )


def build_request(tenant: str, policy: Policy, now_ms: int, step) -> LimitRequest:
    _, rates, credit, budget, lease, _ = step
    return LimitRequest(
        tenant,
        rates=tuple(
            RateCharge(SLOTS[i], policy.windows[i][1 if switched else 0], cost)
            for i, switched, cost in rates
        ),
        credits=None if credit is None else credit_charge(policy, now_ms, *credit),
        budget=None
        if budget is None
        else BudgetCharge(
            "k:key_a",
            policy.budget_limit,
            policy.budget_limit * 8 // 10,
            boundary(budget[0], now_ms),
            policy.budget_seed,
            T0 - T0 % DAY,
            budget[1],
        ),
        lease=None if lease is None else LeaseCharge("k:key_a", *lease),
    )


@pytest.fixture
async def redis_store(clock: FakeClock) -> AsyncIterator[object]:
    from keyrack.backends.redis import RedisLimitStore

    store = RedisLimitStore.from_url(need_redis_url(), now_ms=fake_now_ms(clock))
    try:
        yield store
    finally:
        await store.close()


def key_names(tenant: str) -> list[str]:
    from keyrack.backends.redis import key_name

    return [key_name(tenant, "rl", slot) for slot in SLOTS] + [
        key_name(tenant, kind, "k:key_a") for kind in ("cr", "bg", "ls")
    ]


@settings(
    max_examples=int(os.environ.get("KEYRACK_DIFF_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policy=policies,
    start=st.integers(0, DAY),
    sequence=st.lists(steps, min_size=1, max_size=25),
)
async def test_redis_answers_like_the_reference(
    redis_store, redis_client, clock: FakeClock, *, policy, start, sequence
):
    tenant = new_tenant()
    now_ms = T0 + start
    set_ms(clock, now_ms)
    memory = MemoryLimitStore(clock.now)
    redis = redis_store
    try:
        for dt, step in sequence:
            now_ms += dt
            set_ms(clock, now_ms)
            kind = step[0]
            expected: object
            actual: object
            if kind == "apply":
                request = build_request(tenant, policy, now_ms, step)
                dry_run = step[5]
                expected = await memory.apply(request, dry_run=dry_run)
                actual = await redis.apply(request, dry_run=dry_run)
                event(f"apply: {expected.outcome}{' (dry run)' if dry_run else ''}")
            elif kind == "release":
                expected = await memory.release(tenant, "k:key_a", step[1])
                actual = await redis.release(tenant, "k:key_a", step[1])
            elif kind == "set":
                state = CreditState(step[1], now_ms, step[2])
                await memory.set_credits(tenant, "k:key_a", state)
                await redis.set_credits(tenant, "k:key_a", state)
                expected = actual = None
            else:
                charge = credit_charge(policy, now_ms, 1, step[2], 0)
                expected = await memory.adjust_credits(tenant, charge, step[1])
                actual = await redis.adjust_credits(tenant, charge, step[1])
            assert expected == actual, (dt, step)
    finally:
        await redis_client.delete(*key_names(tenant))

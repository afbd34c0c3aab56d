"""The ``LimitStore`` contract, run against every backend (memory always, Redis when configured).

Time is the test's ``FakeClock`` (both stores read it), starting on a bucket boundary of every
window used here, so the reported ``reset_at_ms`` values are exact numbers.
"""

from __future__ import annotations

import pytest

from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    BudgetState,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitAnswer,
    LimitRequest,
    RateCharge,
    RateReport,
)
from keyrack.domain.ratelimit import RateLimit, State
from keyrack.domain.verification import Outcome
from keyrack.services.ports import LimitStore
from tests.fakes import FakeClock
from tests.integration.backends.conftest import set_ms

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000  # FakeClock's start, in ms: on every bucket boundary used below
DAY = 86_400_000
MIDNIGHT = T0 - T0 % DAY  # 2027-01-15T00:00Z, the latest daily refill at T0
PER_10S = RateLimit("requests", 3, 10_000)  # bucket_ms == 500
TOKENS = RateLimit("tokens", 100, 60_000)  # bucket_ms == 3_000


def rate(limit: RateLimit = PER_10S, cost: int = 1, slot: str | None = None) -> RateCharge:
    return RateCharge(slot or f"k:key_1:{limit.name}", limit, cost)


def credits(
    cost: int = 1,
    *,
    seed: int = 10,
    version: int = 1,
    refilled_at: int = T0 - 1_000,
    amount: int = 0,
    boundary: int = NEVER,
    slot: str = "k:key_1",
) -> CreditCharge:
    return CreditCharge(slot, seed, refilled_at, version, amount, boundary, cost)


def budget(
    spend: int = 100,
    *,
    limit: int = 1_000,
    period_start: int = NEVER,
    seed_spent: int = 0,
    seed_period_start: int = 0,
    slot: str = "k:key_1",
) -> BudgetCharge:
    return BudgetCharge(
        slot, limit, limit * 8 // 10, period_start, seed_spent, seed_period_start, spend
    )


def lease(lease_id: str, *, max_concurrency: int = 2, ttl_ms: int = 5_000) -> LeaseCharge:
    return LeaseCharge("k:key_1", max_concurrency, ttl_ms, lease_id)


class TestRateLimits:
    async def test_admits_up_to_the_limit_then_refuses_with_remaining_and_reset(
        self, limit_store: LimitStore, tenant: str
    ):
        request = LimitRequest(tenant, rates=(rate(),))
        reset_at = T0 + 500 + 10_000 - 1  # end of the first bucket, plus the window

        answers = [await limit_store.apply(request) for _ in range(4)]

        assert [Outcome.VALID] * 3 + [Outcome.RATE_LIMITED] == [a.outcome for a in answers]
        assert [2, 1, 0, 0] == [a.rates[0].remaining for a in answers]
        assert RateReport("requests", 3, 0, reset_at) == answers[3].rates[0]
        assert all(a.rates[0].reset_at_ms == reset_at for a in answers)

    async def test_units_come_back_when_their_bucket_leaves_the_window(
        self, limit_store: LimitStore, tenant: str, clock: FakeClock
    ):
        request = LimitRequest(tenant, rates=(rate(),))
        for _ in range(3):
            await limit_store.apply(request)

        set_ms(clock, T0 + 10_498)  # one millisecond before the reset
        refused = await limit_store.apply(request)
        set_ms(clock, T0 + 10_499)
        admitted = await limit_store.apply(request)

        assert Outcome.RATE_LIMITED == refused.outcome
        assert Outcome.VALID == admitted.outcome
        assert 2 == admitted.rates[0].remaining

    async def test_admitted_answer_carries_the_new_state_to_write_behind(
        self, limit_store: LimitStore, tenant: str
    ):
        answer = await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=2),)))

        assert (("k:key_1:requests", State(500, (T0 // 500,), (2,))),) == answer.new_rates

    async def test_several_limits_are_all_or_nothing(self, limit_store: LimitStore, tenant: str):
        both = LimitRequest(tenant, rates=(rate(), rate(TOKENS, cost=30)))
        await limit_store.apply(both)
        await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=2),)))

        refused = await limit_store.apply(both)
        tokens_after = await limit_store.apply(LimitRequest(tenant, rates=(rate(TOKENS, cost=0),)))

        assert Outcome.RATE_LIMITED == refused.outcome
        assert [0, 70] == [r.remaining for r in refused.rates]
        assert () == refused.new_rates
        assert 70 == tokens_after.rates[0].remaining  # the tokens were not charged

    async def test_a_cost_above_the_limit_is_refused_and_reported_as_it_stands(
        self, limit_store: LimitStore, tenant: str
    ):
        answer = await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=4),)))

        assert LimitAnswer(Outcome.RATE_LIMITED, (RateReport("requests", 3, 3, T0),)) == answer

    async def test_a_changed_window_keeps_counting_what_was_admitted(
        self, limit_store: LimitStore, tenant: str
    ):
        await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=3),)))
        wider = RateLimit("requests", 3, 20_000)

        answer = await limit_store.apply(LimitRequest(tenant, rates=(rate(wider),)))

        assert Outcome.RATE_LIMITED == answer.outcome

    async def test_same_slot_in_another_tenant_is_independent(
        self, limit_store: LimitStore, tenant: str, tenants
    ):
        other = tenants.new()
        await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=3),)))

        answer = await limit_store.apply(LimitRequest(other, rates=(rate(),)))

        assert Outcome.VALID == answer.outcome
        assert 2 == answer.rates[0].remaining


class TestDeniedConsumesNothing:
    async def test_nothing_is_charged_when_one_limit_refuses(
        self, limit_store: LimitStore, tenant: str
    ):
        await limit_store.apply(LimitRequest(tenant, rates=(rate(cost=3),)))
        full = LimitRequest(
            tenant,
            rates=(rate(), rate(TOKENS, cost=10)),
            credits=credits(2),
            budget=budget(100),
            lease=lease("l1", max_concurrency=1),
        )

        refused = await limit_store.apply(full)
        lease_only = await limit_store.apply(
            LimitRequest(tenant, lease=lease("l2", max_concurrency=1))
        )
        peek = await limit_store.apply(
            LimitRequest(tenant, rates=(rate(TOKENS),), credits=credits(), budget=budget()),
            dry_run=True,
        )

        assert Outcome.RATE_LIMITED == refused.outcome
        assert (None, (), None, None) == (
            refused.lease_id,
            refused.new_rates,
            refused.new_credits,
            refused.new_budget,
        )
        assert CreditState(10, T0 - 1_000, 1) == refused.credits  # as it stands, not spent
        assert BudgetState(0, 0) == refused.budget
        assert "l2" == lease_only.lease_id  # l1 took no slot
        assert 100 == peek.rates[0].remaining
        assert CreditState(10, T0 - 1_000, 1) == peek.credits
        assert BudgetState(0, 0) == peek.budget


class TestOutcomeOrder:
    @pytest.mark.parametrize(
        ("failing", "expected"),
        [
            ({"rate", "lease", "credits", "budget"}, Outcome.RATE_LIMITED),
            ({"lease", "credits", "budget"}, Outcome.CONCURRENCY_LIMITED),
            ({"credits", "budget"}, Outcome.USAGE_EXCEEDED),
            ({"budget"}, Outcome.BUDGET_EXCEEDED),
            (set(), Outcome.VALID),
        ],
        ids=["rate-first", "concurrency-second", "usage-third", "budget-fourth", "valid"],
    )
    async def test_first_failing_limit_wins(
        self, limit_store: LimitStore, tenant: str, failing: set[str], expected: Outcome
    ):
        await limit_store.apply(LimitRequest(tenant, lease=lease("held", max_concurrency=1)))
        request = LimitRequest(
            tenant,
            rates=(rate(cost=4 if "rate" in failing else 1),),
            credits=credits(11 if "credits" in failing else 1),
            budget=budget(1_001 if "budget" in failing else 1),
            lease=lease("new", max_concurrency=1 if "lease" in failing else 2),
        )

        answer = await limit_store.apply(request)

        assert expected == answer.outcome
        assert ("new" if expected is Outcome.VALID else None) == answer.lease_id


class TestCredits:
    async def test_seeds_from_the_snapshot_then_keeps_its_own_counter(
        self, limit_store: LimitStore, tenant: str
    ):
        first = await limit_store.apply(LimitRequest(tenant, credits=credits(3)))
        # The same snapshot again (an older write-behind): the stored counter wins.
        second = await limit_store.apply(LimitRequest(tenant, credits=credits(3)))

        assert (CreditState(7, T0 - 1_000, 1),) * 2 == (first.credits, first.new_credits)
        assert CreditState(4, T0 - 1_000, 1) == second.credits

    async def test_spending_more_than_is_left_is_refused(
        self, limit_store: LimitStore, tenant: str
    ):
        await limit_store.apply(LimitRequest(tenant, credits=credits(8)))

        refused = await limit_store.apply(LimitRequest(tenant, credits=credits(3)))
        exact = await limit_store.apply(LimitRequest(tenant, credits=credits(2)))

        assert LimitAnswer(Outcome.USAGE_EXCEEDED, (), CreditState(2, T0 - 1_000, 1)) == refused
        assert (Outcome.VALID, CreditState(0, T0 - 1_000, 1)) == (exact.outcome, exact.credits)

    async def test_a_newer_version_replaces_the_stored_counter(
        self, limit_store: LimitStore, tenant: str
    ):
        await limit_store.apply(LimitRequest(tenant, credits=credits(9)))

        answer = await limit_store.apply(
            LimitRequest(tenant, credits=credits(1, seed=50, version=2, refilled_at=T0))
        )

        assert CreditState(49, T0, 2) == answer.credits

    async def test_refills_to_the_amount_once_a_boundary_passed(
        self, limit_store: LimitStore, tenant: str, clock: FakeClock
    ):
        def daily(cost: int, boundary: int) -> CreditCharge:
            return credits(cost, amount=5, refilled_at=MIDNIGHT, boundary=boundary)

        await limit_store.apply(LimitRequest(tenant, credits=daily(4, MIDNIGHT)))
        clock.advance(86_400)

        refilled = await limit_store.apply(LimitRequest(tenant, credits=daily(1, MIDNIGHT + DAY)))
        again = await limit_store.apply(LimitRequest(tenant, credits=daily(1, MIDNIGHT + DAY)))

        assert CreditState(4, MIDNIGHT + DAY, 1) == refilled.credits
        assert CreditState(3, MIDNIGHT + DAY, 1) == again.credits  # one refill, not one per call

    async def test_a_refill_is_written_even_without_spending(
        self, limit_store: LimitStore, tenant: str
    ):
        charge = credits(0, amount=5, refilled_at=MIDNIGHT - DAY, boundary=MIDNIGHT)

        answer = await limit_store.apply(LimitRequest(tenant, credits=charge))
        unchanged = await limit_store.apply(LimitRequest(tenant, credits=charge))

        assert CreditState(5, MIDNIGHT, 1) == answer.new_credits
        assert (CreditState(5, MIDNIGHT, 1), None) == (unchanged.credits, unchanged.new_credits)

    async def test_set_replaces_whatever_is_stored(self, limit_store: LimitStore, tenant: str):
        await limit_store.apply(LimitRequest(tenant, credits=credits(1, version=3)))

        await limit_store.set_credits(tenant, "k:key_1", CreditState(42, T0, 1))
        answer = await limit_store.apply(LimitRequest(tenant, credits=credits(2, version=1)))

        assert CreditState(40, T0, 1) == answer.credits

    @pytest.mark.parametrize(
        ("delta", "expected"),
        [(5, CreditState(15, T0 - 1_000, 1)), (-10, CreditState(0, T0 - 1_000, 1)), (-11, None)],
        ids=["up", "down-to-zero", "below-zero-refused"],
    )
    async def test_adjust_adds_to_the_current_balance(
        self, limit_store: LimitStore, tenant: str, delta: int, expected: CreditState | None
    ):
        adjusted = await limit_store.adjust_credits(tenant, credits(), delta)
        after = await limit_store.apply(LimitRequest(tenant, credits=credits(0)), dry_run=True)

        assert expected == adjusted
        assert (expected or CreditState(10, T0 - 1_000, 1)) == after.credits

    async def test_adjust_refuses_past_the_maximum(self, limit_store: LimitStore, tenant: str):
        await limit_store.set_credits(tenant, "k:key_1", CreditState(2**53 - 2, T0, 1))

        assert CreditState(2**53 - 1, T0, 1) == await limit_store.adjust_credits(
            tenant, credits(), 1
        )
        assert await limit_store.adjust_credits(tenant, credits(), 1) is None
        assert await limit_store.adjust_credits(tenant, credits(), 2**60) is None

    async def test_adjust_applies_a_due_refill_first(self, limit_store: LimitStore, tenant: str):
        charge = credits(amount=100, refilled_at=MIDNIGHT - DAY, boundary=MIDNIGHT)

        assert CreditState(90, MIDNIGHT, 1) == await limit_store.adjust_credits(tenant, charge, -10)


class TestBudget:
    async def test_charges_until_the_limit(self, limit_store: LimitStore, tenant: str):
        await limit_store.apply(LimitRequest(tenant, budget=budget(900)))

        refused = await limit_store.apply(LimitRequest(tenant, budget=budget(101)))
        exact = await limit_store.apply(LimitRequest(tenant, budget=budget(100)))

        assert (Outcome.BUDGET_EXCEEDED, BudgetState(900, 0)) == (refused.outcome, refused.budget)
        assert (Outcome.VALID, BudgetState(1_000, 0)) == (exact.outcome, exact.budget)
        assert BudgetState(1_000, 0) == exact.new_budget

    async def test_rolls_over_when_a_new_period_starts(
        self, limit_store: LimitStore, tenant: str, clock: FakeClock
    ):
        await limit_store.apply(LimitRequest(tenant, budget=budget(1_000, period_start=MIDNIGHT)))
        refused = await limit_store.apply(
            LimitRequest(tenant, budget=budget(1, period_start=MIDNIGHT))
        )
        clock.advance(86_400)

        next_day = await limit_store.apply(
            LimitRequest(tenant, budget=budget(300, period_start=MIDNIGHT + DAY))
        )

        assert Outcome.BUDGET_EXCEEDED == refused.outcome
        assert (Outcome.VALID, BudgetState(300, MIDNIGHT + DAY)) == (
            next_day.outcome,
            next_day.budget,
        )

    async def test_seeds_from_the_snapshot(self, limit_store: LimitStore, tenant: str):
        seeded = budget(50, seed_spent=940, seed_period_start=MIDNIGHT, period_start=MIDNIGHT)

        answer = await limit_store.apply(LimitRequest(tenant, budget=seeded))
        refused = await limit_store.apply(LimitRequest(tenant, budget=seeded._replace(spend=11)))

        assert BudgetState(990, MIDNIGHT) == answer.budget
        assert Outcome.BUDGET_EXCEEDED == refused.outcome


class TestLeases:
    async def test_acquire_up_to_the_maximum_then_concurrency_limited(
        self, limit_store: LimitStore, tenant: str
    ):
        answers = [
            await limit_store.apply(LimitRequest(tenant, lease=lease(f"l{i}"))) for i in range(3)
        ]

        assert ["l0", "l1", None] == [a.lease_id for a in answers]
        assert Outcome.CONCURRENCY_LIMITED == answers[2].outcome

    async def test_release_frees_the_slot_and_is_idempotent(
        self, limit_store: LimitStore, tenant: str
    ):
        for i in range(2):
            await limit_store.apply(LimitRequest(tenant, lease=lease(f"l{i}")))

        first = await limit_store.release(tenant, "k:key_1", "l0")
        second = await limit_store.release(tenant, "k:key_1", "l0")
        taken = await limit_store.apply(LimitRequest(tenant, lease=lease("l2")))

        assert (True, False) == (first, second)
        assert "l2" == taken.lease_id
        assert await limit_store.release(tenant, "k:key_1", "never-taken") is False

    async def test_expiry_frees_the_slot(
        self, limit_store: LimitStore, tenant: str, clock: FakeClock
    ):
        await limit_store.apply(LimitRequest(tenant, lease=lease("l0", max_concurrency=1)))
        set_ms(clock, T0 + 4_999)
        still_held = await limit_store.apply(
            LimitRequest(tenant, lease=lease("l1", max_concurrency=1))
        )
        set_ms(clock, T0 + 5_000)

        freed = await limit_store.apply(LimitRequest(tenant, lease=lease("l1", max_concurrency=1)))
        expired_release = await limit_store.release(tenant, "k:key_1", "l0")

        assert Outcome.CONCURRENCY_LIMITED == still_held.outcome
        assert (Outcome.VALID, "l1") == (freed.outcome, freed.lease_id)
        assert expired_release is False

    async def test_leases_of_another_tenant_do_not_count(
        self, limit_store: LimitStore, tenant: str, tenants
    ):
        await limit_store.apply(LimitRequest(tenant, lease=lease("l0", max_concurrency=1)))

        other = await limit_store.apply(
            LimitRequest(tenants.new(), lease=lease("l0", max_concurrency=1))
        )

        assert "l0" == other.lease_id
        assert await limit_store.release(tenant, "k:key_1", "l0") is True


class TestDryRun:
    async def test_reports_without_consuming(self, limit_store: LimitStore, tenant: str):
        request = LimitRequest(
            tenant,
            rates=(rate(cost=2),),
            credits=credits(5),
            budget=budget(500),
            lease=lease("l0", max_concurrency=1),
        )
        await limit_store.apply(request._replace(lease=None))

        peeks = [await limit_store.apply(request, dry_run=True) for _ in range(2)]
        admitted = await limit_store.apply(request._replace(rates=(rate(),)))

        expected = LimitAnswer(
            Outcome.VALID,
            (RateReport("requests", 3, 1, T0 + 10_499),),
            CreditState(5, T0 - 1_000, 1),
            BudgetState(500, 0),
        )
        assert [expected, expected] == peeks
        assert (Outcome.VALID, "l0") == (admitted.outcome, admitted.lease_id)

    async def test_an_empty_request_is_valid(self, limit_store: LimitStore, tenant: str):
        assert LimitAnswer(Outcome.VALID) == await limit_store.apply(LimitRequest(tenant))

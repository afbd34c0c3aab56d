"""The failure policy around the shared limit store (DESIGN.md §10), over in-memory stores."""

import logging

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitAnswer,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome
from keyrack.errors import BackendUnavailable
from keyrack.services.limits import ResilientLimits
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

TENANT = "ten_policy"
PER_MINUTE = RateLimit("requests", 2, 60_000)
RATE_ONLY = LimitRequest(TENANT, rates=(RateCharge("k:key_1:requests", PER_MINUTE, 1),))
CREDITS = CreditCharge("k:key_1", 100, 0, 1, 0, NEVER, 1)
WITH_CREDITS = LimitRequest(TENANT, rates=RATE_ONLY.rates, credits=CREDITS)
WITH_BUDGET = LimitRequest(
    TENANT, rates=RATE_ONLY.rates, budget=BudgetCharge("k:key_1", 1_000, 800, NEVER, 0, 0, 1)
)
WITH_LEASE = LimitRequest(
    TENANT, rates=RATE_ONLY.rates, lease=LeaseCharge("k:key_1", 5, 60_000, "lse_1")
)


class SwitchableStore:
    """A ``LimitStore`` over memory that fails like an unreachable Redis while ``down``."""

    def __init__(self, clock: FakeClock) -> None:
        self.inner = MemoryLimitStore(clock.now)
        self.down = False
        self.calls = 0
        self.closed = False
        self.fail_close = False

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("the limit store is unavailable; retry later")

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        self._call()
        return await self.inner.apply(request, dry_run=dry_run)

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        self._call()
        return await self.inner.release(tenant_id, slot, lease_id)

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        self._call()
        await self.inner.set_credits(tenant_id, slot, state)

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        self._call()
        return await self.inner.adjust_credits(tenant_id, charge, delta)

    async def close(self) -> None:
        self.closed = True
        if self.fail_close:
            raise BackendUnavailable("the limit store is unavailable; retry later")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def shared(clock):
    return SwitchableStore(clock)


@pytest.fixture
def local(clock):
    return SwitchableStore(clock)


@pytest.fixture
def limits(clock, shared, local):
    return ResilientLimits(shared, local, clock=clock)


class TestSharedStoreUp:
    async def test_every_request_is_decided_by_the_shared_store(self, limits, shared, local):
        answers = [await limits.apply(request) for request in (WITH_CREDITS, WITH_BUDGET)]

        assert [Outcome.VALID, Outcome.VALID] == [a.outcome for a in answers]
        assert CreditState(99, 0, 1) == answers[0].credits
        assert (2, 0) == (shared.calls, local.calls)
        assert (0, 0) == (limits.fallback_count, limits.fail_closed_count)

    async def test_a_denial_of_the_shared_store_is_its_answer(self, limits, local):
        answers = [(await limits.apply(RATE_ONLY)).outcome for _ in range(3)]

        assert [Outcome.VALID, Outcome.VALID, Outcome.RATE_LIMITED] == answers
        assert 0 == local.calls

    async def test_a_dry_run_reaches_the_shared_store_and_consumes_nothing(self, limits, shared):
        dry = await limits.apply(WITH_CREDITS, dry_run=True)
        real = await limits.apply(WITH_CREDITS)

        assert (Outcome.VALID, CreditState(100, 0, 1)) == (dry.outcome, dry.credits)
        assert CreditState(99, 0, 1) == real.credits
        assert 2 == shared.calls

    async def test_release_set_and_adjust_go_to_the_shared_store(self, limits, shared, local):
        taken = await limits.apply(WITH_LEASE)
        await limits.set_credits(TENANT, "k:key_1", CreditState(10, 0, 2))
        adjusted = await limits.adjust_credits(TENANT, CREDITS, -3)
        released = await limits.release(TENANT, "k:key_1", "lse_1")
        again = await limits.release(TENANT, "k:key_1", "lse_1")

        assert "lse_1" == taken.lease_id
        assert CreditState(7, 0, 2) == adjusted
        assert (True, False) == (released, again)
        assert 0 == local.calls


class TestSharedStoreDown:
    async def test_rate_limits_fall_back_to_the_local_store_and_are_counted(
        self, limits, shared, local, caplog
    ):
        shared.down = True

        with caplog.at_level(logging.WARNING, logger="keyrack.services.limits"):
            answers = [(await limits.apply(RATE_ONLY)).outcome for _ in range(3)]

        # The local store counts from zero and enforces the same limit.
        assert [Outcome.VALID, Outcome.VALID, Outcome.RATE_LIMITED] == answers
        assert (3, 0) == (limits.fallback_count, limits.fail_closed_count)
        assert 3 == local.calls
        messages = [r.getMessage() for r in caplog.records]
        assert 1 == messages.count("limits.shared_store_unavailable")
        assert 3 == messages.count("limits.local_fallback")
        unavailable = next(
            r for r in caplog.records if r.getMessage() == "limits.shared_store_unavailable"
        )
        assert "BackendUnavailable" == unavailable.error

    @pytest.mark.parametrize(
        "request_",
        [WITH_CREDITS, WITH_BUDGET, WITH_LEASE],
        ids=["credits", "budget", "lease"],
    )
    async def test_credits_budgets_and_leases_fail_closed(self, limits, shared, local, request_):
        shared.down = True

        answer = await limits.apply(request_)

        assert LimitAnswer(Outcome.LIMITS_UNAVAILABLE) == answer
        assert (0, 1) == (limits.fallback_count, limits.fail_closed_count)
        assert 0 == local.calls  # nothing is charged anywhere, not even the rate limits

    async def test_a_dry_run_reports_no_counters(self, limits, shared, local):
        shared.down = True

        answer = await limits.apply(WITH_CREDITS, dry_run=True)

        assert LimitAnswer(Outcome.VALID) == answer
        assert (0, 0) == (limits.fallback_count, limits.fail_closed_count)
        assert 0 == local.calls

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda limits: limits.release(TENANT, "k:key_1", "lse_1"), id="release"),
            pytest.param(
                lambda limits: limits.set_credits(TENANT, "k:key_1", CreditState(1, 0, 1)),
                id="set_credits",
            ),
            pytest.param(lambda limits: limits.adjust_credits(TENANT, CREDITS, 1), id="adjust"),
        ],
    )
    async def test_management_calls_raise_instead_of_falling_back(
        self, limits, shared, local, call
    ):
        shared.down = True

        with pytest.raises(BackendUnavailable):
            await call(limits)

        assert 0 == local.calls


class TestRetry:
    async def test_the_shared_store_is_not_tried_again_within_the_retry_period(
        self, limits, shared, clock
    ):
        shared.down = True
        await limits.apply(RATE_ONLY)
        shared.down = False  # back, but not yet noticed

        clock.advance(0.999)
        still_local = await limits.apply(RATE_ONLY)
        refused = await limits.apply(WITH_CREDITS)

        assert Outcome.VALID == still_local.outcome
        assert LimitAnswer(Outcome.LIMITS_UNAVAILABLE) == refused
        assert 1 == shared.calls
        assert (2, 1) == (limits.fallback_count, limits.fail_closed_count)

    async def test_the_shared_store_is_used_again_once_the_retry_period_ends(
        self, limits, shared, local, clock
    ):
        shared.down = True
        await limits.apply(RATE_ONLY)
        shared.down = False

        clock.advance(1.0)
        back = await limits.apply(WITH_CREDITS)

        assert (Outcome.VALID, CreditState(99, 0, 1)) == (back.outcome, back.credits)
        assert 2 == shared.calls
        assert 1 == local.calls

    async def test_a_store_still_down_after_the_period_is_marked_down_again(
        self, limits, shared, clock
    ):
        shared.down = True
        await limits.apply(RATE_ONLY)

        clock.advance(1.0)
        await limits.apply(RATE_ONLY)  # tried again, fails again
        clock.advance(0.5)
        await limits.apply(RATE_ONLY)  # within the new period: not tried

        assert 2 == shared.calls
        assert 3 == limits.fallback_count

    async def test_the_retry_period_is_configurable(self, clock, shared, local):
        limits = ResilientLimits(shared, local, clock=clock, retry_seconds=5.0)
        shared.down = True
        await limits.apply(RATE_ONLY)
        shared.down = False

        clock.advance(4.0)
        await limits.apply(RATE_ONLY)
        calls_within = shared.calls
        clock.advance(1.0)
        await limits.apply(RATE_ONLY)

        assert (1, 2) == (calls_within, shared.calls)
        assert 2 == limits.fallback_count


class TestClose:
    async def test_closes_both_stores(self, limits, shared, local):
        await limits.close()

        assert (True, True) == (shared.closed, local.closed)

    async def test_the_local_store_is_closed_even_when_closing_the_shared_one_fails(
        self, limits, shared, local
    ):
        shared.fail_close = True

        with pytest.raises(BackendUnavailable):
            await limits.close()

        assert local.closed

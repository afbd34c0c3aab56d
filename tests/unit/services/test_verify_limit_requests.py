"""Verify's charges to the limit store: built once per key, day, cost and spend, then reused.

A warm verify of a key with limits sends the limit store the request it sent last time for the
same key, UTC day, cost and spend (only a lease, when the key takes one, is new each time). The
tests hold that reuse to the answers a fresh request would give: every limit is still charged,
per-limit overrides are never reused, a new day brings its refill, and leases stay per verify.

The keys are warm: their records (with the limit plan the SQL lookup would build) sit in the
key cache, where verify finds them without a unit of work.
"""

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain import keys as keyformat
from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits, Refill, RefillInterval
from keyrack.domain.limits import build_plan
from keyrack.domain.models import KeyRecord, KeyStatus, Limits
from keyrack.domain.policy import KeyPolicy
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome, VerifyFacts
from keyrack.services.verify import VerifyService

pytestmark = pytest.mark.anyio

DAY = 86_400
PER_MINUTE = RateLimit("requests", 100, 60_000)
TOKENS = RateLimit("tokens", 1_000, 60_000)
LIMITED = Limits(
    rate_limits=(PER_MINUTE, TOKENS),
    credits=Credits(50),
    budget=Budget(1_000, BudgetPeriod.DAY),
)


async def _key(svc, tenant, limits=LIMITED, policy=None):
    """A warm key of ``tenant`` with ``limits``: its secret, its record in the key cache."""
    number = len(svc.key_cache) + 1
    key_id = f"key_{number:022d}"
    secret = keyformat.generate("kr", entropy=bytes([number]) * 24)
    record = KeyRecord(
        key_id=key_id,
        tenant_id=tenant.id,
        secret_id=f"sec_{number}",
        pepper_version=svc.peppers.current_version,
        status=KeyStatus.ACTIVE,
        valid_until=None,
        name="k",
        owner_id=None,
        identity_id=None,
        meta={},
        permissions=(),
        roles=(),
        expires_at=None,
        policy=policy,
        plan=build_plan(
            key_id=key_id,
            rate_limits=limits.rate_limits,
            credits=limits.credits,
            credits_version=limits.credits_version,
            budget=limits.budget,
            max_concurrency=limits.max_concurrency,
            lease_ttl_seconds=limits.lease_ttl_seconds,
        ),
    )
    far = svc.clock.now() + 10 * DAY
    svc.key_cache.put(svc.peppers.digest(secret), record, owner=key_id, expires_at=far)
    return secret


def _remaining(result):
    limits = result.limits
    return (
        [report.remaining for report in limits.rates],
        limits.credits.remaining,
        limits.budget.spent,
    )


class TestReusedCharges:
    async def test_a_warm_verify_still_charges_every_limit(self, svc, tenant):
        secret = await _key(svc, tenant)
        facts = VerifyFacts(cost=2, spend=10)

        results = [await svc.verifier.verify(secret, facts=facts) for _ in range(3)]

        assert {Outcome.VALID} == {result.outcome for result in results}
        assert [
            ([98, 998], 48, 10),
            ([96, 996], 46, 20),
            ([94, 994], 44, 30),
        ] == [_remaining(result) for result in results]

    async def test_another_cost_or_spend_is_charged_as_asked(self, svc, tenant):
        secret = await _key(svc, tenant)

        first = await svc.verifier.verify(secret)
        costlier = await svc.verifier.verify(secret, facts=VerifyFacts(cost=5))
        spending = await svc.verifier.verify(secret, facts=VerifyFacts(spend=7))

        assert ([99, 999], 49, 0) == _remaining(first)
        assert ([94, 994], 44, 0) == _remaining(costlier)
        assert ([93, 993], 43, 7) == _remaining(spending)

    async def test_per_limit_overrides_are_charged_and_never_reused(self, svc, tenant):
        secret = await _key(svc, tenant)
        tokens = VerifyFacts(ratelimits=(("tokens", 300),))

        overridden = [await svc.verifier.verify(secret, facts=tokens) for _ in range(2)]
        plain = await svc.verifier.verify(secret)

        assert [([99, 700], 49, 0), ([98, 400], 48, 0)] == [_remaining(r) for r in overridden]
        assert ([97, 399], 47, 0) == _remaining(plain)

    async def test_a_new_utc_day_brings_its_refill_and_budget_period(self, svc, tenant):
        daily = Limits(credits=Credits(3, Refill(RefillInterval.DAILY, 5)), budget=LIMITED.budget)
        secret = await _key(svc, tenant, daily)
        facts = VerifyFacts(spend=400)
        await svc.verifier.verify(secret, facts=facts)
        same_day = await svc.verifier.verify(secret, facts=facts)

        svc.clock.advance(DAY)
        next_day = await svc.verifier.verify(secret, facts=facts)

        # Refilled to 5 at today's midnight (the balance predates it), then spent twice.
        assert (3, 800) == (same_day.limits.credits.remaining, same_day.limits.budget.spent)
        assert Outcome.VALID == next_day.outcome
        assert (4, 400) == (next_day.limits.credits.remaining, next_day.limits.budget.spent)

    async def test_each_verify_takes_its_own_lease(self, svc, tenant):
        secret = await _key(svc, tenant, Limits(rate_limits=(PER_MINUTE,), max_concurrency=2))

        results = [await svc.verifier.verify(secret) for _ in range(3)]

        leases = [result.limits.lease_id for result in results]
        assert [Outcome.VALID, Outcome.VALID, Outcome.CONCURRENCY_LIMITED] == [
            result.outcome for result in results
        ]
        assert leases[0] is not None
        assert leases[1] is not None
        assert leases[0] != leases[1]
        assert leases[2] is None

    async def test_a_denied_verify_takes_no_lease_and_charges_nothing(self, svc, tenant):
        limits = Limits(rate_limits=(PER_MINUTE,), credits=Credits(5), max_concurrency=1)
        secret = await _key(svc, tenant, limits, KeyPolicy(require_tls=True))

        denied = [await svc.verifier.verify(secret, facts=VerifyFacts(tls=False))] * 2
        admitted = await svc.verifier.verify(secret, facts=VerifyFacts(tls=True))

        assert {Outcome.FORBIDDEN} == {result.outcome for result in denied}
        assert {None} == {result.limits.lease_id for result in denied}
        assert (Outcome.VALID, [99], 4) == (
            admitted.outcome,
            [report.remaining for report in admitted.limits.rates],
            admitted.limits.credits.remaining,
        )
        assert admitted.limits.lease_id is not None


class TestBoundedReuse:
    async def test_past_its_size_the_reuse_starts_over_and_answers_stay_exact(self, svc, tenant):
        verifier = VerifyService(
            uow=svc.uow,
            cache=svc.key_cache,
            peppers=svc.peppers,
            clock=svc.clock,
            writes=svc.writes,
            limits=MemoryLimitStore(svc.clock.now),
            entropy=svc.entropy,
            request_cache_size=1,
        )
        first, second = await _key(svc, tenant), await _key(svc, tenant)

        results = [await verifier.verify(secret) for secret in (first, second) * 3]

        assert [
            ([99, 999], 49, 0),
            ([99, 999], 49, 0),
            ([98, 998], 48, 0),
            ([98, 998], 48, 0),
            ([97, 997], 47, 0),
            ([97, 997], 47, 0),
        ] == [_remaining(result) for result in results]

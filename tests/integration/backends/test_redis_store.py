"""What only the Redis store has: its key layout, expiries, Redis' clock and client settings."""

from __future__ import annotations

import time

import pytest

from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import MAX_COST, RateLimit
from keyrack.domain.verification import Outcome
from keyrack.errors import InvalidInput
from tests.fakes import FakeClock
from tests.integration.backends.conftest import Tenants, fake_now_ms, need_redis_url

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = 1_800_000_000_000
DAY = 86_400_000
MINUTE = RateLimit("requests", 10, 60_000)  # bucket_ms == 3_000


def full_request(tenant: str, *, lease_ttl_ms: int = 30_000, lease_id: str = "l1") -> LimitRequest:
    return LimitRequest(
        tenant,
        rates=(RateCharge("k:key_1:requests", MINUTE, 1),),
        credits=CreditCharge("k:key_1", 10, T0, 1, 0, NEVER, 1),
        budget=BudgetCharge("k:key_1", 1_000, 800, NEVER, 0, 0, 5),
        lease=LeaseCharge("k:key_1", 3, lease_ttl_ms, lease_id),
    )


@pytest.fixture
async def store(clock: FakeClock):
    from keyrack.backends.redis import RedisLimitStore

    redis_store = RedisLimitStore.from_url(need_redis_url(), now_ms=fake_now_ms(clock))
    try:
        yield redis_store
    finally:
        await redis_store.close()


class TestKeys:
    async def test_every_key_of_a_verify_is_namespaced_by_tenant_in_one_cluster_slot(
        self, store, redis_client, tenant: str
    ):
        from redis.crc import key_slot

        await store.apply(full_request(tenant))

        keys = sorted(k.decode() for k in await redis_client.keys(f"keyrack:{{{tenant}}}:*"))
        assert [
            f"keyrack:{{{tenant}}}:bg:k:key_1",
            f"keyrack:{{{tenant}}}:cr:k:key_1",
            f"keyrack:{{{tenant}}}:ls:k:key_1",
            f"keyrack:{{{tenant}}}:rl:k:key_1:requests",
        ] == keys
        assert 1 == len({key_slot(k.encode()) for k in keys})

    async def test_counters_are_stored_in_readable_hashes(self, store, redis_client, tenant: str):
        await store.apply(full_request(tenant))
        prefix = f"keyrack:{{{tenant}}}"

        rate = await redis_client.hgetall(f"{prefix}:rl:k:key_1:requests")
        balance = await redis_client.hgetall(f"{prefix}:cr:k:key_1")
        spent = await redis_client.hgetall(f"{prefix}:bg:k:key_1")
        leases = await redis_client.zrange(f"{prefix}:ls:k:key_1", 0, -1, withscores=True)

        assert {b"w": b"3000", str(T0 // 3_000).encode(): b"1"} == rate
        assert {b"remaining": b"9", b"refilled_at": str(T0).encode(), b"version": b"1"} == balance
        assert {b"spent": b"5", b"period_start": b"0"} == spent
        assert [(b"l1", float(T0 + 30_000))] == leases

    async def test_integers_up_to_2_53_survive_the_round_trip(
        self, store, redis_client, tenant: str
    ):
        huge = 2**53 - 1
        await store.set_credits(tenant, "k:key_1", CreditState(huge, huge - 1, huge - 2))

        answer = await store.apply(
            LimitRequest(tenant, credits=CreditCharge("k:key_1", 0, 0, 1, 0, NEVER, 0)),
            dry_run=True,
        )
        stored = await redis_client.hget(f"keyrack:{{{tenant}}}:cr:k:key_1", "remaining")

        assert CreditState(huge, huge - 1, huge - 2) == answer.credits
        assert str(huge).encode() == stored


class TestExpiry:
    async def test_nothing_is_kept_forever(self, store, redis_client, tenant: str):
        await store.apply(full_request(tenant, lease_ttl_ms=30_000, lease_id="short"))
        await store.apply(full_request(tenant, lease_ttl_ms=45_000, lease_id="long"))
        prefix = f"keyrack:{{{tenant}}}"

        rate_ttl = await redis_client.pttl(f"{prefix}:rl:k:key_1:requests")
        credit_ttl = await redis_client.pttl(f"{prefix}:cr:k:key_1")
        budget_ttl = await redis_client.pttl(f"{prefix}:bg:k:key_1")
        lease_ttl = await redis_client.pttl(f"{prefix}:ls:k:key_1")

        # The rate state lives until its newest bucket leaves the window: window + bucket.
        assert 60_000 + 3_000 - 1_000 < rate_ttl <= 60_000 + 3_000
        assert 39 * DAY < credit_ttl <= 40 * DAY
        assert 39 * DAY < budget_ttl <= 40 * DAY
        assert 44_000 < lease_ttl <= 45_000  # the longest-lived lease

    async def test_a_denied_request_writes_nothing(self, store, redis_client, tenant: str):
        refused = await store.apply(
            LimitRequest(tenant, rates=(RateCharge("k:key_1:requests", MINUTE, 11),))
        )

        assert Outcome.RATE_LIMITED == refused.outcome
        assert [] == await redis_client.keys(f"keyrack:{{{tenant}}}:*")


class TestRedisClock:
    async def test_without_now_ms_the_script_reads_redis_time(self, redis_client, tenant: str):
        from keyrack.backends.redis import RedisLimitStore

        store = RedisLimitStore.from_url(need_redis_url())
        try:
            before = int(time.time() * 1000)
            answer = await store.apply(
                LimitRequest(tenant, lease=LeaseCharge("k:key_1", 1, 10_000, "l1"))
            )
            after = int(time.time() * 1000)
            expires = await redis_client.zscore(f"keyrack:{{{tenant}}}:ls:k:key_1", "l1")
            released = await store.release(tenant, "k:key_1", "l1")
        finally:
            await store.close()

        assert "l1" == answer.lease_id
        # Redis and this process share the machine's clock (allow a little skew).
        assert before + 10_000 - 1_000 <= expires <= after + 10_000 + 1_000
        assert released is True


class TestConfiguration:
    def test_from_url_never_retries_and_times_out_fast(self):
        from keyrack.backends.redis import RedisLimitStore

        store = RedisLimitStore.from_url(
            "redis://127.0.0.1:6379/0", connect_timeout=0.3, timeout=0.4
        )
        kwargs = store._client.connection_pool.connection_kwargs

        retry = store._client.get_retry()
        assert retry is not None
        assert 0 == retry.get_retries()
        assert (0.3, 0.4) == (kwargs["socket_connect_timeout"], kwargs["socket_timeout"])
        assert 0 < kwargs["health_check_interval"]

    async def test_a_cost_out_of_bounds_is_refused_without_a_round_trip(self, store, tenant: str):
        for cost in (-1, MAX_COST + 1):
            request = LimitRequest(tenant, rates=(RateCharge("k:key_1:requests", MINUTE, cost),))
            with pytest.raises(InvalidInput):
                await store.apply(request)

        assert 0 == store.round_trips

    async def test_an_adjustment_out_of_range_needs_no_round_trip(self, store, tenant: str):
        charge = CreditCharge("k:key_1", 10, T0, 1, 0, NEVER, 0)

        assert await store.adjust_credits(tenant, charge, 2**53) is None
        assert await store.adjust_credits(tenant, charge, -(2**53)) is None
        assert 0 == store.round_trips

    async def test_an_empty_request_needs_no_round_trip(self, store, tenants: Tenants):
        answer = await store.apply(LimitRequest(tenants.new()))

        assert Outcome.VALID == answer.outcome
        assert 0 == store.round_trips


class TestNotAnOutage:
    async def test_a_foreign_value_under_our_key_is_an_error_not_unavailability(
        self, store, redis_client, tenant: str
    ):
        """Only connectivity becomes BackendUnavailable; a corrupt key must not look like one."""
        import redis.exceptions

        await redis_client.set(f"keyrack:{{{tenant}}}:rl:k:key_1:requests", "not a hash")

        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            await store.apply(
                LimitRequest(tenant, rates=(RateCharge("k:key_1:requests", MINUTE, 1),))
            )

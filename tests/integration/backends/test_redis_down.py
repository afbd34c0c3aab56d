"""Redis going away mid-run (DESIGN.md §10), with a real ``redis-server`` of the test's own.

The test starts a private server on a spare port and stops it with SIGKILL by its PID (no
goodbye to clients, exactly like a crashed or unreachable host), or freezes it with SIGSTOP
(a hung host: replies never come). ``ResilientLimits`` then answers rate-limit-only requests
from this process's own limits, refuses credits, budgets and leases with
``LIMITS_UNAVAILABLE``, and never raises; the raw store raises ``BackendUnavailable``, never a
redis-py exception. When the server is back, the shared store is used again once
``retry_seconds`` have passed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

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
from keyrack.domain.verification import Outcome
from keyrack.errors import BackendUnavailable
from keyrack.services.limits import ResilientLimits
from tests.fakes import FakeClock
from tests.integration.backends.conftest import RedisServer, fake_now_ms

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TENANT = "ten_down"
PER_MINUTE = RateLimit("requests", 3, 60_000)
RATE_ONLY = LimitRequest(TENANT, rates=(RateCharge("k:key_1:requests", PER_MINUTE, 1),))
CREDITS = CreditCharge("k:key_1", 100, 0, 1, 0, NEVER, 1)
WITH_CREDITS = LimitRequest(TENANT, credits=CREDITS)
WITH_BUDGET = LimitRequest(TENANT, budget=BudgetCharge("k:key_1", 1_000, 800, NEVER, 0, 0, 1))
WITH_LEASE = LimitRequest(TENANT, lease=LeaseCharge("k:key_1", 5, 60_000, "l1"))
TIMEOUT = 0.2


def _store(server: RedisServer, clock: FakeClock):
    from keyrack.backends.redis import RedisLimitStore

    return RedisLimitStore.from_url(
        server.url, connect_timeout=TIMEOUT, timeout=TIMEOUT, now_ms=fake_now_ms(clock)
    )


def _assert_unavailable(exc_info: pytest.ExceptionInfo[BackendUnavailable]) -> None:
    import redis.exceptions

    cause = exc_info.value.__cause__
    assert isinstance(cause, redis.exceptions.RedisError | OSError), repr(cause)


class TestKilled:
    async def test_falls_back_fails_closed_then_recovers(self, own_redis: RedisServer):
        clock = FakeClock()
        shared = _store(own_redis, clock)
        limits = ResilientLimits(shared, MemoryLimitStore(clock.now), clock=clock)
        try:
            assert Outcome.VALID == (await limits.apply(WITH_CREDITS)).outcome
            assert Outcome.VALID == (await limits.apply(RATE_ONLY)).outcome

            own_redis.kill()
            started = time.monotonic()
            local = [(await limits.apply(RATE_ONLY)).outcome for _ in range(4)]
            closed = [
                (await limits.apply(request)).outcome
                for request in (WITH_CREDITS, WITH_BUDGET, WITH_LEASE)
            ]
            elapsed = time.monotonic() - started

            # The local limiter counts from zero: 3 admitted, then its own limit refuses.
            assert [Outcome.VALID] * 3 + [Outcome.RATE_LIMITED] == local
            assert [Outcome.LIMITS_UNAVAILABLE] * 3 == closed
            assert (4, 3) == (limits.fallback_count, limits.fail_closed_count)
            assert elapsed < 2.0  # one failed attempt, then no retry for retry_seconds

            own_redis.start()  # the same port, empty (no persistence)
            still_down = await limits.apply(WITH_CREDITS)  # within retry_seconds: not retried
            clock.advance(1.0)
            back = await limits.apply(WITH_CREDITS)
            shared_rate = await limits.apply(RATE_ONLY)

            assert Outcome.LIMITS_UNAVAILABLE == still_down.outcome
            assert (Outcome.VALID, CreditState(99, 0, 1)) == (back.outcome, back.credits)
            assert (Outcome.VALID, 2) == (shared_rate.outcome, shared_rate.rates[0].remaining)
            assert (4, 4) == (limits.fallback_count, limits.fail_closed_count)
        finally:
            await limits.close()

    async def test_the_raw_store_raises_backend_unavailable(self, own_redis: RedisServer):
        clock = FakeClock()
        store = _store(own_redis, clock)
        try:
            await store.apply(WITH_LEASE)  # connected: the pool holds a live connection
            own_redis.kill()

            for call in (
                lambda: store.apply(RATE_ONLY),  # the pooled connection finds the server gone
                lambda: store.apply(RATE_ONLY),  # a new connection is refused
                lambda: store.apply(WITH_CREDITS, dry_run=True),
                lambda: store.release(TENANT, "k:key_1", "l1"),
                lambda: store.set_credits(TENANT, "k:key_1", CreditState(1, 0, 1)),
                lambda: store.adjust_credits(TENANT, CREDITS, 1),
            ):
                with pytest.raises(BackendUnavailable) as exc_info:
                    await call()
                _assert_unavailable(exc_info)
        finally:
            await store.close()

    async def test_management_calls_raise_backend_unavailable_through_the_policy(
        self, own_redis: RedisServer
    ):
        clock = FakeClock()
        limits = ResilientLimits(_store(own_redis, clock), MemoryLimitStore(clock.now), clock=clock)
        try:
            own_redis.kill()

            with pytest.raises(BackendUnavailable):
                await limits.release(TENANT, "k:key_1", "l1")
            with pytest.raises(BackendUnavailable):
                await limits.set_credits(TENANT, "k:key_1", CreditState(1, 0, 1))
            with pytest.raises(BackendUnavailable):
                await limits.adjust_credits(TENANT, CREDITS, 1)
        finally:
            await limits.close()


class TestFrozen:
    async def test_a_hung_server_times_out_into_backend_unavailable(self, own_redis: RedisServer):
        clock = FakeClock()
        store = _store(own_redis, clock)
        limits = ResilientLimits(store, MemoryLimitStore(clock.now), clock=clock)
        process = own_redis.process
        assert process is not None
        try:
            await store.apply(RATE_ONLY)
            os.kill(process.pid, signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as exc_info:
                await store.apply(RATE_ONLY)
            timed_out = time.monotonic() - started
            answer = await limits.apply(WITH_BUDGET)

            _assert_unavailable(exc_info)
            assert timed_out < TIMEOUT + 1.0
            assert Outcome.LIMITS_UNAVAILABLE == answer.outcome
        finally:
            os.kill(process.pid, signal.SIGCONT)
            await limits.close()


class TestBusy:
    async def test_a_server_busy_with_a_long_script_is_unavailable(self, own_redis: RedisServer):
        import anyio
        import redis
        import redis.exceptions

        blocker = redis.Redis.from_url(own_redis.url)
        killer = redis.Redis.from_url(own_redis.url)
        blocker.config_set("busy-reply-threshold", 20)
        clock = FakeClock()
        store = _store(own_redis, clock)

        def run_long_script() -> None:
            # Until SCRIPT KILL: Redis answers everyone else BUSY meanwhile.
            with contextlib.suppress(redis.exceptions.RedisError):
                blocker.eval("while true do end", 0)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, run_long_script)
                await anyio.sleep(0.2)
                with pytest.raises(BackendUnavailable) as exc_info:
                    await store.apply(RATE_ONLY)
                for _ in range(50):
                    try:
                        killer.script_kill()
                        break
                    except redis.exceptions.ResponseError:  # NOTBUSY: not started yet
                        await anyio.sleep(0.05)
                else:
                    own_redis.kill()  # never leave the thread blocked: the test fails below

            assert str(exc_info.value.__cause__).startswith("BUSY")
            assert Outcome.VALID == (await store.apply(RATE_ONLY)).outcome
        finally:
            blocker.close()
            killer.close()
            await store.close()

"""Limits are exact across processes: four OS processes hammer one slot through Redis.

Each process (``multiprocessing`` with ``spawn``: nothing inherited but the arguments) opens its
own ``RedisLimitStore`` on Redis' clock and runs eight concurrent tasks; a barrier starts every
phase in all processes at once. Whatever the interleaving, a limit of 100 per minute admits
exactly 100 of 400 attempts, 50 credits pay for exactly 50 of 100, and a concurrency of 5
hands out exactly 5 leases.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from keyrack.domain.limits import (
    NEVER,
    CreditCharge,
    LeaseCharge,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome
from tests.integration.backends.conftest import REDIS_URL

pytestmark = pytest.mark.redis

PROCESSES = 4
TASKS = 8  # concurrent tasks in each process
PHASES: dict[str, tuple[int, int]] = {
    # phase: (attempts per process, how many must be admitted in total)
    "rate": (100, 100),
    "credits": (25, 50),
    "leases": (20, 5),
}


def _request(phase: str, tenant: str, attempt_id: str) -> LimitRequest:
    if phase == "rate":
        limit = RateLimit("requests", 100, 60_000)
        return LimitRequest(tenant, rates=(RateCharge("n:hammer:one", limit, 1),))
    if phase == "credits":
        return LimitRequest(tenant, credits=CreditCharge("k:key_1", 50, 0, 1, 0, NEVER, 1))
    return LimitRequest(tenant, lease=LeaseCharge("k:key_1", 5, 60_000, attempt_id))


async def _hammer(url: str, tenant: str, barrier: Any, results: Any) -> None:
    from keyrack.backends.redis import RedisLimitStore

    store = RedisLimitStore.from_url(url, timeout=5.0)  # Redis' clock; patient under load
    try:
        for phase, (attempts, _) in PHASES.items():
            await asyncio.to_thread(barrier.wait, 60)
            admitted = 0

            async def task(worker: int, phase: str = phase, attempts: int = attempts) -> None:
                nonlocal admitted
                for i in range(worker, attempts, TASKS):
                    answer = await store.apply(_request(phase, tenant, f"{uuid.uuid4().hex}-{i}"))
                    admitted += answer.outcome is Outcome.VALID

            await asyncio.gather(*(task(w) for w in range(TASKS)))
            results.put((phase, admitted))
    finally:
        await store.close()


def hammer(url: str, tenant: str, barrier: Any, results: Any) -> None:
    """One process's share of every phase (the ``multiprocessing`` target)."""
    asyncio.run(_hammer(url, tenant, barrier, results))


@pytest.fixture(scope="module")
def admitted() -> Iterator[dict[str, int]]:
    """Admitted requests per phase, summed over the processes."""
    if not REDIS_URL:
        pytest.skip("KEYRACK_TEST_REDIS_URL is not set")
    import redis

    tenant = f"ten_test_{uuid.uuid4().hex}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=hammer, args=(REDIS_URL, tenant, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    totals = dict.fromkeys(PHASES, 0)
    try:
        for _ in range(PROCESSES * len(PHASES)):
            phase, count = results.get(timeout=120)
            totals[phase] += count
        for process in processes:
            process.join(timeout=30)
        assert [0] * PROCESSES == [process.exitcode for process in processes]
        yield totals
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            found = list(client.scan_iter(match=f"keyrack:{{{tenant}}}:*"))
            if found:
                client.delete(*found)
        finally:
            client.close()


class TestAcrossProcesses:
    def test_a_rate_limit_admits_exactly_its_limit(self, admitted: dict[str, int]):
        assert 100 == admitted["rate"]

    def test_credits_pay_for_exactly_the_balance(self, admitted: dict[str, int]):
        assert 50 == admitted["credits"]

    def test_concurrency_hands_out_exactly_max_leases(self, admitted: dict[str, int]):
        assert 5 == admitted["leases"]

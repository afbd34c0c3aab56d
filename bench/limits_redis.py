"""Shared limits in Redis: round trips per verify-like apply, and throughput against memory.

Store level (no HTTP): a verify-like ``apply`` charges 3 rate limits, credits and a budget.

1. **Round trips.** Sequential applies with 1, 3 and 8 rate limits (plus credits, budget and a
   lease), counted by ``RedisLimitStore.round_trips``. Target (DESIGN.md §9): exactly 1 per
   apply, whatever the number of limits.
2. **Throughput.** 32 asyncio tasks apply as fast as they can for a few seconds, against
   ``RedisLimitStore`` (Redis' clock, hiredis parser, one pooled connection per task) and, in
   the same run, against ``MemoryLimitStore``; rounds alternate and the figures are medians.
   Reported: applies/s of each, the memory/Redis ratio, Redis p50/p99 latency under load, and
   this process's CPU time per apply (for Redis: the client's share only; Redis' own time per
   call is in ``INFO commandstats``, ``cmdstat_evalsha``).
   Limits are huge, so every apply is admitted and writes.

Needs a Redis: ``--redis-url`` or ``KEYRACK_TEST_REDIS_URL`` (or ``KEYRACK_REDIS_URL``). The keys
it writes belong to one fresh tenant and are deleted at the end.

    python bench/limits_redis.py [--quick] [--redis-url URL] [--seconds S] [--rounds R]
        [--concurrency C] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from _common import Results, gc_paused, header, median

from keyrack.backends.memory import MemoryLimitStore
from keyrack.backends.redis import RedisLimitStore
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    CreditCharge,
    LeaseCharge,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome
from keyrack.services.ports import LimitStore

BIG = 2**52
WINDOWS_MS = (1_000, 60_000, 3_600_000, 86_400_000, 600_000, 10_000, 30_000, 7_200_000)


def verify_like(tenant: str, n_rates: int, *, lease_id: str | None = None) -> LimitRequest:
    """``n_rates`` rate limits + credits + budget (+ a lease): what a verify of a key charges."""
    return LimitRequest(
        tenant,
        rates=tuple(
            RateCharge(f"k:key_bench:r{i}", RateLimit(f"r{i}", BIG, WINDOWS_MS[i]), 1)
            for i in range(n_rates)
        ),
        credits=CreditCharge("k:key_bench", BIG, 0, 1, 0, NEVER, 1),
        budget=BudgetCharge("k:key_bench", BIG, BIG // 10 * 8, NEVER, 0, 0, 1),
        lease=None if lease_id is None else LeaseCharge("k:key_bench", BIG, 60_000, lease_id),
    )


async def round_trips(store: RedisLimitStore, tenant: str, n: int) -> dict[int, float]:
    """Round trips per apply for 1, 3 and 8 rate limits (with credits, budget and a lease)."""
    await store.apply(verify_like(tenant, 1, lease_id="warm-up"))  # connect, load the script
    per_apply: dict[int, float] = {}
    for n_rates in (1, 3, 8):
        before = store.round_trips
        for i in range(n):
            answer = await store.apply(verify_like(tenant, n_rates, lease_id=f"rt{n_rates}-{i}"))
            assert answer.outcome is Outcome.VALID, answer.outcome
        per_apply[n_rates] = (store.round_trips - before) / n
    return per_apply


async def throughput(
    store: LimitStore, request: LimitRequest, *, seconds: float, concurrency: int
) -> tuple[float, float, list[float]]:
    """``(applies/s, this process's CPU µs per apply, latencies in µs)`` of ``concurrency``
    tasks applying ``request``."""
    latencies: list[float] = []
    count = 0
    deadline = time.perf_counter() + seconds
    clock = time.perf_counter

    async def task() -> None:
        nonlocal count
        apply = store.apply
        while (started := clock()) < deadline:
            await apply(request)
            latencies.append((clock() - started) * 1e6)
            count += 1
            if not count % 64:
                await asyncio.sleep(0)  # the memory store never yields by itself

    with gc_paused():
        start = clock()
        cpu = time.process_time()
        await asyncio.gather(*(task() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
        elapsed = clock() - start
    return count / elapsed, cpu / count * 1e6, latencies


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run(args: argparse.Namespace) -> Results:
    """Both measurements; the RESULT lines."""
    tenant = f"ten_bench_{uuid.uuid4().hex[:12]}"
    redis_store = RedisLimitStore.from_url(args.redis_url, timeout=5.0)
    memory_store = MemoryLimitStore(time.time)
    results = Results()
    try:
        per_apply = await round_trips(redis_store, tenant, 100 if args.quick else 1_000)
        for n_rates, trips in per_apply.items():
            print(
                f"round trips per apply, {n_rates} rate limits + credits + budget + lease: {trips}"
            )
        worst = max(per_apply.values())
        results.add("redis_round_trips_per_apply", f"{worst:g}", "exactly 1", worst == 1)

        request = verify_like(tenant, 3)
        redis_rates: list[float] = []
        memory_rates: list[float] = []
        redis_cpu: list[float] = []
        memory_cpu: list[float] = []
        redis_latencies: list[float] = []
        await throughput(redis_store, request, seconds=0.5, concurrency=args.concurrency)  # warm-up
        for r in range(args.rounds):
            rate, cpu_us, latencies = await throughput(
                redis_store, request, seconds=args.seconds, concurrency=args.concurrency
            )
            redis_rates.append(rate)
            redis_cpu.append(cpu_us)
            redis_latencies.extend(latencies)
            memory_rate, memory_cpu_us, _ = await throughput(
                memory_store, request, seconds=args.seconds, concurrency=args.concurrency
            )
            memory_rates.append(memory_rate)
            memory_cpu.append(memory_cpu_us)
            print(
                f"round {r + 1}: redis {rate:,.0f} applies/s, memory {memory_rate:,.0f} applies/s"
            )
        redis_rate = median(redis_rates)
        memory_rate = median(memory_rates)
        p50 = percentile(redis_latencies, 50)
        p99 = percentile(redis_latencies, 99)
        print(
            f"3 rate limits + credits + budget at {args.concurrency} tasks: "
            f"redis {redis_rate:,.0f}/s (p50 {p50:.0f} µs, p99 {p99:.0f} µs), "
            f"memory {memory_rate:,.0f}/s, memory/redis {memory_rate / redis_rate:.1f}x"
        )
        results.add("redis_applies_per_s", f"{redis_rate:,.0f}/s", "report", True)
        results.add("memory_applies_per_s", f"{memory_rate:,.0f}/s", "report", True)
        results.add("memory_over_redis", f"{memory_rate / redis_rate:.1f}x", "report", True)
        results.add("redis_p99_us", f"{p99:.0f} µs (p50 {p50:.0f} µs)", "report", True)
        results.add(
            "client_cpu_per_apply",
            f"redis {median(redis_cpu):.0f} µs, memory {median(memory_cpu):.1f} µs",
            "report",
            True,
        )
    finally:
        found = [k async for k in redis_store._client.scan_iter(match=f"keyrack:{{{tenant}}}:*")]
        if found:
            await redis_store._client.delete(*found)
        await redis_store.close()
    return results


def main() -> int:
    """Parse flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~5 s smoke run")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("KEYRACK_TEST_REDIS_URL") or os.environ.get("KEYRACK_REDIS_URL"),
        help="Redis to use (default: KEYRACK_TEST_REDIS_URL, then KEYRACK_REDIS_URL)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="length of one round")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent tasks")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args()
    if not args.redis_url:
        parser.error("no Redis: pass --redis-url or set KEYRACK_TEST_REDIS_URL")
    args.seconds = args.seconds or (0.5 if args.quick else 2.0)
    args.rounds = args.rounds or (3 if args.quick else 5)
    header("limits_redis: round trips and throughput of the shared limit store", args.quick)
    runner: Callable[[Coroutine[Any, Any, Results]], Results] = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed: using asyncio's loop", file=sys.stderr)
        else:
            runner = uvloop.run
    print(f"loop: {args.loop}, concurrency: {args.concurrency}, redis: {args.redis_url}")
    return runner(run(args)).emit()


if __name__ == "__main__":
    raise SystemExit(main())

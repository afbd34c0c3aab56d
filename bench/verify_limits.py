"""Warm verify of a key with 3 rate limits + credits + budget vs a plain key (in-memory store).

Issue target: a key carrying three rate limits, credits and a budget verifies (warm, in
process, in-memory limit store) in at most 2x the time of a plain key's warm verify. Both keys
live in the same runtime; rounds alternate between them and the target uses the median of the
per-round ratios. Limits are set high enough that every verify is admitted (and charged).

    python bench/verify_limits.py [--quick] [--n N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import BenchSecrets, Results, gc_paused, header, median, spread, sqlite_url, us

from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits
from keyrack.domain.models import Limits
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome, VerifyFacts
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

TARGET_RATIO = 2.0
BIG = 2**52
FACTS = VerifyFacts(spend=1)


async def loop_ns(runtime: Runtime, secret: str, n: int, facts: VerifyFacts | None) -> float:
    """Nanoseconds per warm verify over ``n`` calls."""
    verify = runtime.verifier.verify
    with gc_paused():
        start = time.perf_counter_ns()
        if facts is None:
            for _ in range(n):
                await verify(secret)
        else:
            for _ in range(n):
                await verify(secret, facts=facts)
        return (time.perf_counter_ns() - start) / n


async def measure(n: int, rounds: int) -> tuple[list[float], list[float]]:
    """Plain-key rounds and limited-key rounds, alternating."""
    bench = BenchSecrets()
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        settings = bench.settings(sqlite_url(tmp), tmp, cache_ttl_seconds=3600)
        runtime = await open_runtime(settings)
        try:
            tenant = await runtime.tenants.create(OPERATOR, name="Bench")
            _, plain = await runtime.keys.create(OPERATOR, tenant.id, NewKey(name="plain"))
            limits = Limits(
                rate_limits=(
                    RateLimit("second", BIG, 1_000),
                    RateLimit("minute", BIG, 60_000),
                    RateLimit("day", BIG, 86_400_000),
                ),
                credits=Credits(BIG),
                budget=Budget(BIG, BudgetPeriod.MONTH),
            )
            _, limited = await runtime.keys.create(
                OPERATOR, tenant.id, NewKey(name="limited", limits=limits)
            )
            for secret, facts in ((plain, None), (limited, FACTS)):
                result = await runtime.verifier.verify(secret, facts=facts or VerifyFacts())
                if result.outcome is not Outcome.VALID:
                    raise SystemExit(f"setup verify answered {result.outcome}")
            limited_result = await runtime.verifier.verify(limited, facts=FACTS)
            if limited_result.limits is None or len(limited_result.limits.rates) != 3:
                raise SystemExit("the limited key did not charge its three limits")
            await loop_ns(runtime, plain, n // 4, None)
            await loop_ns(runtime, limited, n // 4, FACTS)
            plain_rounds: list[float] = []
            limited_rounds: list[float] = []
            for index in range(rounds):
                if index % 2 == 0:
                    plain_rounds.append(await loop_ns(runtime, plain, n, None))
                    limited_rounds.append(await loop_ns(runtime, limited, n, FACTS))
                else:
                    limited_rounds.append(await loop_ns(runtime, limited, n, FACTS))
                    plain_rounds.append(await loop_ns(runtime, plain, n, None))
        finally:
            await runtime.close()
    return plain_rounds, limited_rounds


def main() -> int:
    """Parse flags, run and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~5 s smoke run")
    parser.add_argument("--n", type=int, default=None, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds")
    args = parser.parse_args()
    n = args.n or 20_000
    rounds = args.rounds or (7 if args.quick else 31)
    header("verify_limits: 3 rate limits + credits + budget vs a plain key", args.quick)
    plain_rounds, limited_rounds = asyncio.run(measure(n, rounds))
    plain_ns = median(plain_rounds)
    limited_ns = median(limited_rounds)
    ratio = median([lim / p for lim, p in zip(limited_rounds, plain_rounds, strict=True)])
    print(f"N={n:,} per round, {rounds} rounds (median), GC paused in timed loops")
    print(f"plain key, warm verify:                 {us(plain_ns)}  ({spread(plain_rounds)})")
    print(f"3 rate limits + credits + budget, warm: {us(limited_ns)}  ({spread(limited_rounds)})")
    print(f"ratio limited / plain: {ratio:.2f}x (median of per-round ratios)")
    results = Results()
    results.add("plain_verify_us", f"{plain_ns / 1000:.2f} µs", "report", True)
    results.add("limited_verify_us", f"{limited_ns / 1000:.2f} µs", "report", True)
    results.add(
        "limited_vs_plain", f"{ratio:.2f}x", f"<= {TARGET_RATIO:.1f}x", ratio <= TARGET_RATIO
    )
    return results.emit()


if __name__ == "__main__":
    raise SystemExit(main())

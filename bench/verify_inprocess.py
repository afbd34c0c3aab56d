"""In-process warm verify against one ``hmac.new`` of the key (DESIGN.md §9).

Opens a runtime on a temporary SQLite database, creates a tenant and a key through the
services, verifies once (cold), then times N warm ``await runtime.verifier.verify(secret)`` in a
loop inside one coroutine against N ``hmac.new(pepper, key, sha256).digest()`` in a plain loop.
Rounds alternate between the two; each figure is the median of the rounds.

Target: warm verify ≤ 3x one ``hmac.new``.

    python bench/verify_inprocess.py [--quick] [--n N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _common import BenchSecrets, Results, gc_paused, header, median, spread, sqlite_url, us

from keyrack.domain import keys as keyformat
from keyrack.domain.verification import Outcome, VerifyResult, check_state
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

TARGET_RATIO = 3.0


def hmac_loop_ns(pepper: bytes, key_bytes: bytes, n: int) -> float:
    """Nanoseconds per ``hmac.new(pepper, key, sha256).digest()`` over ``n`` calls."""
    new = hmac.new
    sha256 = hashlib.sha256
    with gc_paused():
        start = time.perf_counter_ns()
        for _ in range(n):
            new(pepper, key_bytes, sha256).digest()
        return (time.perf_counter_ns() - start) / n


async def verify_loop_ns(runtime: Runtime, secret: str, n: int) -> float:
    """Nanoseconds per warm ``await runtime.verifier.verify(secret)`` over ``n`` calls."""
    verify = runtime.verifier.verify
    with gc_paused():
        start = time.perf_counter_ns()
        for _ in range(n):
            await verify(secret)
        return (time.perf_counter_ns() - start) / n


def step_costs(runtime: Runtime, secret: str, n: int) -> dict[str, float]:
    """Nanoseconds of each step a warm verify takes, timed alone (for the breakdown)."""
    peppers = runtime.peppers
    cache = runtime.key_cache
    digest = peppers.digest(secret)
    entry = cache.get(digest)
    assert entry is not None
    record = entry[0]
    assert record is not None
    now = time.time()
    writes = runtime.writes
    is_well_formed = keyformat.is_well_formed
    steps: dict[str, Callable[[], object]] = {
        "is_well_formed (regex + crc32 checksum)": lambda: is_well_formed(secret),
        "is_root_key": lambda: keyformat.is_root_key(secret),
        "Peppers.digest (keyed HMAC copy)": lambda: peppers.digest(secret),
        "clock.now (time.time)": time.time,
        "MemoryCache.get": lambda: cache.get(digest),
        "check_state": lambda: check_state(record, now=now),
        "WriteBehind.touch": lambda: writes.touch(record.tenant_id, record.key_id, now),
        "VerifyResult(...)": lambda: VerifyResult(Outcome.VALID, record),
        "(empty lambda call: overhead in each row above)": lambda: None,
    }
    costs: dict[str, float] = {}
    for name, fn in steps.items():
        fn()
        with gc_paused():
            start = time.perf_counter_ns()
            for _ in range(n):
                fn()
            costs[name] = (time.perf_counter_ns() - start) / n
    return costs


async def cold_verifies(runtime: Runtime, secrets: list[str]) -> tuple[float, float]:
    """Nanoseconds of the very first verify, and the median of the next cold ones."""
    latencies: list[float] = []
    for secret in secrets:
        start = time.perf_counter_ns()
        result = await runtime.verifier.verify(secret)
        latencies.append(time.perf_counter_ns() - start)
        if result.outcome is not Outcome.VALID:
            raise SystemExit(f"a cold verify answered {result.outcome}, expected VALID")
    return latencies[0], median(latencies[1:])


async def alternate_rounds(
    runtime: Runtime, secret: str, pepper: bytes, n: int, rounds: int
) -> tuple[list[float], list[float]]:
    """A warm-up of each, then ``rounds`` measured rounds in alternating order."""
    key_bytes = secret.encode()
    hmac_loop_ns(pepper, key_bytes, n // 4)
    await verify_loop_ns(runtime, secret, n // 4)
    hmac_rounds: list[float] = []
    verify_rounds: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            hmac_rounds.append(hmac_loop_ns(pepper, key_bytes, n))
            verify_rounds.append(await verify_loop_ns(runtime, secret, n))
        else:
            verify_rounds.append(await verify_loop_ns(runtime, secret, n))
            hmac_rounds.append(hmac_loop_ns(pepper, key_bytes, n))
    return hmac_rounds, verify_rounds


@dataclass
class Figures:
    """What one run measured (nanoseconds)."""

    cold_first: float
    cold: float
    hmac_rounds: list[float]
    verify_rounds: list[float]
    steps: dict[str, float]


async def measure(n: int, rounds: int, cold_keys: int) -> Figures:
    """Set up a runtime with keys, measure, tear down."""
    bench = BenchSecrets()
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        settings = bench.settings(sqlite_url(tmp), tmp, cache_ttl_seconds=3600)
        runtime = await open_runtime(settings)
        try:
            tenant = await runtime.tenants.create(OPERATOR, name="Bench")
            secrets = [
                (await runtime.keys.create(OPERATOR, tenant.id, NewKey(name=f"k{i}")))[1]
                for i in range(1 + cold_keys)
            ]
            secret = secrets[0]
            pepper = bench.pepper_bytes
            expected = hmac.new(pepper, secret.encode(), hashlib.sha256).digest()
            if runtime.peppers.digest(secret) != expected:
                raise SystemExit("the reference HMAC does not match the runtime's digest")
            cold_first, cold = await cold_verifies(runtime, secrets)
            hmac_rounds, verify_rounds = await alternate_rounds(runtime, secret, pepper, n, rounds)
            if (await runtime.verifier.verify(secret)).outcome is not Outcome.VALID:
                raise SystemExit("the warm verify stopped answering VALID")
            steps = step_costs(runtime, secret, 100_000 if rounds > 9 else 20_000)
        finally:
            await runtime.close()
    return Figures(cold_first, cold, hmac_rounds, verify_rounds, steps)


def report(figures: Figures, n: int, rounds: int, cold_keys: int, quick: bool) -> Results:
    """Print the figures and build the RESULT lines."""
    hmac_ns = median(figures.hmac_rounds)
    verify_ns = median(figures.verify_rounds)
    # Each verify round ran right next to one hmac round: their ratio cancels most of the drift
    # that other work on the machine causes, so the target uses the median of those ratios.
    ratio = median([v / h for v, h in zip(figures.verify_rounds, figures.hmac_rounds, strict=True)])
    print(f"N={n:,} per round, {rounds} rounds (median), GC paused in timed loops")
    print(f"cold verify, first ever (statement compiled): {us(figures.cold_first)}")
    print(f"cold verify, median of the next {cold_keys} keys: {us(figures.cold)}")
    print(f"hmac.new(pepper, key, sha256).digest(): {us(hmac_ns)}  ({spread(figures.hmac_rounds)})")
    print(
        f"warm await verifier.verify(secret):      {us(verify_ns)}  "
        f"({spread(figures.verify_rounds)})"
    )
    print(
        f"ratio warm verify / hmac.new: {ratio:.2f}x (median of per-round ratios; "
        f"ratio of the medians {verify_ns / hmac_ns:.2f}x)"
    )
    print("breakdown of a warm verify, each step timed alone in a loop of lambda calls:")
    for name, cost in figures.steps.items():
        print(f"  {name:<50} {cost / 1000:6.3f} µs")
    if quick:
        print("(quick mode: smoke run, figures are noisy)")
    results = Results()
    results.add("warm_verify_us", f"{verify_ns / 1000:.2f} µs", "report", True)
    results.add("hmac_new_us", f"{hmac_ns / 1000:.2f} µs", "report", True)
    results.add("cold_verify_us", f"{figures.cold / 1000:.0f} µs", "report", True)
    results.add(
        "warm_verify_vs_hmac",
        f"{ratio:.2f}x",
        f"<= {TARGET_RATIO:.1f}x",
        ratio <= TARGET_RATIO,
    )
    return results


def main() -> int:
    """Parse flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run")
    parser.add_argument("--n", type=int, default=None, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds")
    args = parser.parse_args()
    n = args.n or 20_000
    rounds = args.rounds or (9 if args.quick else 41)
    cold_keys = 5 if args.quick else 20
    header("verify_inprocess: warm verify vs hmac.new", args.quick)
    figures = asyncio.run(measure(n, rounds, cold_keys))
    return report(figures, n, rounds, cold_keys, args.quick).emit()


if __name__ == "__main__":
    raise SystemExit(main())

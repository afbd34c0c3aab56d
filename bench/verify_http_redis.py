"""HTTP verify of a key with limits: the in-memory limit store against Redis, same run.

Sets up a temporary SQLite database (a tenant, the bootstrap root key, and a key carrying 3
rate limits + credits + a budget, all far above what the run can spend, so every verify is
admitted and charged), copies it, and serves the real app (``keyrack serve``'s factory,
``keyrack.api.app:create_app_from_env``) twice with uvicorn: one worker each, both pinned to
core 0 (``taskset -c 0``), ``--loop uvloop --http httptools --no-access-log``. One server keeps
its counters in process (no ``KEYRACK_REDIS_URL``), the other in Redis (one Lua round trip per
verify). Each has its own copy of the database, so their write-behind flushes never meet.

The load comes from this process, pinned to core 1: 32 keep-alive connections, each with one
``POST /v1/verify`` ``{"key": …, "spend": 1}`` in flight at a time (closed loop, like
``wrk -c32``), on uvloop and raw sockets, timing every request. wrk is not needed; the client's
own CPU per request is printed, so a client-bound run shows. Redis runs wherever the OS puts
it (it shares the 2 cores). After a warm-up, rounds alternate memory / Redis (A B, B A, …);
figures are medians of the rounds, latency percentiles are over every request of the rounds.

Before timing, one verify on each server must answer ``VALID`` with 3 rate limits, credits and a
budget; after timing, the tenant's counters must exist in Redis (the Redis server really used
it) and the server logs must hold no fallback to local limits and no error.

Reported: requests/s of each backend, Redis/memory throughput ratio, p50/p99 of each. DESIGN.md
§9 asks p99 < 5 ms of a warm verify at 32 connections (see ``http_verify.py`` for why this
machine cannot reach it whatever the handler does).

Needs a Redis: ``--redis-url`` or ``KEYRACK_TEST_REDIS_URL`` (or ``KEYRACK_REDIS_URL``). The keys
the run writes belong to one fresh tenant and are deleted at the end.

    python bench/verify_http_redis.py [--quick] [--redis-url URL] [--duration S] [--rounds R]
        [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import BenchSecrets, Results, gc_paused, header, median, sqlite_url
from http_verify import serve

from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits
from keyrack.domain.models import Limits
from keyrack.domain.ratelimit import RateLimit
from keyrack.runtime import open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

APP = "keyrack.api.app:create_app_from_env"
VERIFY_PATH = "/v1/verify"
BIG = 2**52
BACKENDS = ("memory", "redis")
CLIENT_CORE = 1
_FALLBACK_EVENTS = ("limits.local_fallback", "limits.shared_store_unavailable")


@dataclass(frozen=True)
class Plan:
    """How long and how often the load runs."""

    duration: float
    rounds: int
    warmup: float
    connections: int
    quick: bool


@dataclass(frozen=True)
class LoadRun:
    """One closed-loop run against one server."""

    requests: int
    elapsed_s: float
    latencies_ns: list[int]
    failures: int
    client_cpu_s: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.elapsed_s

    def line(self) -> str:
        """One line for the log."""
        ordered = sorted(self.latencies_ns)
        return (
            f"{self.rps:9,.0f} req/s  p50 {percentile_ms(ordered, 50):6.2f} ms  "
            f"p99 {percentile_ms(ordered, 99):6.2f} ms  ({self.requests:,} requests, "
            f"{self.failures} not 200 VALID; client CPU "
            f"{self.client_cpu_s / max(self.requests, 1) * 1e6:.0f} µs/request, "
            f"{self.client_cpu_s / self.elapsed_s:.0%} of its core)"
        )


def percentile_ms(ordered_ns: list[int], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of sorted nanoseconds, in milliseconds."""
    if not ordered_ns:
        return float("nan")
    rank = max(0, min(len(ordered_ns) - 1, round(q / 100 * len(ordered_ns)) - 1))
    return ordered_ns[rank] / 1e6


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise SystemExit(f"a response without content-length: {head!r}")


async def closed_loop(port: int, request: bytes, *, seconds: float, connections: int) -> LoadRun:
    """``connections`` keep-alive connections, one request in flight each, for ``seconds``."""
    latencies: list[int] = []
    failures = 0
    clock = time.perf_counter_ns
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    deadline = clock() + int(seconds * 1e9)

    async def lane(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal failures
        record = latencies.append
        while (started := clock()) < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
            record(clock() - started)
            if not head.startswith(b"HTTP/1.1 200 ") or b'"code":"VALID"' not in body:
                failures += 1

    with gc_paused():
        cpu = time.process_time()
        start = clock()
        try:
            await asyncio.gather(*(lane(reader, writer) for reader, writer in streams))
        finally:
            for _, writer in streams:
                writer.close()
        elapsed = (clock() - start) / 1e9
        cpu = time.process_time() - cpu
    return LoadRun(len(latencies), elapsed, latencies, failures, cpu)


def http_request(port: int, secret: str, root_key: str) -> bytes:
    """The raw bytes of one verify request (the same for both servers)."""
    body = orjson.dumps({"key": secret, "spend": 1})
    return (
        f"POST {VERIFY_PATH} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Bearer {root_key}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


async def prepare(bench: BenchSecrets, url: str, tmp: Path) -> tuple[str, str, str]:
    """The tenant, the bootstrap root key and the limited key's secret, on ``url``."""
    runtime = await open_runtime(bench.settings(url, tmp))
    try:
        root_key = await runtime.accounts.bootstrap()
        if root_key is None:
            raise SystemExit("the fresh database already had a bootstrap key")
        tenant = await runtime.tenants.create(OPERATOR, name="Bench")
        limits = Limits(
            rate_limits=(
                RateLimit("second", BIG, 1_000),
                RateLimit("minute", BIG, 60_000),
                RateLimit("day", BIG, 86_400_000),
            ),
            credits=Credits(BIG),
            budget=Budget(BIG, BudgetPeriod.MONTH),
        )
        _, secret = await runtime.keys.create(
            OPERATOR, tenant.id, NewKey(name="limited", limits=limits)
        )
    finally:
        await runtime.close()
    return tenant.id, root_key, secret


def check_answer(base: str, secret: str, root_key: str, backend: str) -> None:
    """One verify must answer 200 VALID with the 3 rate limits, credits and the budget."""
    with httpx.Client(base_url=base, timeout=10) as client:
        answer = client.post(
            VERIFY_PATH,
            json={"key": secret, "spend": 1},
            headers={"Authorization": f"Bearer {root_key}"},
        )
    body = answer.json() if answer.status_code == 200 else {}
    if (
        body.get("code") != "VALID"
        or len(body.get("ratelimits", ())) != 3
        or body.get("credits") is None
        or body.get("budget") is None
    ):
        raise SystemExit(f"{backend}: verify answered {answer.status_code} {answer.text[:300]}")


def redis_counters(redis_url: str, tenant_id: str, *, delete: bool) -> int:
    """How many Redis keys the tenant has (``keyrack:{<tenant>}:*``); deleted if asked."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        found = list(client.scan_iter(match=f"keyrack:{{{tenant_id}}}:*"))
        if delete and found:
            client.delete(*found)
    finally:
        client.close()
    return len(found)


def log_problems(log: Path) -> tuple[int, int]:
    """``(fallbacks to local limits, errors)`` in a server log."""
    text = log.read_text(errors="replace")
    fallbacks = sum(text.count(event) for event in _FALLBACK_EVENTS)
    errors = sum(
        1 for line in text.splitlines() if "Traceback" in line or '"level": "error"' in line
    )
    return fallbacks, errors


@contextmanager
def client_core() -> Iterator[None]:
    """Run this process (the load) on core 1 while inside, when the machine has one."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def event_loop_runner() -> Callable[[Coroutine[Any, Any, LoadRun]], LoadRun]:
    """uvloop's runner when installed (as the servers use), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        print("uvloop is not installed: the client uses asyncio's loop", file=sys.stderr)
        return asyncio.run
    return uvloop.run


def measure(plan: Plan, redis_url: str) -> tuple[dict[str, list[LoadRun]], dict[str, Any]]:
    """Set up, serve both backends, run the load: the runs by backend, and the checks."""
    bench = BenchSecrets()
    runs: dict[str, list[LoadRun]] = {backend: [] for backend in BACKENDS}
    runner = event_loop_runner()
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tenant_id, root_key, secret = asyncio.run(prepare(bench, sqlite_url(tmp, "memory.db"), tmp))
        shutil.copyfile(tmp / "memory.db", tmp / "redis.db")
        logs = {backend: tmp / f"{backend}.log" for backend in BACKENDS}
        try:
            with ExitStack() as servers:
                ports: dict[str, int] = {}
                for backend in BACKENDS:
                    env = bench.env(sqlite_url(tmp, f"{backend}.db"), tmp)
                    if backend == "redis":
                        env["KEYRACK_REDIS_URL"] = redis_url
                    base = servers.enter_context(
                        serve(APP, factory=True, env=env, log=logs[backend])
                    )
                    check_answer(base, secret, root_key, backend)
                    ports[backend] = int(base.rsplit(":", 1)[1])
                print(
                    "checked over HTTP: both servers answer VALID with 3 rate limits + credits "
                    "+ budget"
                )
                requests = {b: http_request(ports[b], secret, root_key) for b in BACKENDS}

                def load(backend: str, seconds: float) -> LoadRun:
                    return runner(
                        closed_loop(
                            ports[backend],
                            requests[backend],
                            seconds=seconds,
                            connections=plan.connections,
                        )
                    )

                with client_core():
                    for backend in BACKENDS:
                        load(backend, plan.warmup)
                    print("warm-up done")
                    for index in range(plan.rounds):
                        order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
                        for backend in order:
                            run = load(backend, plan.duration)
                            runs[backend].append(run)
                            print(f"round {index + 1} {backend:<6} {run.line()}")
            counters = redis_counters(redis_url, tenant_id, delete=False)
        finally:
            redis_counters(redis_url, tenant_id, delete=True)
        problems = {backend: log_problems(logs[backend]) for backend in BACKENDS}
    return runs, {"redis_counters": counters, "problems": problems}


def report(runs: dict[str, list[LoadRun]], checks: dict[str, Any], plan: Plan) -> Results:
    """Print the medians and build the RESULT lines."""
    rps = {backend: median([run.rps for run in runs[backend]]) for backend in BACKENDS}
    latencies = {
        backend: sorted(ns for run in runs[backend] for ns in run.latencies_ns)
        for backend in BACKENDS
    }
    p50 = {backend: percentile_ms(latencies[backend], 50) for backend in BACKENDS}
    p99 = {backend: percentile_ms(latencies[backend], 99) for backend in BACKENDS}
    failures = sum(run.failures for backend in BACKENDS for run in runs[backend])
    ratio = rps["redis"] / rps["memory"]
    print(
        f"3 rate limits + credits + budget, {plan.connections} connections, one worker; "
        f"medians of {plan.rounds} rounds of {plan.duration:g} s:"
    )
    for backend in BACKENDS:
        print(
            f"  {backend:<6} {rps[backend]:9,.0f} req/s  p50 {p50[backend]:6.2f} ms  "
            f"p99 {p99[backend]:6.2f} ms  ({1e6 / rps[backend]:.0f} µs per request at saturation)"
        )
    extra = 1e6 / rps["redis"] - 1e6 / rps["memory"]
    print(f"  redis/memory throughput {ratio:.2f}x; Redis costs {extra:.0f} µs more per request")
    counters = checks["redis_counters"]
    print(f"  the tenant's counters in Redis after the run: {counters} keys")
    clean = failures == 0 and counters > 0
    for backend, (fallbacks, errors) in checks["problems"].items():
        print(f"  {backend} server log: {fallbacks} fallbacks to local limits, {errors} errors")
        clean = clean and fallbacks == 0 and errors == 0
    if failures:
        print(f"  {failures} answers were not 200 VALID")
    results = Results()
    results.add("http_verify_limits_memory_rps", f"{rps['memory']:,.0f} req/s", "report", clean)
    results.add("http_verify_limits_redis_rps", f"{rps['redis']:,.0f} req/s", "report", clean)
    results.add("http_verify_limits_redis_over_memory", f"{ratio:.2f}x", "report", clean)
    for backend in BACKENDS:
        results.add(
            f"http_verify_limits_{backend}_p99_c{plan.connections}",
            f"{p99[backend]:.2f} ms (p50 {p50[backend]:.2f} ms)",
            "report",
            True,
        )
    return results


def main() -> int:
    """Parse flags, set up, run the load, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~15 s smoke run")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("KEYRACK_TEST_REDIS_URL") or os.environ.get("KEYRACK_REDIS_URL"),
        help="Redis to use (default: KEYRACK_TEST_REDIS_URL, then KEYRACK_REDIS_URL)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per backend")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not args.redis_url:
        parser.error("no Redis: pass --redis-url or set KEYRACK_TEST_REDIS_URL")
    plan = Plan(
        duration=args.duration or (2.0 if args.quick else 8.0),
        rounds=args.rounds or (1 if args.quick else 5),
        warmup=1.0 if args.quick else 2.0,
        connections=args.connections,
        quick=args.quick,
    )
    header(
        f"verify_http_redis: memory vs Redis limits over HTTP, c{plan.connections}, "
        f"{plan.rounds} x {plan.duration:g} s",
        args.quick,
    )
    if shutil.which("taskset") is None:
        print("warning: taskset not found, the servers are not pinned")
    runs, checks = measure(plan, args.redis_url)
    results = report(runs, checks, plan)
    if args.quick:
        print("(quick mode: smoke run, figures are noisy)")
    return results.emit()


if __name__ == "__main__":
    raise SystemExit(main())

"""HTTP verify throughput and latency on one pinned uvicorn worker, with wrk (DESIGN.md §9).

Sets up a temporary SQLite database (a tenant, a key, the bootstrap root key), then serves
``bench/_server.py:create`` (the real ``create_app`` plus a no-op served at verify's own
position in the stack, and a no-op route first in FastAPI's router) with uvicorn in a
subprocess: one worker pinned to core 0 (``taskset -c 0``),
``--loop uvloop --http httptools --no-access-log``, same peppers through ``KEYRACK_*``.
wrk runs pinned to core 1 (``-t1 -c32 --latency``) with a Lua script POSTing
``{"key": "<secret>"}`` and ``Authorization: Bearer <root key>`` to ``/v1/verify`` and, with the
same headers and body, to the no-op. Rounds alternate verify / no-op after a warm-up; the
figures are medians. A bare ASGI no-op server is measured last, for context.

Targets: verify ≥ 0.7x the no-op's requests/s; verify p99 < 5 ms at 32 connections.

    python bench/http_verify.py [--quick] [--duration S] [--rounds R] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import BenchSecrets, Results, gc_paused, header, median, sqlite_url
from _server import NOOP_LAST_PATH, NOOP_PATH, VERIFY_PATH, add_noop_routes
from starlette.types import ASGIApp, Message

from keyrack.api.app import create_app
from keyrack.runtime import open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

BENCH_DIR = Path(__file__).resolve().parent
TARGET_RATIO = 0.7
TARGET_P99_MS = 5.0
WRK = "wrk"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY_RE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors:\s+connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkRun:
    """One wrk run's figures."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self) -> str:
        """One line for the log."""
        return (
            f"{self.rps:9,.0f} req/s  p50 {self.p50_ms:6.2f} ms  p90 {self.p90_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  ({self.requests:,} requests, {self.errors} errors)"
        )


def parse_wrk(output: str) -> WrkRun:
    """Requests/s, latency percentiles and errors from wrk's ``--latency`` output."""
    rps = _RPS_RE.search(output)
    total = _TOTAL_RE.search(output)
    if rps is None or total is None:
        raise SystemExit(f"could not parse wrk's output:\n{output}")
    latency = {
        pct: float(value) * _UNITS_MS[unit] for pct, value, unit in _LATENCY_RE.findall(output)
    }
    non2xx = _NON2XX_RE.search(output)
    sockets = _SOCKET_RE.search(output)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sockets.groups()) if sockets else 0
    )
    return WrkRun(
        rps=float(rps.group(1)),
        p50_ms=latency.get("50", float("nan")),
        p90_ms=latency.get("90", float("nan")),
        p99_ms=latency.get("99", float("nan")),
        requests=int(total.group(1)),
        errors=errors,
    )


def pinned(core: int, argv: list[str]) -> list[str]:
    """``argv`` pinned to one core with taskset (when taskset exists)."""
    if shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(core), *argv]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: str, *, factory: bool, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run uvicorn (one worker, core 0) on ``app``; yield its base URL; stop it after."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        argv.append("--factory")
    with log.open("ab") as log_file:
        process = subprocess.Popen(  # our own interpreter and arguments
            pinned(0, argv), env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited early:\n{log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"the server did not start:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_lua(path: Path, secret: str, root_key: str) -> None:
    """The wrk script: POST the verify body with the root key (key characters need no escape)."""
    path.write_text(
        "wrk.method = 'POST'\n"
        f'wrk.body = \'{{"key": "{secret}"}}\'\n'
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {root_key}'\n",
        encoding="utf-8",
    )
    path.chmod(0o600)


def run_wrk(url: str, lua: Path, *, seconds: float, connections: int) -> WrkRun:
    """One wrk run pinned to core 1."""
    argv = pinned(
        1,
        [
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stderr}")
    return parse_wrk(done.stdout)


async def drive(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], body: bytes, n: int
) -> float:
    """Nanoseconds per request of ``n`` POSTs to ``path`` through ``app``, in process."""
    statuses: list[int] = []
    request: Message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    base: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
    with gc_paused():
        start = time.perf_counter_ns()
        for _ in range(n):
            await app(dict(base), receive, send)
        elapsed = time.perf_counter_ns() - start
    if set(statuses) != {200}:
        raise SystemExit(f"{path} answered {sorted(set(statuses))} in process")
    return elapsed / n


async def inprocess_costs(
    app: ASGIApp, secret: str, root_key: str, *, n: int, rounds: int, profile: bool
) -> dict[str, float]:
    """Median ns per request of each route, driven in process (no uvicorn, no sockets)."""
    body = f'{{"key": "{secret}"}}'.encode()
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {root_key}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    paths = (VERIFY_PATH, NOOP_PATH, NOOP_LAST_PATH)
    samples: dict[str, list[float]] = {path: [] for path in paths}
    for path in paths:
        await drive(app, path, headers, body, n // 4)  # warm-up
    for index in range(rounds):
        for path in paths if index % 2 == 0 else paths[::-1]:
            samples[path].append(await drive(app, path, headers, body, n))
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await drive(app, VERIFY_PATH, headers, body, n)
        profiler.disable()
        print(f"cProfile of {n} in-process verify requests (tottime; profiling inflates it):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return {path: median(values) for path, values in samples.items()}


async def prepare(
    bench: BenchSecrets, url: str, tmp: Path, plan: Plan
) -> tuple[str, str, dict[str, float]]:
    """A tenant, a key and the bootstrap root key on the database the server will use; and
    the in-process cost of each route on the same app."""
    settings = bench.settings(url, tmp)
    runtime = await open_runtime(settings)
    try:
        root_key = await runtime.accounts.bootstrap()
        if root_key is None:
            raise SystemExit("the fresh database already had a bootstrap key")
        tenant = await runtime.tenants.create(OPERATOR, name="Bench")
        _, secret = await runtime.keys.create(OPERATOR, tenant.id, NewKey(name="bench"))
        app = create_app(settings, runtime=runtime)
        add_noop_routes(app)
        costs = await inprocess_costs(
            app,
            secret,
            root_key,
            n=plan.inprocess_n,
            rounds=plan.inprocess_rounds,
            profile=plan.profile,
        )
    finally:
        await runtime.close()
    return secret, root_key, costs


def check_answers(base: str, body: bytes, root_key: str) -> None:
    """One verify must answer 200 with ``"valid": true``, and the no-op 200, before timing."""
    headers = {"Authorization": f"Bearer {root_key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=10) as client:
        answer = client.post(VERIFY_PATH, content=body, headers=headers)
        if answer.status_code != 200 or answer.json().get("valid") is not True:
            raise SystemExit(
                f"verify answered {answer.status_code} {answer.json().get('code')}, "
                "expected 200 valid"
            )
        for path in (NOOP_PATH, NOOP_LAST_PATH):
            noop = client.post(path, content=body, headers=headers)
            if noop.status_code != 200:
                raise SystemExit(f"{path} answered {noop.status_code}")
    print("checked over HTTP: verify answers 200 valid=true; the no-op routes answer 200")


@dataclass(frozen=True)
class Plan:
    """How long and how often wrk runs."""

    duration: float
    rounds: int
    warmup: float
    connections: int
    inprocess_n: int
    inprocess_rounds: int
    profile: bool
    quick: bool


def measure(plan: Plan) -> tuple[dict[str, list[WrkRun]], int, dict[str, float]]:
    """Set up the database, serve, run wrk: the runs by target, the server's log errors and
    the in-process cost of each route."""
    bench = BenchSecrets()
    runs: dict[str, list[WrkRun]] = {"verify": [], "noop": [], "noop-last": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = sqlite_url(tmp)
        secret, root_key, costs = asyncio.run(prepare(bench, url, tmp, plan))
        lua = tmp / "post.lua"
        write_lua(lua, secret, root_key)
        env = bench.env(url, tmp)
        log = tmp / "server.log"

        def wrk(target: str, seconds: float) -> WrkRun:
            return run_wrk(target, lua, seconds=seconds, connections=plan.connections)

        with serve("_server:create", factory=True, env=env, log=log) as base:
            check_answers(base, f'{{"key": "{secret}"}}'.encode(), root_key)
            targets = {
                "verify": f"{base}{VERIFY_PATH}",
                "noop": f"{base}{NOOP_PATH}",
                "noop-last": f"{base}{NOOP_LAST_PATH}",
            }
            for name in ("verify", "noop"):
                wrk(targets[name], plan.warmup)
            print("warm-up done")
            for index in range(plan.rounds):
                for name in ("verify", "noop") if index % 2 == 0 else ("noop", "verify"):
                    run = wrk(targets[name], plan.duration)
                    runs[name].append(run)
                    print(f"round {index + 1} {name:<9} {run.line()}")
            run = wrk(targets["noop-last"], plan.duration)
            runs["noop-last"].append(run)
            print(f"once    noop-last {run.line()}")
        with serve("_server:raw_app", factory=False, env=env, log=log) as base:
            if not plan.quick:
                wrk(base, plan.warmup)
            run = wrk(base, plan.duration)
            runs["raw"].append(run)
            print(f"once    raw ASGI  {run.line()}")
        server_errors = sum(
            1 for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line
        )
    return runs, server_errors, costs


def report(
    runs: dict[str, list[WrkRun]], server_errors: int, costs: dict[str, float], plan: Plan
) -> Results:
    """Print the medians and build the RESULT lines."""
    rps = {name: median([r.rps for r in rs]) for name, rs in runs.items()}
    p99 = {name: median([r.p99_ms for r in rs]) for name, rs in runs.items()}
    errors = sum(r.errors for rs in runs.values() for r in rs)
    ratio = rps["verify"] / rps["noop"]
    print(f"over HTTP, medians of {plan.rounds} rounds (noop-last and raw ASGI: one run):")
    for name, label in (
        ("verify", f"POST {VERIFY_PATH} (warm)"),
        ("noop", f"POST {NOOP_PATH} (same stack, verify's position)"),
        ("noop-last", f"POST {NOOP_LAST_PATH} (a route, first in the router)"),
        ("raw", "raw ASGI no-op (uvicorn only)"),
    ):
        print(
            f"  {label:<34} {rps[name]:9,.0f} req/s  p99 {p99[name]:6.2f} ms  "
            f"({1e6 / rps[name]:.0f} µs per request at saturation)"
        )
    verify_extra = 1e6 / rps["verify"] - 1e6 / rps["noop"]
    stack = 1e6 / rps["noop"] - 1e6 / rps["raw"]
    print(f"  verify costs {verify_extra:.0f} µs more than the no-op per request")
    print(f"  the app stack costs {stack:.0f} µs more than raw ASGI per request")
    print(
        f"in process (app only, no uvicorn, no sockets; median of {plan.inprocess_rounds} rounds):"
    )
    for path, ns in costs.items():
        print(f"  POST {path:<20} {ns / 1000:7.1f} µs per request")
    if errors or server_errors:
        print(f"  errors: {errors} wrk errors, {server_errors} server log errors")
    results = Results()
    results.add("http_verify_rps", f"{rps['verify']:,.0f} req/s", "report", errors == 0)
    results.add("http_noop_rps", f"{rps['noop']:,.0f} req/s", "report", True)
    results.add("http_raw_asgi_rps", f"{rps['raw']:,.0f} req/s", "report (context)", True)
    results.add(
        "http_verify_vs_noop", f"{ratio:.2f}x", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO
    )
    results.add(
        f"http_verify_p99_c{plan.connections}",
        f"{p99['verify']:.2f} ms",
        f"< {TARGET_P99_MS:g} ms",
        p99["verify"] < TARGET_P99_MS,
    )
    return results


def main() -> int:
    """Parse flags, set up, run wrk, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=None, help="verify/no-op rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile in-process verify requests"
    )
    args = parser.parse_args()
    if shutil.which(WRK) is None:
        print("wrk is not installed: apt-get install wrk")
        return 2
    plan = Plan(
        duration=args.duration or (1.0 if args.quick else 10.0),
        rounds=args.rounds or (1 if args.quick else 3),
        warmup=1.0 if args.quick else 2.0,
        connections=args.connections,
        inprocess_n=1_000 if args.quick else 5_000,
        inprocess_rounds=3 if args.quick else 7,
        profile=args.profile,
        quick=args.quick,
    )
    header(
        f"http_verify: wrk -t1 -c{plan.connections} -d{plan.duration:g}s, {plan.rounds} rounds",
        args.quick,
    )
    if shutil.which("taskset") is None:
        print("warning: taskset not found, server and wrk are not pinned")
    runs, server_errors, costs = measure(plan)
    results = report(runs, server_errors, costs, plan)
    if args.quick:
        print("(quick mode: smoke run, figures are noisy)")
    return results.emit()


if __name__ == "__main__":
    raise SystemExit(main())

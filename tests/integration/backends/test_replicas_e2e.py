"""Limits are exact across replicas, end to end: ``keyrack serve --workers 4`` over one Redis.

``keyrack init`` then ``keyrack serve --workers 4`` run as real processes on a fresh database
(a new PostgreSQL database when ``KEYRACK_TEST_POSTGRES_URL`` is set, else a SQLite file) with
``KEYRACK_REDIS_URL`` pointing at the test Redis. Every worker is its own process with its own
``SO_REUSEPORT`` socket, verify cache and limit client, so the only thing they share is Redis.
Over the HTTP API a tenant gets one key (or identity) per scenario, then the scenarios'
``POST /v1/verify`` requests go out one scenario after another, each over 32 client connections
at once, which the kernel spreads over the workers (checked from ``/proc``: the connections
land on more than one).
Whatever the interleaving, exactly the limit is admitted and nothing more, each admission sees
its own ``remaining``, and a refused request spends nothing.

Without ``KEYRACK_TEST_REDIS_URL`` the tests skip, saying so; with it they never skip. Each run
stops every process it started by PID and deletes its tenant's Redis keys (never a flush).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.backends.conftest import REDIS_URL
from tests.integration.conftest import PG_URL, ScratchPostgres

pytestmark = pytest.mark.redis

WORKERS = 4
CONNECTIONS = 32  # client connections: the kernel hashes each one to one worker's socket
STARTUP_TIMEOUT = 90.0  # four spawned interpreters on a busy 2-core machine
STOP_TIMEOUT = 30.0
RATE = {"name": "requests", "limit": 50, "window_seconds": 60}


@dataclass(frozen=True)
class Scenario:
    """One key's limits, the facts of its verifies, and the codes expected of them."""

    key: dict[str, Any]
    expected: dict[str, int]
    facts: dict[str, Any] | None = None

    @property
    def attempts(self) -> int:
        """How many verifies the scenario sends: as many as it expects answers."""
        return sum(self.expected.values())


SCENARIOS: dict[str, Scenario] = {
    "rate": Scenario({"rate_limits": [RATE]}, {"VALID": 50, "RATE_LIMITED": 150}),
    "credits": Scenario({"credits": {"remaining": 30}}, {"VALID": 30, "USAGE_EXCEEDED": 170}),
    # Credits outlast the rate limit: the 50 refused requests must not spend any of them.
    "rate+credits": Scenario(
        {"rate_limits": [RATE], "credits": {"remaining": 80}}, {"VALID": 50, "RATE_LIMITED": 50}
    ),
    "budget": Scenario(
        {"budget": {"limit": 1000, "period": "never"}},
        {"VALID": 25, "BUDGET_EXCEEDED": 75},
        facts={"spend": 40},
    ),
    "leases": Scenario({"max_concurrency": 5}, {"VALID": 5, "CONCURRENCY_LIMITED": 95}),
}
# Two keys of one identity share its limit: half of the verifies each.
IDENTITY_RATE = {"name": "requests", "limit": 40, "window_seconds": 60}
IDENTITY_EXPECTED = {"VALID": 40, "RATE_LIMITED": 80}


@dataclass
class Hammered:
    """What one cluster run saw."""

    bodies: dict[str, list[dict[str, Any]]]
    """Verify answers per scenario (``identity`` included)."""
    statuses: Counter[int]
    credits_after: dict[str, Any]
    """``GET …/credits`` of the ``rate+credits`` key once the hammering is over."""
    connections_per_worker: list[int]
    """Server ends of the client's connections held by each worker, after the hammering."""
    server_errors: list[str]
    fallbacks: list[str]
    """Log lines of a worker that could not reach Redis (the failure policy took over)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from ``/proc/*/stat``)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may hold spaces: the parent comes after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_inodes(port: int, state: str) -> set[int]:
    """Inodes of the local sockets on ``port`` in ``state`` (``0A`` listen, ``01`` established)."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(int(fields[9]))
    return inodes


def _workers(serve_pid: int, port: int) -> list[int]:
    """The children of ``keyrack serve`` that listen on ``port``."""
    listening = _tcp_inodes(port, "0A")
    return [pid for pid in _children(serve_pid) if _socket_inodes(pid) & listening]


def _environment(database_url: str, tmp: Path, redis_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEYRACK_")}
    env |= {
        "KEYRACK_DATABASE_URL": database_url,
        "KEYRACK_SECRETS_FILE": str(tmp / "keyrack.secrets"),
        "KEYRACK_REDIS_URL": redis_url,
    }
    return env


def _init(env: dict[str, str], tmp: Path) -> str:
    done = subprocess.run(  # our own interpreter, fixed arguments
        [sys.executable, "-m", "keyrack", "init", "--json"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    root_key: str = json.loads(done.stdout)["root_key"]
    return root_key


class Cluster:
    """``keyrack serve --workers 4`` in a subprocess; ``stop`` ends it and every worker."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = tmp / "serve.stderr"
        self._tmp = tmp
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[int] = []
        self._seen: set[int] = set()

    def start(self) -> None:
        with (
            (self._tmp / "serve.stdout").open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            self.process = subprocess.Popen(  # noqa: S603  # our own interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "keyrack",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(WORKERS),
                ],
                cwd=self._tmp,
                env=self._env,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"keyrack serve exited with {self.process.returncode}:\n{self.stderr()[-3000:]}"
                )
            self._seen.update(_children(self.process.pid))
            self.workers = _workers(self.process.pid, self.port)
            started = self.stderr().count("Application startup complete.")
            if WORKERS == len(self.workers) == started:
                return
            time.sleep(0.1)
        pytest.fail(
            f"{len(self.workers)} of {WORKERS} workers listening after {STARTUP_TIMEOUT} s:\n"
            f"{self.stderr()[-3000:]}"
        )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def connections_per_worker(self) -> list[int]:
        established = _tcp_inodes(self.port, "01")
        return [len(_socket_inodes(pid) & established) for pid in self.workers]

    def stop(self) -> None:
        """SIGTERM the parent (it forwards to the workers), then SIGKILL whatever is left."""
        process = self.process
        if process is None:
            return
        self._seen.update(_children(process.pid))
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in sorted(self._seen):
            if Path(f"/proc/{pid}").exists():  # a worker that outlived its parent
                os.kill(pid, signal.SIGKILL)
        self.process = None


async def _create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert 201 == response.status_code, response.text
    created: dict[str, Any] = response.json()
    return created


async def _hammer(cluster: Cluster, root_key: str, tenants: list[str]) -> Hammered:
    """Set up one key per scenario through the API, then verify over every connection at once.

    The tenant's id goes into ``tenants`` as soon as it exists, for the clean-up.
    """

    def new_client(connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=cluster.base_url,
            headers={"Authorization": f"Bearer {root_key}"},
            limits=httpx.Limits(max_connections=connections),
            timeout=httpx.Timeout(30.0),
        )

    async with new_client(1) as client, AsyncExitStack() as stack:
        tenant = await _create(client, "/v1/tenants", {"name": "Replicas"})
        tenants.append(tenant["id"])
        keys_path = f"/v1/tenants/{tenant['id']}/keys"
        jobs: list[tuple[str, dict[str, Any]]] = []
        key_ids: dict[str, str] = {}
        for name, scenario in SCENARIOS.items():
            created = await _create(client, keys_path, {"name": name, **scenario.key})
            key_ids[name] = created["key"]["id"]
            body = {"key": created["secret"], **(scenario.facts or {})}
            jobs += [(name, body)] * scenario.attempts
        identity = await _create(
            client,
            f"/v1/tenants/{tenant['id']}/identities",
            {"external_id": "customer", "rate_limits": [IDENTITY_RATE]},
        )
        shared = [
            await _create(client, keys_path, {"name": name, "identity_id": identity["id"]})
            for name in ("shared 1", "shared 2")
        ]
        # The two keys alternate, so both are in flight at once.
        jobs += [("identity", {"key": key["secret"]}) for key in shared] * (
            sum(IDENTITY_EXPECTED.values()) // 2
        )
        answers: list[tuple[str, httpx.Response]] = []
        pending = iter(jobs)

        async def lane(lane_client: httpx.AsyncClient) -> None:
            # The lanes share one queue of jobs, in order, so each scenario's key is hammered
            # over every connection at once.
            for name, body in pending:
                answers.append((name, await lane_client.post("/v1/verify", json=body)))

        # A client of one connection per lane: one shared pool of many connections costs
        # httpx several milliseconds of CPU per request here, more than the servers spend.
        lanes = [await stack.enter_async_context(new_client(1)) for _ in range(CONNECTIONS)]
        await asyncio.gather(*(lane(lane_client) for lane_client in lanes))
        connections = cluster.connections_per_worker()
        credits = await client.get(f"{keys_path}/{key_ids['rate+credits']}/credits")
        assert 200 == credits.status_code, credits.text
    bodies: dict[str, list[dict[str, Any]]] = {name: [] for name in [*SCENARIOS, "identity"]}
    for name, response in answers:
        if response.status_code == 200:
            bodies[name].append(response.json())
    return Hammered(
        bodies=bodies,
        statuses=Counter(response.status_code for _, response in answers),
        credits_after=credits.json(),
        connections_per_worker=connections,
        server_errors=[],
        fallbacks=[],
    )


def _delete_tenant_keys(redis_url: str, tenant_id: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        found = list(client.scan_iter(match=f"keyrack:{{{tenant_id}}}:*"))
        if found:
            client.delete(*found)
    finally:
        client.close()


def _server_errors(stderr: str) -> list[str]:
    """Log lines at error level or above, and tracebacks."""
    errors: list[str] = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                errors.append(line)
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "critical"):
            errors.append(line)
    return errors


def _run(database_url: str, tmp: Path, redis_url: str) -> Hammered:
    env = _environment(database_url, tmp, redis_url)
    root_key = _init(env, tmp)
    cluster = Cluster(env, tmp)
    tenants: list[str] = []
    try:
        cluster.start()
        hammered = asyncio.run(_hammer(cluster, root_key, tenants))
        # The logs of the serving, not of the shutdown that follows (what it logs is not
        # about limits, and a cancelled background task may log there).
        served = cluster.stderr()
    finally:
        cluster.stop()
        for tenant_id in tenants:
            _delete_tenant_keys(redis_url, tenant_id)
    hammered.server_errors = _server_errors(served)
    hammered.fallbacks = [line for line in served.splitlines() if '"limits.' in line]
    return hammered


@pytest.fixture(scope="module")
def hammered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hammered]:
    """One run of ``keyrack serve --workers 4`` and what it answered.

    The database is a new PostgreSQL one when ``KEYRACK_TEST_POSTGRES_URL`` is set (the
    scale-out deployment), else a SQLite file.
    """
    if not REDIS_URL:
        pytest.skip("KEYRACK_TEST_REDIS_URL is not set")
    tmp = tmp_path_factory.mktemp("replicas")
    scratch = ScratchPostgres(PG_URL) if PG_URL else None
    try:
        if scratch is None:
            url = f"sqlite+aiosqlite:///{tmp / 'keyrack.db'}"
        else:
            url = asyncio.run(scratch.create())
        yield _run(url, tmp, REDIS_URL)
    finally:
        if scratch is not None:
            scratch.drop_all()


class TestFourWorkersOneRedis:
    def test_every_request_is_answered_200(self, hammered: Hammered):
        sent = sum(s.attempts for s in SCENARIOS.values()) + sum(IDENTITY_EXPECTED.values())

        assert {200: sent} == dict(hammered.statuses)

    def test_the_connections_reach_more_than_one_worker(self, hammered: Hammered):
        # 32 connections hashed over 4 sockets all landing on one: chance about 4 ** -31.
        assert sum(1 for n in hammered.connections_per_worker if n) > 1

    @pytest.mark.parametrize("name", list(SCENARIOS))
    def test_exactly_the_limit_is_admitted(self, hammered: Hammered, name: str):
        codes = Counter(body["code"] for body in hammered.bodies[name])

        assert SCENARIOS[name].expected == dict(codes)

    def test_an_identitys_keys_share_one_exact_limit(self, hammered: Hammered):
        codes = Counter(body["code"] for body in hammered.bodies["identity"])

        assert IDENTITY_EXPECTED == dict(codes)

    def test_each_admission_sees_its_own_remaining(self, hammered: Hammered):
        def valid(name: str) -> list[dict[str, Any]]:
            return [body for body in hammered.bodies[name] if body["valid"]]

        rate = sorted(body["ratelimits"][0]["remaining"] for body in valid("rate"))
        credits = sorted(body["credits"]["remaining"] for body in valid("credits"))
        budget = sorted(body["budget"]["remaining"] for body in valid("budget"))
        leases = {body["lease_id"] for body in valid("leases")}

        assert list(range(50)) == rate
        assert list(range(30)) == credits
        assert list(range(0, 1000, 40)) == budget
        assert 5 == len(leases)
        assert None not in leases

    def test_refused_requests_spend_no_credits(self, hammered: Hammered):
        spent = [body["credits"]["remaining"] for body in hammered.bodies["rate+credits"]]

        assert 30 == hammered.credits_after["remaining"]
        assert 30 == min(spent)

    def test_every_worker_reached_redis(self, hammered: Hammered):
        """No limit was decided by a worker's local fallback (a Redis timeout would do that)."""
        assert [] == hammered.fallbacks

    def test_the_workers_logged_no_errors_while_serving(self, hammered: Hammered):
        assert [] == hammered.server_errors

"""Fixtures of the limit-store suites: one ``limit_store`` per backend, unique tenants, Redis.

``limit_store`` runs every contract test on ``MemoryLimitStore`` and, when
``KEYRACK_TEST_REDIS_URL`` is set, on ``RedisLimitStore`` (skipped, saying why, when it is not).
Both read the same ``FakeClock``, so time moves only when a test moves it. Each test charges
its own fresh tenant, so tests never share a Redis key; the keys a test made are deleted after
it (``keyrack:{<tenant>}:*`` only, never a flush).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.services.ports import LimitStore
from tests.fakes import FakeClock

if TYPE_CHECKING:
    import redis.asyncio as aioredis

REDIS_URL = os.environ.get("KEYRACK_TEST_REDIS_URL")


def need_redis_url() -> str:
    """The test Redis URL, or skip the test saying which variable is missing."""
    if not REDIS_URL:
        pytest.skip("KEYRACK_TEST_REDIS_URL is not set")
    return REDIS_URL


def fake_now_ms(clock: FakeClock) -> Callable[[], int]:
    """Epoch milliseconds of ``clock``, computed exactly as ``MemoryLimitStore`` does."""
    return lambda: int(clock.now() * 1000)


def set_ms(clock: FakeClock, now_ms: int) -> None:
    """Move ``clock`` to exactly ``now_ms`` as the stores read it (``int(now * 1000)``)."""
    at = now_ms / 1000
    while int(at * 1000) < now_ms:
        at = math.nextafter(at, math.inf)
    clock.at = at
    assert int(clock.now() * 1000) == now_ms


def new_tenant() -> str:
    """A tenant id no other test (or earlier run) has used."""
    return f"ten_test_{uuid.uuid4().hex}"


async def delete_tenant_keys(client: aioredis.Redis, tenant_ids: list[str]) -> None:
    """Delete every key of these tenants (``keyrack:{<tenant>}:*``), and nothing else."""
    for tenant_id in tenant_ids:
        found = [key async for key in client.scan_iter(match=f"keyrack:{{{tenant_id}}}:*")]
        if found:
            await client.delete(*found)


class Tenants:
    """Hands out fresh tenant ids and remembers them for clean-up."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def new(self) -> str:
        tenant_id = new_tenant()
        self.used.append(tenant_id)
        return tenant_id


@pytest.fixture
def tenants() -> Tenants:
    return Tenants()


@pytest.fixture
def tenant(tenants: Tenants) -> str:
    """This test's own tenant."""
    return tenants.new()


@pytest.fixture
async def redis_client(tenants: Tenants) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis; deletes the keys of this test's tenants afterwards."""
    url = need_redis_url()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await delete_tenant_keys(client, tenants.used)
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limit_store(
    request: pytest.FixtureRequest, clock: FakeClock, tenants: Tenants
) -> AsyncIterator[LimitStore]:
    """Each ``LimitStore`` implementation on the test's ``FakeClock``."""
    if request.param == "memory":
        store: LimitStore = MemoryLimitStore(clock.now)
        yield store
        await store.close()
        return
    url = need_redis_url()
    from keyrack.backends.redis import RedisLimitStore

    redis_store = RedisLimitStore.from_url(url, now_ms=fake_now_ms(clock))
    try:
        yield redis_store
    finally:
        import redis.asyncio as aioredis

        cleaner = aioredis.Redis.from_url(url)
        try:
            await delete_tenant_keys(cleaner, tenants.used)
        finally:
            await cleaner.aclose()
            await redis_store.close()


def spare_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` of our own, without persistence, stopped by its PID."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not on PATH")  # never skip: the binary is a test need
        self._binary = binary
        self._workdir = workdir
        self.port = port or spare_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        pytest.fail("redis-server did not start within 10 s")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no goodbye to clients) and reap it."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a spare port (runs only with ``KEYRACK_TEST_REDIS_URL``)."""
    need_redis_url()
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()

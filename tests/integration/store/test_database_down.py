"""A database that cannot be reached: keyrack errors, never driver exceptions; stale cache use.

Two honest ways to lose the database without mocks:

* Never had it: a PostgreSQL URL on a port nobody listens on (``127.0.0.1:1``), or a SQLite
  file in a directory that does not exist. The runtime opens with ``run_migrations=False``
  (opening does not connect), so every call is the first to try.
* Lose it after warming the cache: for SQLite the test disposes the engine (so no pooled
  connection survives) and renames the database's directory, so the next connection attempt
  fails exactly as for an unmounted volume ("unable to open database file"). Deleting the file
  instead would not do: SQLite would silently create a new empty database. For PostgreSQL the
  test drops its own scratch database ``WITH (FORCE)``, which closes the pooled connections.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain.verification import Outcome
from keyrack.errors import BackendUnavailable
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey
from tests.fakes import FakeClock
from tests.integration.conftest import ScratchPostgres, settings_for, versioned_secret

pytestmark = pytest.mark.anyio

UNKNOWN = keyformat.generate("kr", entropy=bytes(keyformat.RANDOM_BYTES))
UNKNOWN_ROOT = keyformat.generate(keyformat.ROOT_PREFIX, entropy=bytes(keyformat.RANDOM_BYTES))
TENANT = "ten_0000000000000000000000"
KEY = "key_0000000000000000000000"

POSITIVE_TTL = 30.0  # Settings.cache_ttl_seconds default
STALE_IF_ERROR = 300.0  # VerifyService default


async def _aiosqlite_threads_finished() -> None:
    """Wait until aiosqlite's worker threads are gone (at most 5 s).

    A failed aiosqlite connect leaves a worker thread that posts its stop result to the event
    loop a moment later; if the test's loop is closed by then, the thread raises "Event loop is
    closed". Waiting here, before the loop closes, keeps that third-party noise out.
    """
    for _ in range(5000):
        if not any(
            t.is_alive() and "_connection_worker_thread" in t.name for t in threading.enumerate()
        ):
            return
        await asyncio.sleep(0.001)


def _settings(database_url: str, tmp_path: Path):
    return settings_for(
        database_url, tmp_path, peppers=versioned_secret(1), master_keys=versioned_secret(1)
    )


@pytest.fixture(params=["postgres-refused", "sqlite-unopenable"])
async def dead_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Runtime]:
    """A runtime whose database has never been reachable."""
    if request.param == "postgres-refused":
        pytest.importorskip("asyncpg")
        url = "postgresql://keyrack@127.0.0.1:1/keyrack"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'keyrack.db'}"
    runtime = await open_runtime(_settings(url, tmp_path), run_migrations=False, clock=clock)
    try:
        yield runtime
    finally:
        await runtime.close()
        await _aiosqlite_threads_finished()


MANAGEMENT_CALLS: list[tuple[str, Callable[[Runtime], Awaitable[object]]]] = [
    ("tenants.create", lambda rt: rt.tenants.create(OPERATOR, name="Acme")),
    ("tenants.get", lambda rt: rt.tenants.get(OPERATOR, TENANT)),
    ("tenants.list", lambda rt: rt.tenants.list(OPERATOR)),
    ("tenants.delete", lambda rt: rt.tenants.delete(OPERATOR, TENANT)),
    ("keys.create", lambda rt: rt.keys.create(OPERATOR, TENANT, NewKey(name="k"))),
    ("keys.get", lambda rt: rt.keys.get(OPERATOR, TENANT, KEY)),
    ("keys.list", lambda rt: rt.keys.list(OPERATOR, TENANT)),
    ("keys.rotate", lambda rt: rt.keys.rotate(OPERATOR, TENANT, KEY, grace_seconds=60)),
    ("keys.revoke", lambda rt: rt.keys.set_status(OPERATOR, TENANT, KEY, "revoke")),
    ("keys.delete", lambda rt: rt.keys.delete(OPERATOR, TENANT, KEY)),
    ("accounts.bootstrap", lambda rt: rt.accounts.bootstrap()),
    ("accounts.list", lambda rt: rt.accounts.list(OPERATOR, None)),
    ("accounts.authenticate", lambda rt: rt.accounts.authenticate(UNKNOWN_ROOT)),
]


class TestUnreachableDatabase:
    async def test_verify_of_an_uncached_key_raises_backend_unavailable(
        self, dead_runtime: Runtime
    ) -> None:
        with pytest.raises(BackendUnavailable) as raised:
            await dead_runtime.verifier.verify(UNKNOWN)
        assert raised.value.__cause__ is not None

    async def test_a_malformed_key_still_answers_not_found(self, dead_runtime: Runtime) -> None:
        assert Outcome.NOT_FOUND == (await dead_runtime.verifier.verify("nope")).outcome

    @pytest.mark.parametrize(
        "call", [call for _, call in MANAGEMENT_CALLS], ids=[name for name, _ in MANAGEMENT_CALLS]
    )
    async def test_management_calls_raise_backend_unavailable(
        self, dead_runtime: Runtime, call: Callable[[Runtime], Awaitable[object]]
    ) -> None:
        with pytest.raises(BackendUnavailable) as raised:
            await call(dead_runtime)
        assert raised.value.__cause__ is not None

    async def test_a_failed_flush_keeps_its_writes_for_the_next_try(
        self, dead_runtime: Runtime, clock: FakeClock
    ) -> None:
        dead_runtime.writes.touch(TENANT, KEY, clock.now())
        written = await dead_runtime.writes.flush()
        assert (0, 1) == (written, dead_runtime.writes.pending)

    async def test_ping_reports_not_ready(self, dead_runtime: Runtime) -> None:
        assert not await dead_runtime.ping()


@pytest.mark.pg
class TestMissingPostgresDatabase:
    """Errors the server sends while connecting (here: no such database) are outages too."""

    async def test_verify_on_a_dropped_database_raises_backend_unavailable(
        self, scratch_postgres: ScratchPostgres, tmp_path: Path, clock: FakeClock
    ) -> None:
        url = await scratch_postgres.create()
        await scratch_postgres.drop(url)
        runtime = await open_runtime(_settings(url, tmp_path), run_migrations=False, clock=clock)
        try:
            with pytest.raises(BackendUnavailable):
                await runtime.verifier.verify(UNKNOWN)
        finally:
            await runtime.close()


class _Outage:
    """Takes a warmed runtime's database away, and can bring it back."""

    def __init__(self, runtime: Runtime, take: Callable[[], Awaitable[None]]) -> None:
        self._runtime = runtime
        self._take = take

    async def begin(self) -> None:
        await self._runtime.engine.dispose()
        await self._take()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
async def outage_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Runtime, _Outage]]:
    """A runtime on a database of its own, and the means to take that database away."""
    if request.param == "sqlite":
        directory = tmp_path / "volume"
        directory.mkdir()
        url = f"sqlite+aiosqlite:///{directory / 'keyrack.db'}"

        async def take() -> None:
            os.rename(directory, tmp_path / "unmounted")

        async def restore() -> None:
            if not directory.exists():
                os.rename(tmp_path / "unmounted", directory)

    else:
        scratch: ScratchPostgres = request.getfixturevalue("scratch_postgres")
        url = await scratch.create()

        async def take() -> None:
            await scratch.drop(url)

        async def restore() -> None:
            return None

    runtime = await open_runtime(_settings(url, tmp_path), clock=clock)
    try:
        yield runtime, _Outage(runtime, take)
    finally:
        await restore()
        await runtime.close()
        await _aiosqlite_threads_finished()


class TestStaleIfError:
    async def _warm(self, runtime: Runtime) -> str:
        tenant = await runtime.tenants.create(OPERATOR, name="Acme")
        _, secret = await runtime.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        assert Outcome.VALID == (await runtime.verifier.verify(secret)).outcome
        assert Outcome.NOT_FOUND == (await runtime.verifier.verify(UNKNOWN)).outcome
        return secret

    async def test_a_cached_key_keeps_verifying_while_the_database_is_gone(
        self, outage_runtime: tuple[Runtime, _Outage], clock: FakeClock
    ) -> None:
        runtime, outage = outage_runtime
        secret = await self._warm(runtime)
        await outage.begin()
        clock.advance(POSITIVE_TTL + 1)  # the entry is stale: verify must try the database
        stale = (await runtime.verifier.verify(secret)).outcome
        clock.advance(STALE_IF_ERROR - 2)
        still_stale = (await runtime.verifier.verify(secret)).outcome
        clock.advance(1)
        with pytest.raises(BackendUnavailable):
            await runtime.verifier.verify(secret)
        assert (Outcome.VALID, Outcome.VALID) == (stale, still_stale)

    async def test_an_uncached_key_raises_while_the_database_is_gone(
        self, outage_runtime: tuple[Runtime, _Outage]
    ) -> None:
        runtime, outage = outage_runtime
        await self._warm(runtime)
        await outage.begin()
        other = keyformat.generate("kr", entropy=bytes(range(keyformat.RANDOM_BYTES)))
        with pytest.raises(BackendUnavailable):
            await runtime.verifier.verify(other)

    async def test_a_cached_miss_stays_not_found_while_the_database_is_gone(
        self, outage_runtime: tuple[Runtime, _Outage], clock: FakeClock
    ) -> None:
        runtime, outage = outage_runtime
        await self._warm(runtime)
        await outage.begin()
        clock.advance(5)  # past the negative TTL
        assert Outcome.NOT_FOUND == (await runtime.verifier.verify(UNKNOWN)).outcome

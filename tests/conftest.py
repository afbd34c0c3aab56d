"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when configured), clock.

``KEYRACK_TEST_POSTGRES_URL`` and ``KEYRACK_TEST_REDIS_URL`` turn on the real-service variants;
without them those variants skip with a reason, with them they never skip.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url

from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.config import Settings
from keyrack.runtime import Runtime, open_runtime
from keyrack.store.engine import make_engine, normalize_url
from keyrack.store.migrate import upgrade
from keyrack.store.tables import Base
from tests.fakes import FakeClock

# CI replays the same examples every run (no flakes from a new random draw) and allows slow
# examples on a busy machine; locally Hypothesis keeps exploring.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

PG_URL = os.environ.get("KEYRACK_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEYRACK_TEST_REDIS_URL")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _versioned(*versions: int) -> str:
    return ",".join(f"{v}:{base64.b64encode(secrets.token_bytes(32)).decode()}" for v in versions)


async def _create_pg_database(server_url: str) -> str:
    import asyncpg

    name = f"keyrack_test_{uuid.uuid4().hex[:12]}"
    url = make_url(normalize_url(server_url))
    conn = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    created = url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(created)
    await upgrade(engine)
    await engine.dispose()
    return created


async def _drop_pg_database(server_url: str, database_url: str) -> None:
    import asyncpg

    url = make_url(normalize_url(server_url))
    name = make_url(database_url).database
    conn = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session, migrated once, dropped at the end."""
    if not PG_URL:
        pytest.skip("KEYRACK_TEST_POSTGRES_URL is not set")
    url = asyncio.run(_create_pg_database(PG_URL))
    yield url
    asyncio.run(_drop_pg_database(PG_URL, url))


async def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated-on-open database: a SQLite file, or the session's PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keyrack.db'}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate_pg(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on the parametrized database, with fresh peppers and master keys."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        peppers=_versioned(1),
        master_keys=_versioned(1),
        secrets_file=tmp_path / "absent.secrets",
        flush_interval_seconds=3600,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """The whole service graph on the parametrized database, with a fake clock."""
    # Production argon2 parameters cost ~1 s a hash on a loaded 2-core machine; the tests'
    # profile is the same algorithm with its smallest cost (backends/passwords.py tests both).
    rt = await open_runtime(settings, clock=clock, hasher=Argon2PasswordHasher.for_tests())
    try:
        yield rt
    finally:
        await rt.close()

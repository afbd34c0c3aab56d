"""Fixtures of the integration suite: migrated engines, units of work, empty databases.

They build on ``database_url`` from ``tests/conftest.py``, so every test that uses them runs on
SQLite and, when ``KEYRACK_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from keyrack.config import Settings
from keyrack.store.engine import make_engine, normalize_url
from keyrack.store.migrate import upgrade
from keyrack.store.uow import SqlUnitOfWork

PG_URL = os.environ.get("KEYRACK_TEST_POSTGRES_URL")


def versioned_secret(version: int) -> str:
    """One ``version:base64`` entry of a fresh 32-byte secret (pepper or master key)."""
    return f"{version}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def settings_for(database_url: str, tmp_path: Path, *, peppers: str, master_keys: str) -> Settings:
    """Settings built like ``tests/conftest.py`` does, with the given peppers and master keys."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        peppers=peppers,
        master_keys=master_keys,
        secrets_file=tmp_path / "absent.secrets",
        flush_interval_seconds=3600,
    )


@pytest.fixture
async def sql_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the parametrized database, migrated to head."""
    engine = make_engine(database_url)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def new_uow(sql_engine: AsyncEngine) -> Callable[[], SqlUnitOfWork]:
    """Makes units of work on ``sql_engine``, as the runtime does."""
    sessions = async_sessionmaker(sql_engine, expire_on_commit=False)
    return lambda: SqlUnitOfWork(sessions)


def _pg_admin_kwargs(server_url: str) -> dict[str, object]:
    url = make_url(normalize_url(server_url))
    return {
        "user": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
        "database": url.database,
    }


async def _pg_admin(server_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(**_pg_admin_kwargs(server_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class ScratchPostgres:
    """Creates and drops whole PostgreSQL databases of one test (never migrated)."""

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url
        self._names: list[str] = []

    async def create(self) -> str:
        """A new empty database; its URL."""
        name = f"keyrack_scratch_{uuid.uuid4().hex[:12]}"
        await _pg_admin(self._server_url, f'CREATE DATABASE "{name}"')
        self._names.append(name)
        url = make_url(normalize_url(self._server_url)).set(database=name)
        return url.render_as_string(hide_password=False)

    async def drop(self, database_url: str) -> None:
        """Drop one of this test's databases now, closing every connection to it."""
        name = make_url(database_url).database
        await _pg_admin(self._server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for name in self._names:
            asyncio.run(
                _pg_admin(self._server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )


@pytest.fixture
def scratch_postgres() -> Iterator[ScratchPostgres]:
    """Whole scratch databases on the test PostgreSQL server (skips without one)."""
    if not PG_URL:
        pytest.skip("KEYRACK_TEST_POSTGRES_URL is not set")
    scratch = ScratchPostgres(PG_URL)
    try:
        yield scratch
    finally:
        scratch.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that has never been migrated: a new SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    scratch: ScratchPostgres = request.getfixturevalue("scratch_postgres")
    return asyncio.run(scratch.create())

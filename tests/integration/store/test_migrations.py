"""Alembic migrations on real databases: empty to head, idempotent, and in step with the models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from keyrack.store.engine import make_engine
from keyrack.store.migrate import alembic_config, current_revision, upgrade
from keyrack.store.tables import Base
from tests.integration.store.statements import StatementLog

pytestmark = pytest.mark.anyio

TABLES = {"alembic_version", *Base.metadata.tables}


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


@pytest.fixture
async def empty_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(empty_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


class TestUpgrade:
    async def test_an_empty_database_has_no_revision(self, empty_engine: AsyncEngine) -> None:
        assert await current_revision(empty_engine) is None

    async def test_upgrading_an_empty_database_reaches_head(
        self, empty_engine: AsyncEngine
    ) -> None:
        await upgrade(empty_engine)
        async with empty_engine.connect() as connection:
            tables = await connection.run_sync(_table_names)
        assert _head() is not None
        assert _head() == await current_revision(empty_engine)
        assert TABLES == tables

    async def test_a_second_upgrade_changes_nothing(self, empty_engine: AsyncEngine) -> None:
        with StatementLog(empty_engine) as first:
            await upgrade(empty_engine)
        with StatementLog(empty_engine) as second:
            await upgrade(empty_engine)
        assert _head() == await current_revision(empty_engine)
        assert any(s.lstrip().startswith("CREATE TABLE") for s in first.writes())
        assert [] == second.writes()

    async def test_the_models_match_the_migrations(self, empty_engine: AsyncEngine) -> None:
        await upgrade(empty_engine)
        async with empty_engine.connect() as connection:
            assert [] == await connection.run_sync(_schema_diff)

    async def test_the_diff_check_sees_a_model_the_migrations_lack(
        self, empty_engine: AsyncEngine
    ) -> None:
        """Guards the check above: an empty database differs from the models."""
        async with empty_engine.connect() as connection:
            diff = await connection.run_sync(_schema_diff)
        added = {entry[1].name for entry in diff if entry[0] == "add_table"}  # type: ignore[index]  # alembic diff tuples
        assert TABLES - {"alembic_version"} == added

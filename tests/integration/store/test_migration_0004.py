"""Migration 0004 (people) on a database with data: keys and their secrets survive both ways.

On SQLite, altering ``api_keys`` by copying the table would drop the old copy under
``PRAGMA foreign_keys=ON`` and cascade to ``key_secrets``; 0004 alters it in place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, TextClause, bindparam, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from keyrack.store.engine import make_engine
from keyrack.store.migrate import alembic_config, current_revision
from keyrack.store.tables import UTCDateTime

pytestmark = pytest.mark.anyio

PEOPLE_TABLES = {"users", "memberships", "invitations", "user_tokens", "audit_events"}
AT = datetime(2027, 1, 15, 8, tzinfo=UTC)


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(empty_database_url)
    try:
        yield made
    finally:
        await made.dispose()


async def _migrate(engine: AsyncEngine, *, to: str) -> None:
    """Upgrade to ``to``, or downgrade when the database is past it (revisions sort)."""
    current = await current_revision(engine)

    def run(connection: Connection) -> None:
        config = alembic_config(connection)
        if current is not None and current > to:
            command.downgrade(config, to)
        else:
            command.upgrade(config, to)

    async with engine.begin() as connection:
        await connection.run_sync(run)


def _shape(connection: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    columns = {c["name"] for c in inspector.get_columns("api_keys")}
    return set(inspector.get_table_names()) & PEOPLE_TABLES, columns & {
        "sealed_secret",
        "system_slot",
    }


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        keys = (await connection.execute(text("SELECT count(*) FROM api_keys"))).scalar_one()
        secrets = (await connection.execute(text("SELECT count(*) FROM key_secrets"))).scalar_one()
    return keys, secrets


def _timed(statement: str) -> TextClause:
    """``statement`` with ``:at`` bound as an aware UTC datetime on every dialect."""
    return text(statement).bindparams(bindparam("at", type_=UTCDateTime()))


async def _seed(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            _timed("INSERT INTO tenants VALUES ('ten_1', 'Acme', 'acme', 'kr', :at, :at)"),
            {"at": AT},
        )
        for n in (1, 2):
            await connection.execute(
                _timed(
                    "INSERT INTO api_keys (id, tenant_id, name, start, status, meta, permissions,"
                    " roles, system, recoverable, version, created_at, updated_at)"
                    " VALUES (:id, 'ten_1', 'k', 'kr_AbCd', 'active', '{}', '[]', '[]',"
                    " false, false, 1, :at, :at)"
                ),
                {"id": f"key_{n}", "at": AT},
            )
            await connection.execute(
                _timed(
                    "INSERT INTO key_secrets (id, tenant_id, key_id, digest, pepper_version,"
                    " start, created_at) VALUES (:id, 'ten_1', :key, :digest, 1, 'kr_AbCd', :at)"
                ),
                {"id": f"sec_{n}", "key": f"key_{n}", "digest": bytes([n]) * 32, "at": AT},
            )


class TestMigration0004:
    async def test_upgrade_and_downgrade_keep_keys_and_their_secrets(
        self, engine: AsyncEngine
    ) -> None:
        await _migrate(engine, to="0003")
        await _seed(engine)
        seen = []
        for target in ("0004", "0003", "0004"):
            await _migrate(engine, to=target)
            async with engine.connect() as connection:
                shape = await connection.run_sync(_shape)
            seen.append((await current_revision(engine), shape, await _counts(engine)))
        with_people = (PEOPLE_TABLES, {"sealed_secret", "system_slot"})
        assert [
            ("0004", with_people, (2, 2)),
            ("0003", (set(), set()), (2, 2)),
            ("0004", with_people, (2, 2)),
        ] == seen

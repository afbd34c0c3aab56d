"""Run the Alembic migrations shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from keyrack.errors import BackendUnavailable
from keyrack.store.engine import DRIVER_ERRORS

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant shared by all keyrack processes: serializes concurrent upgrades on PostgreSQL.
_PG_LOCK_ID = 0x6B72_6163_6B00


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Migrate the database to the newest schema (safe to run from several processes).

    Raises:
        BackendUnavailable: The database cannot be reached.
    """
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    except DRIVER_ERRORS as exc:
        raise BackendUnavailable("the database is unavailable; cannot migrate") from exc


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415  # only for status

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or ``None`` when never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)

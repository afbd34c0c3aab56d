"""Engine construction: SQLite pragmas (WAL, foreign keys) or a PostgreSQL pool."""

from __future__ import annotations

import importlib.util
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from keyrack.errors import ConfigurationError, MissingDependency

try:  # asyncpg raises its own classes for failures at connect time (login, missing database).
    from asyncpg import InterfaceError as _PgInterfaceError
    from asyncpg import PostgresError as _PgError

    DRIVER_ERRORS: tuple[type[BaseException], ...] = (
        DBAPIError,
        OSError,
        _PgError,
        _PgInterfaceError,
    )
except ImportError:  # pragma: no cover - the postgres extra is not installed
    DRIVER_ERRORS = (DBAPIError, OSError)
"""Exceptions meaning "the database cannot be reached or used right now"."""

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str) -> str:
    """Map plain ``sqlite://`` and ``postgresql://`` URLs to their async drivers."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises several types for bad URLs
        raise ConfigurationError("KEYRACK_DATABASE_URL is not a valid database URL") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.drivername not in _DRIVERS.values():
        raise ConfigurationError("KEYRACK_DATABASE_URL must be a SQLite or PostgreSQL URL")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:  # DB-API connection object
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    """Create the async engine for ``url`` (nothing connects until first use).

    Raises:
        MissingDependency: The PostgreSQL driver (extra ``postgres``) is not installed.
        ConfigurationError: The URL is not SQLite or PostgreSQL.
    """
    normalized = normalize_url(url)
    parsed = make_url(normalized)
    if parsed.drivername == "postgresql+asyncpg":
        if importlib.util.find_spec("asyncpg") is None:
            raise MissingDependency(package="asyncpg", extra="postgres")
        return create_async_engine(
            normalized,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"timeout": 5, "command_timeout": 30},
        )
    kwargs: dict[str, Any] = {}
    if parsed.database in (None, "", ":memory:"):
        # One shared connection, or every session would see its own empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_async_engine(normalized, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine

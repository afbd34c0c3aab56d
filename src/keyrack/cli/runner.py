"""How a command reaches the services: settings from the group, one runtime per command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.engine import make_url

from keyrack.config import Settings
from keyrack.errors import ConfigurationError
from keyrack.runtime import Runtime, open_runtime
from keyrack.store.engine import normalize_url

T = TypeVar("T")

pass_settings = click.make_pass_decorator(Settings)
"""Hand a command the ``Settings`` the ``keyrack`` group read from ``KEYRACK_*``."""


def check_database_url(url: str) -> None:
    """Refuse a SQLite file in a missing directory before any driver thread starts.

    Raises:
        ConfigurationError: The URL is unusable, or names a file in a directory that does
            not exist (SQLite would fail with a bare "unable to open database file").
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    directory = Path(parsed.database).parent
    if not directory.is_dir():
        raise ConfigurationError(
            f"KEYRACK_DATABASE_URL names a SQLite file in {directory}, which does not exist"
        )


def run(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime (migrating first), run ``work`` on it, and always close it.

    Closing flushes the write-behind buffer, so a verify's ``last_used_at`` is saved too.
    """
    check_database_url(settings.database_url)

    async def scoped() -> T:
        runtime = await open_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(scoped())

"""``keyrack db``: the schema's Alembic revision."""

from __future__ import annotations

import asyncio

import click
from alembic.script import ScriptDirectory

from keyrack.cli.output import emit_json, json_option, show_fields
from keyrack.cli.runner import check_database_url, pass_settings
from keyrack.config import Settings
from keyrack.store import migrate
from keyrack.store.engine import make_engine


async def _revision(database_url: str, *, upgrade: bool) -> str | None:
    check_database_url(database_url)
    engine = make_engine(database_url)
    try:
        if upgrade:
            await migrate.upgrade(engine)
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()


def _head() -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


@click.group()
def db() -> None:
    """Database schema migrations (no secrets needed)."""


@db.command()
@json_option
@pass_settings
def upgrade(settings: Settings, *, as_json: bool) -> None:
    """Migrate the database to the newest schema and print the revision reached."""
    revision = asyncio.run(_revision(settings.database_url, upgrade=True))
    if as_json:
        emit_json({"revision": revision})
    else:
        show_fields({"revision": revision})


@db.command()
@json_option
@pass_settings
def current(settings: Settings, *, as_json: bool) -> None:
    """Print the database's revision and the newest one this keyrack knows."""
    revision = asyncio.run(_revision(settings.database_url, upgrade=False))
    head = _head()
    if as_json:
        emit_json({"revision": revision, "head": head})
        return
    show_fields({"revision": revision, "head": head})
    if revision != head:
        click.echo("the database is behind: run 'keyrack db upgrade'")

"""``keyrack tenants``: create and list tenants."""

from __future__ import annotations

from typing import Final

import click

from keyrack.cli import params
from keyrack.cli.output import (
    emit_json,
    json_option,
    show_fields,
    show_next_cursor,
    show_table,
)
from keyrack.cli.runner import pass_settings, run
from keyrack.config import Settings
from keyrack.schemas.common import Page
from keyrack.schemas.tenants import TenantRead
from keyrack.services.authz import OPERATOR
from keyrack.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

COLUMNS: Final = ("id", "name", "slug", "key_prefix", "created_at")

limit_option = click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Page size.",
)
cursor_option = click.option("--cursor", help="next_cursor of the previous page.")


@click.group()
def tenants() -> None:
    """Create and list tenants."""


@tenants.command()
@click.argument("name", type=params.NAME)
@click.option("--slug", type=params.SLUG, help="URL-safe id.  [default: derived from NAME]")
@click.option("--key-prefix", help="Prefix of this tenant's keys, e.g. sk_live.  [default: kr]")
@json_option
@pass_settings
def create(
    settings: Settings, *, name: str, slug: str | None, key_prefix: str | None, as_json: bool
) -> None:
    """Create a tenant named NAME."""
    tenant = run(
        settings,
        lambda rt: rt.tenants.create(OPERATOR, name=name, slug=slug, key_prefix=key_prefix),
    )
    read = TenantRead.of(tenant)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


@tenants.command("list")
@limit_option
@cursor_option
@json_option
@pass_settings
def list_(settings: Settings, *, limit: int, cursor: str | None, as_json: bool) -> None:
    """List tenants, oldest first."""
    page = run(settings, lambda rt: rt.tenants.list(OPERATOR, limit=limit, cursor=cursor))
    wire = Page[TenantRead](
        items=[TenantRead.of(t) for t in page.items], next_cursor=page.next_cursor
    )
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(COLUMNS, [item.model_dump() for item in wire.items], empty="no tenants")
    show_next_cursor(wire.next_cursor)

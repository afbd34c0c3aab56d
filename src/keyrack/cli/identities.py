"""``keyrack identities``: the platform's own customers, whose limits their keys share."""

from __future__ import annotations

from typing import Final

import click

from keyrack.cli import params
from keyrack.cli.limits import (
    credits_command,
    credits_from_options,
    credits_option,
    rate_limit_option,
    refill_option,
)
from keyrack.cli.output import emit_json, json_option, show_fields, show_next_cursor, show_table
from keyrack.cli.runner import pass_settings, run
from keyrack.cli.tenants import cursor_option, limit_option
from keyrack.config import Settings
from keyrack.domain.credits import Credits, Refill
from keyrack.domain.models import Identity
from keyrack.domain.ratelimit import RateLimit
from keyrack.schemas.common import Page
from keyrack.schemas.identities import IdentityRead
from keyrack.services.authz import OPERATOR
from keyrack.services.identities import IdentityChanges, NewIdentity
from keyrack.services.keys import UNSET, _Unset

COLUMNS: Final = ("id", "external_id", "created_at", "updated_at")

tenant_option = click.option("--tenant", "tenant_id", required=True, help="Tenant id (ten_...).")
identity_id_argument = click.argument("identity_id")


meta_option = click.option(
    "--meta", type=params.JSON_OBJECT, help="JSON object returned by verify."
)


def _show(identity: Identity, *, as_json: bool) -> None:
    read = IdentityRead.of(identity)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


@click.group()
def identities() -> None:
    """Manage identities: your customers, whose rate limits and credits their keys share."""


@identities.command()
@tenant_option
@click.option("--external-id", required=True, type=params.SHORT_TEXT, help="Your customer's id.")
@meta_option
@rate_limit_option
@credits_option
@refill_option
@json_option
@pass_settings
def create(
    settings: Settings,
    *,
    tenant_id: str,
    external_id: str,
    meta: dict[str, object] | None,
    rate_limits: tuple[RateLimit, ...],
    credits: int | None,
    refill: Refill | None,
    as_json: bool,
) -> None:
    """Create an identity."""
    spec = NewIdentity(
        external_id=external_id,
        meta=meta or {},
        rate_limits=rate_limits,
        credits=credits_from_options(credits, refill),
    )
    identity = run(settings, lambda rt: rt.identities.create(OPERATOR, tenant_id, spec))
    _show(identity, as_json=as_json)


@identities.command("list")
@tenant_option
@click.option("--external-id", type=params.SHORT_TEXT, help="Only the identity with this id.")
@limit_option
@cursor_option
@json_option
@pass_settings
def list_(
    settings: Settings,
    *,
    tenant_id: str,
    external_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a tenant's identities, oldest first."""
    page = run(
        settings,
        lambda rt: rt.identities.list(
            OPERATOR, tenant_id, external_id=external_id, limit=limit, cursor=cursor
        ),
    )
    wire = Page[IdentityRead](
        items=[IdentityRead.of(i) for i in page.items], next_cursor=page.next_cursor
    )
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(COLUMNS, [item.model_dump() for item in wire.items], empty="no identities")
    show_next_cursor(wire.next_cursor)


@identities.command()
@tenant_option
@identity_id_argument
@json_option
@pass_settings
def get(settings: Settings, *, tenant_id: str, identity_id: str, as_json: bool) -> None:
    """Show one identity."""
    identity = run(settings, lambda rt: rt.identities.get(OPERATOR, tenant_id, identity_id))
    _show(identity, as_json=as_json)


@identities.command()
@tenant_option
@identity_id_argument
@click.option("--external-id", type=params.SHORT_TEXT, help="A new id of your customer.")
@meta_option
@rate_limit_option
@click.option("--no-rate-limits", is_flag=True, help="Remove every rate limit.")
@credits_option
@refill_option
@click.option("--no-credits", is_flag=True, help="Remove the credits.")
@json_option
@pass_settings
def update(
    settings: Settings,
    *,
    tenant_id: str,
    identity_id: str,
    external_id: str | None,
    meta: dict[str, object] | None,
    rate_limits: tuple[RateLimit, ...],
    no_rate_limits: bool,
    credits: int | None,
    refill: Refill | None,
    no_credits: bool,
    as_json: bool,
) -> None:
    """Change an identity; options left out stay as they are.

    --rate-limit replaces the whole list. --credits sets the balance (and the refill policy,
    never unless --refill is given), replacing the current one.
    """
    if no_rate_limits and rate_limits:
        raise click.UsageError("--no-rate-limits and --rate-limit exclude each other")
    if no_credits and (credits is not None or refill is not None):
        raise click.UsageError("--no-credits excludes --credits and --refill")
    new_credits: Credits | _Unset | None = UNSET
    if no_credits:
        new_credits = None
    elif credits is not None or refill is not None:
        new_credits = credits_from_options(credits, refill)
    changes = IdentityChanges(
        external_id=UNSET if external_id is None else external_id,
        meta=UNSET if meta is None else meta,
        rate_limits=() if no_rate_limits else rate_limits or UNSET,
        credits=new_credits,
    )
    identity = run(
        settings, lambda rt: rt.identities.update(OPERATOR, tenant_id, identity_id, changes)
    )
    _show(identity, as_json=as_json)


@identities.command()
@tenant_option
@identity_id_argument
@json_option
@pass_settings
def delete(settings: Settings, *, tenant_id: str, identity_id: str, as_json: bool) -> None:
    """Delete an identity; its keys stay, without the identity's shared limits."""
    run(settings, lambda rt: rt.identities.delete(OPERATOR, tenant_id, identity_id))
    if as_json:
        emit_json({"id": identity_id, "deleted": True})
    else:
        click.echo(f"deleted {identity_id}")


identities.add_command(credits_command("identity"))

"""``keyrack keys``: the API key lifecycle, and verify in-process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
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
from keyrack.cli.output import (
    emit_json,
    json_option,
    note,
    show_fields,
    show_next_cursor,
    show_table,
)
from keyrack.cli.runner import pass_settings, run
from keyrack.cli.tenants import cursor_option, limit_option
from keyrack.config import Settings
from keyrack.domain import budget as budgets
from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import MAX_AMOUNT, Refill
from keyrack.domain.models import (
    DEFAULT_LEASE_TTL_SECONDS,
    MAX_CONCURRENCY,
    MAX_LEASE_TTL_SECONDS,
    ApiKey,
    KeyStatus,
    Limits,
)
from keyrack.domain.policy import build_policy
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import VerifyFacts
from keyrack.errors import InvalidInput
from keyrack.schemas.common import Page
from keyrack.schemas.keys import KeyCreated, KeyRead
from keyrack.schemas.render import verify_body
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import MAX_GRACE_SECONDS, NewKey, StatusAction
from keyrack.services.ports import KeyFilter

COLUMNS: Final = ("id", "name", "start", "status", "expires_at", "owner_id", "last_used_at")
SHOWN_ONCE: Final = "this secret is shown only once and cannot be retrieved again: store it now"

tenant_option = click.option("--tenant", "tenant_id", required=True, help="Tenant id (ten_...).")
key_id_argument = click.argument("key_id")


def _show_key(key: ApiKey, *, as_json: bool) -> None:
    read = KeyRead.of(key)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


def _show_created(key: ApiKey, secret: str, *, as_json: bool) -> None:
    created = KeyCreated(key=KeyRead.of(key), secret=secret)
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        show_fields({**created.key.model_dump(), "secret": secret})
    note(SHOWN_ONCE)


def policy_and_limit_options(command: Callable[..., None]) -> Callable[..., None]:
    """The policy and limit options of ``keys create`` (and their meaning)."""
    options = [
        click.option("--identity-id", help="The identity (idn_...) the key belongs to."),
        click.option("--ip-allow", "ip_allowlist", multiple=True, help="CIDR (repeatable)."),
        click.option("--origin", "allowed_origins", multiple=True, help="Allowed Origin."),
        click.option(
            "--allow-endpoint",
            "allowed_endpoints",
            multiple=True,
            help="'METHOD /path-glob' a request must match (repeatable).",
        ),
        click.option(
            "--block-endpoint",
            "blocked_endpoints",
            multiple=True,
            help="'METHOD /path-glob' a request must not match (repeatable).",
        ),
        click.option("--require-tls", is_flag=True, default=False, help="Refuse non-TLS requests."),
        click.option("--max-tokens", "max_tokens_per_request", type=click.IntRange(1, MAX_AMOUNT)),
        rate_limit_option,
        credits_option,
        refill_option,
        click.option(
            "--budget",
            type=BUDGET,
            help="LIMIT[:day|month|never[:SOFT_THRESHOLD]] in micro-units (soft default 0.8).",
        ),
        click.option("--max-concurrency", type=click.IntRange(1, MAX_CONCURRENCY)),
        click.option(
            "--lease-ttl",
            "lease_ttl_seconds",
            type=click.IntRange(1, MAX_LEASE_TTL_SECONDS),
            default=DEFAULT_LEASE_TTL_SECONDS,
            show_default=True,
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class BudgetParam(click.ParamType[Budget]):
    """``LIMIT[:PERIOD[:SOFT_THRESHOLD]]``, e.g. ``5000000:month:0.9``."""

    name = "budget"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Budget:
        """Parse the text form."""
        if isinstance(value, Budget):
            return value
        parts = str(value).split(":")
        try:
            if len(parts) > 3:
                raise ValueError
            limit = int(parts[0])
            period = BudgetPeriod(parts[1]) if len(parts) > 1 else BudgetPeriod.NEVER
            soft = float(parts[2]) if len(parts) > 2 else 0.8
            return Budget(limit, period, budgets.basis_points(soft))
        except (ValueError, InvalidInput):
            self.fail("expected LIMIT[:day|month|never[:SOFT_THRESHOLD 0..1]]", param, ctx)


BUDGET: Final = BudgetParam()


@click.group()
def keys() -> None:
    """Create, list, rotate, revoke and verify API keys."""


@keys.command()
@tenant_option
@click.option("--name", required=True, type=params.NAME, help="Name of the key.")
@click.option("--description", type=params.DESCRIPTION, help="Free text.")
@click.option("--expires-at", type=params.AWARE_DATETIME, help="Expiry, e.g. 2030-01-01T00:00:00Z.")
@click.option("--owner-id", type=params.SHORT_TEXT, help="Your id of the key's owner.")
@click.option("--meta", type=params.JSON_OBJECT, help="JSON object returned by verify.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=params.SHORT_TEXT,
    help="Permission slug (repeatable).",
)
@click.option(
    "--role", "roles", multiple=True, type=params.SHORT_TEXT, help="Role slug (repeatable)."
)
@policy_and_limit_options
@json_option
@pass_settings
def create(
    settings: Settings,
    *,
    tenant_id: str,
    name: str,
    description: str | None,
    expires_at: datetime | None,
    owner_id: str | None,
    meta: dict[str, object] | None,
    permissions: tuple[str, ...],
    roles: tuple[str, ...],
    as_json: bool,
    identity_id: str | None,
    ip_allowlist: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    allowed_endpoints: tuple[str, ...],
    blocked_endpoints: tuple[str, ...],
    require_tls: bool,
    max_tokens_per_request: int | None,
    rate_limits: tuple[RateLimit, ...],
    credits: int | None,
    refill: Refill | None,
    budget: Budget | None,
    max_concurrency: int | None,
    lease_ttl_seconds: int,
) -> None:
    """Create a key and print its secret (shown this once)."""
    policy = build_policy(
        ip_allowlist=ip_allowlist,
        allowed_origins=allowed_origins,
        allowed_endpoints=allowed_endpoints,
        blocked_endpoints=blocked_endpoints,
        require_tls=require_tls,
        max_tokens_per_request=max_tokens_per_request,
    )
    limits = Limits(
        rate_limits=rate_limits,
        credits=credits_from_options(credits, refill),
        budget=budget,
        max_concurrency=max_concurrency,
        lease_ttl_seconds=lease_ttl_seconds,
    )
    spec = NewKey(
        name=name,
        description=description,
        expires_at=expires_at,
        owner_id=owner_id,
        meta=meta or {},
        permissions=permissions,
        roles=roles,
        identity_id=identity_id,
        policy=policy,
        limits=limits,
    )
    key, secret = run(settings, lambda rt: rt.keys.create(OPERATOR, tenant_id, spec))
    _show_created(key, secret, as_json=as_json)


@keys.command("list")
@tenant_option
@click.option("--status", type=click.Choice([s.value for s in KeyStatus]), help="Only these.")
@click.option("--owner-id", type=params.SHORT_TEXT, help="Only this owner's keys.")
@limit_option
@cursor_option
@json_option
@pass_settings
def list_(
    settings: Settings,
    *,
    tenant_id: str,
    status: str | None,
    owner_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a tenant's keys, oldest first."""
    where = KeyFilter(status=KeyStatus(status) if status else None, owner_id=owner_id)
    page = run(
        settings,
        lambda rt: rt.keys.list(OPERATOR, tenant_id, where=where, limit=limit, cursor=cursor),
    )
    wire = Page[KeyRead](items=[KeyRead.of(k) for k in page.items], next_cursor=page.next_cursor)
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(COLUMNS, [item.model_dump() for item in wire.items], empty="no keys")
    show_next_cursor(wire.next_cursor)


@keys.command()
@tenant_option
@key_id_argument
@json_option
@pass_settings
def get(settings: Settings, *, tenant_id: str, key_id: str, as_json: bool) -> None:
    """Show one key (never its secret)."""
    key = run(settings, lambda rt: rt.keys.get(OPERATOR, tenant_id, key_id))
    _show_key(key, as_json=as_json)


@keys.command()
@tenant_option
@key_id_argument
@click.option(
    "--grace-seconds",
    type=click.IntRange(0, MAX_GRACE_SECONDS),
    default=0,
    show_default=True,
    help="How long the old secret stays valid.",
)
@json_option
@pass_settings
def rotate(
    settings: Settings, *, tenant_id: str, key_id: str, grace_seconds: int, as_json: bool
) -> None:
    """Give a key a new secret; its id, settings and usage stay."""
    key, secret = run(
        settings,
        lambda rt: rt.keys.rotate(OPERATOR, tenant_id, key_id, grace_seconds=grace_seconds),
    )
    _show_created(key, secret, as_json=as_json)


def _status_command(action: StatusAction, summary: str) -> click.Command:
    @tenant_option
    @key_id_argument
    @json_option
    @pass_settings
    def command(settings: Settings, *, tenant_id: str, key_id: str, as_json: bool) -> None:
        key = run(settings, lambda rt: rt.keys.set_status(OPERATOR, tenant_id, key_id, action))
        _show_key(key, as_json=as_json)

    return click.command(action, help=summary)(command)


keys.add_command(_status_command("revoke", "Revoke a key; this is final."))
keys.add_command(_status_command("disable", "Disable a key until it is enabled again."))
keys.add_command(_status_command("enable", "Enable a disabled key (a revoked one stays revoked)."))


@keys.command()
@tenant_option
@key_id_argument
@json_option
@pass_settings
def delete(settings: Settings, *, tenant_id: str, key_id: str, as_json: bool) -> None:
    """Delete a key and its secrets; verify answers NOT_FOUND from now on."""
    run(settings, lambda rt: rt.keys.delete(OPERATOR, tenant_id, key_id))
    if as_json:
        emit_json({"id": key_id, "deleted": True})
    else:
        click.echo(f"deleted {key_id}")


@keys.command()
@click.argument("key")
@click.option("--tenant", "tenant_id", help="Answer NOT_FOUND for another tenant's key.")
@click.option("--permissions", help="Permission query, e.g. 'chat.write AND (a OR b)'.")
@click.option("--endpoint", help="The request's 'METHOD /path'.")
@click.option("--ip", help="The client's address.")
@click.option("--origin", help="The request's Origin.")
@click.option("--tls/--no-tls", default=None, help="Whether the request came over TLS.")
@click.option("--cost", type=click.IntRange(0, MAX_AMOUNT), default=1, show_default=True)
@click.option("--tokens", type=click.IntRange(0, MAX_AMOUNT), help="Tokens the request asks for.")
@click.option("--spend", type=click.IntRange(0, MAX_AMOUNT), default=0, help="Budget micro-units.")
@json_option
@pass_settings
@click.pass_context
def verify(
    ctx: click.Context,
    settings: Settings,
    *,
    key: str,
    tenant_id: str | None,
    as_json: bool,
    permissions: str | None,
    endpoint: str | None,
    ip: str | None,
    origin: str | None,
    tls: bool | None,
    cost: int,
    tokens: int | None,
    spend: int,
) -> None:
    """Verify KEY in-process ('-' reads it from stdin, keeping it out of shell history).

    Limits are charged as on the HTTP API (this process's counters, or Redis when
    KEYRACK_REDIS_URL is set). Exits 0 when the key is valid and 1 when it is not.
    """
    presented = click.get_text_stream("stdin").readline().strip() if key == "-" else key
    request = VerifyFacts(
        permissions=permissions,
        endpoint=endpoint,
        ip=ip,
        origin=origin,
        tls=tls,
        tokens=tokens,
        cost=cost,
        spend=spend,
    )
    result = run(
        settings,
        lambda rt: rt.verifier.verify(presented, tenant_scope=tenant_id, facts=request),
    )
    body = verify_body(result)
    if as_json:
        emit_json(body)
    else:
        show_fields(body)
    ctx.exit(0 if result.valid else 1)


keys.add_command(credits_command("key"))
